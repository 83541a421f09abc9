"""The `lakehouse` CLI in separate processes: the catalog persists, errors are one line."""

import json
import re

import pytest
from conftest import error_lines, lakehouse_env, run_cli

SECRETS = ("sentinel-spark-conf-7f3a", "sentinel-aws-secret-91c2", "sentinel-mlflow-pw-5d0e")


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """A warehouse where one process has run the main job (and then exited)."""
    # Credentials a user might have in the environment and in the Spark conf: they must never reach a log,
    # an MLflow run or a Delta commit (test_no_credential_reaches_logs_runs_or_commits).
    env = lakehouse_env(
        tmp_path_factory.mktemp("cli-home"),
        LAKEHOUSE_SPARK_CONF=f"spark.lakehouse.store.password={SECRETS[0]}",
        AWS_SECRET_ACCESS_KEY=SECRETS[1],
        MLFLOW_TRACKING_PASSWORD=SECRETS[2],
    )
    proc = run_cli(env, "run")
    assert proc.returncode == 0, proc.stderr
    return env, proc


def test_main_job_runs_every_stage_end_to_end(landed):
    from lakehouse.pipeline import STAGES

    env, proc = landed
    [summary] = [line for line in proc.stderr.splitlines() if line.startswith("main job:")]
    assert summary.startswith(f"main job: {len(STAGES)} stages in ")
    spent = dict(re.findall(r"(\w+) (\d+\.\d) s", summary.partition("(")[2]))
    assert list(spent) == [stage.name for stage in STAGES], summary  # each stage's own wall time, in order
    for table in (
        "bronze.demo_measurements",
        "silver.tcga_clinical",
        "gold.tcga_gene_expression",
        "silver.gnomad_variants",
        "gold.geo_gene_expression",
        "knowledge.findings",
    ):
        assert table in proc.stdout, table
    findings = run_cli(env, "results", "--format", "json")
    assert findings.returncode == 0, findings.stderr
    outcomes = {f["experiment"]: f["outcome"] for f in json.loads(findings.stdout)}
    assert set(outcomes) == {"tcga-cancer-type", "tcga-survival", "geo-disease-state"}
    assert set(outcomes.values()) <= {"supported", "refuted", "inconclusive"}


def test_catalog_persists_across_processes_with_time_travel(landed):
    env, _ = landed
    proc = run_cli(
        env,
        "sql",
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM bronze.demo_measurements VERSION AS OF 0) AS v0, "
        "(SELECT count(*) FROM bronze.demo_measurements) AS now, "
        "(SELECT count(DISTINCT gene_symbol) FROM bronze.demo_measurements) AS genes, "
        "(SELECT status FROM meta.ingest_runs WHERE job = 'demo') AS demo_run",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["v0,now,genes,demo_run", "0,48,8,succeeded"]


def test_tables_history_describe_and_duckdb_sql_need_no_jvm(landed):
    env, _ = landed
    # No Java anywhere: a command that started Spark would fail (test_missing_java_is_one_clear_line).
    env = {k: v for k, v in env.items() if k != "JAVA_HOME"} | {"PATH": "/nonexistent"}
    proc = run_cli(env, "tables", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    tables = {t["table"]: t for t in json.loads(proc.stdout)}
    assert tables["bronze.demo_measurements"]["version"] == 1
    assert tables["bronze.demo_measurements"]["rows"] == 48
    assert tables["meta.ingest_runs"]["rows"] >= 5  # demo, tcga, gnomad, geo and experiment runs, at least

    proc = run_cli(env, "history", "bronze.demo_measurements", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    versions = json.loads(proc.stdout)
    assert [v["version"] for v in versions] == [1, 0]
    assert json.loads(versions[0]["userMetadata"])["job"] == "demo"

    proc = run_cli(env, "describe", "silver.gnomad_variants", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    described = json.loads(proc.stdout)
    assert described["partition_columns"] == ["contig"]
    assert described["rows"] == tables["silver.gnomad_variants"]["rows"] > 0
    columns = {c["name"]: c for c in described["columns"]}
    assert columns["af"]["type"] == "double" and columns["af"]["comment"]

    query = "SELECT count(*) AS variants, count(DISTINCT contig) AS contigs FROM silver.gnomad_variants"
    proc = run_cli(env, "sql", "--engine", "duckdb", query, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["variants"] == described["rows"] and row["contigs"] >= 1
    proc = run_cli(env, "sql", "--engine", "duckdb", "SELECT * FROM silver.no_such_table")
    assert proc.returncode == 1
    [line] = error_lines(proc.stderr)
    assert line.startswith("error: CatalogException: ") and "no_such_table does not exist" in line


def test_duckdb_and_spark_give_the_same_answer_for_a_join_of_two_landed_tables(landed, spark):
    """`sql --engine duckdb` (no JVM) against Spark SQL over the same Delta tables of the main job's home,
    read by the tests' running Spark from the locations the home's catalog entries give."""
    from lakehouse.reader import table_path
    from lakehouse.settings import Settings

    env, _ = landed
    query = (
        "SELECT c.project_id, s.sample_type, count(*) AS samples, count(DISTINCT c.gender) AS genders "
        "FROM {samples} s JOIN {clinical} c ON s.case_barcode = c.case_barcode "
        "GROUP BY c.project_id, s.sample_type ORDER BY c.project_id, s.sample_type NULLS FIRST"
    )
    names = {"samples": "silver.tcga_samples", "clinical": "silver.tcga_clinical"}
    proc = run_cli(
        env, "sql", "--engine", "duckdb", query.format(**names), "--format", "json", "--limit", "1000"
    )
    assert proc.returncode == 0, proc.stderr
    duckdb_rows = json.loads(proc.stdout)

    home = Settings.load(environ=env)
    for view, name in names.items():
        spark.read.format("delta").load(table_path(name, home)).createOrReplaceTempView(f"cli_{view}")
    spark_rows = [row.asDict() for row in spark.sql(query.format(**{v: f"cli_{v}" for v in names})).collect()]
    assert duckdb_rows == spark_rows
    assert len(spark_rows) >= 2 and all(row["samples"] > 0 for row in spark_rows)


def test_validate_lists_the_declared_domain_checks_of_a_version(landed):
    env, _ = landed
    proc = run_cli(env, "validate", "silver.gnomad_variants", "--version", "1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    declared = [r["expectation"] for r in results if r["origin"] == "declared"]
    assert declared[0] == "af.frequency" and {"ac.at_most_an", "af.is_ac_over_an"} <= set(declared)
    assert {"contig.in_header", "filters.in_header", "af_afr.frequency", "af_nfe_xx.frequency"} <= set(
        declared
    )
    assert all(r["success"] for r in results) and results[0]["check"] == "AF is a frequency, in [0, 1]"
    assert "validation " in proc.stderr and "expectations passed" in proc.stderr


def test_missing_table_is_one_line_naming_it(landed):
    env, _ = landed
    proc = run_cli(env, "sql", "SELECT * FROM silver.no_such_table")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "error: [TABLE_OR_VIEW_NOT_FOUND] The table or view `silver`.`no_such_table` cannot be found."
    ]
    assert "at org.apache" not in proc.stderr and "Traceback" not in proc.stderr


def test_missing_java_is_one_clear_line(tmp_path):
    env = lakehouse_env(tmp_path, PATH="/nonexistent")
    env.pop("JAVA_HOME", None)
    proc = run_cli(env, "sql", "SELECT 1")
    assert proc.returncode == 1
    [line] = error_lines(proc.stderr)
    assert line.startswith("error: Java is not installed") and "JAVA_HOME" in line


def test_init_of_an_undeclared_table_is_one_line_before_spark_starts(tmp_path):
    proc = run_cli(lakehouse_env(tmp_path), "init", "silver.gnomad_variants", "silver.no_such_table")
    assert proc.returncode == 1
    [line] = error_lines(proc.stderr)
    assert (
        line.startswith("error: no declaration for silver.no_such_table in ")
        and "gnomad_variants" not in line
    )
    assert not (tmp_path / "metastore_db").exists()  # refused before a session (and its catalog) started


def test_config_shows_effective_values_and_origins(tmp_path):
    (tmp_path / "lakehouse.toml").write_text('[lakehouse]\nspark_master = "spark://127.0.0.1:7077"\n')
    proc = run_cli(lakehouse_env(tmp_path, LAKEHOUSE_SPARK_MASTER=""), "config")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "spark_master" in line)
    assert "spark://127.0.0.1:7077" in line and "lakehouse.toml" in line
    assert str(tmp_path) in proc.stdout
    proc = run_cli(
        lakehouse_env(tmp_path, LAKEHOUSE_SPARK_MASTER="", LAKEHOUSE_GX_MAX_ROWS="5000"),
        "config",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    shown = {row["setting"]: row for row in json.loads(proc.stdout)}
    assert shown["spark_master"]["value"] == "spark://127.0.0.1:7077"
    assert shown["spark_master"]["from"] == f"file {tmp_path / 'lakehouse.toml'}"
    assert "GX up to 5000 rows" in shown["validation_engine"]["value"]
    assert shown["home"]["value"] == str(tmp_path)


def test_no_credential_reaches_logs_runs_or_commits(landed):
    """Grep everything the full run wrote (logs, Delta logs, MLflow store, reports, catalog) and printed."""
    from pathlib import Path

    env, proc = landed
    config = run_cli(env, "config")
    assert config.returncode == 0 and "spark.lakehouse.store.password=*********(redacted)" in config.stdout
    printed = proc.stdout + proc.stderr + config.stdout + config.stderr
    home = Path(env["LAKEHOUSE_HOME"])
    files = [p for p in home.rglob("*") if p.is_file() and "cache" not in p.relative_to(home).parts]
    assert len(files) > 100  # the run wrote its tables, logs, MLflow store and reports here
    found = {
        (secret, str(path.relative_to(home)))
        for path in files
        for secret in SECRETS
        if secret.encode() in path.read_bytes()
    }
    found |= {(secret, "output") for secret in SECRETS if secret in printed}
    assert found == set()
    from reliability.catalogue import record

    record(
        "credentials in logs, runs and commits",
        f"0 of {len(SECRETS)} planted secrets found in {len(files)} files",
    )
