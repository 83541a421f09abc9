"""`lakehouse maintain` (#10): OPTIMIZE and VACUUM on real Delta tables, with references to table versions
from `knowledge.findings` and from a real (SQLite) MLflow registry.

Each table is written in four versions that each rewrite all of its rows (four files per version), so every
old version has files of its own: what VACUUM deleted shows in which versions time travel can still read.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import pytest
import yaml
from conftest import lakehouse_env
from pyspark.sql import functions as F

from lakehouse.maintenance import maintain, referenced_versions
from lakehouse.schemas import parse_declaration

SCHEMA = "contig string, pos bigint, allele string"
FILES_PER_VERSION = 4
MISSING_FILE = r"\[FAILED_READ_FILE\.FILE_NOT_EXIST\] .* File does not exist"


def declaration(name: str) -> dict:
    return {
        "name": name,
        "description": "variants rewritten at every version",
        "licence": "CC0-1.0",
        "source": "test generator",
        "primary_key": ["contig", "pos"],
        "cluster_by": ["contig", "pos"],
        "provenance": False,
        "columns": [
            {"name": "contig", "type": "string", "nullable": False, "description": "contig"},
            {"name": "pos", "type": "bigint", "nullable": False, "description": "1-based position"},
            {"name": "allele", "type": "string", "description": "which version wrote the row"},
        ],
    }


def rows_of(version: int) -> list[tuple]:
    return [(f"chr{i % 3 + 1}", i * 100 + version, f"v{version}") for i in range(60)]


def build(spark, table: str, versions: int = 4) -> set[str]:
    """Versions 0..versions-1, each replacing every row; returns the data files of version 0."""
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    for version in range(versions):
        frame = spark.createDataFrame(rows_of(version), SCHEMA).repartition(FILES_PER_VERSION)
        if version == 0:
            frame.writeTo(table).using("delta").create()
        else:
            frame.writeTo(table).overwrite(F.lit(True))
        if version == 1:
            time.sleep(1.5)  # the next commit lands clearly after the referenced one (SAFETY_MARGIN_MS)
    first = set(read(spark, table, 0).inputFiles())
    assert len(first) == FILES_PER_VERSION
    return first


def read(spark, table: str, version: int | None = None):
    reader = spark.read if version is None else spark.read.option("versionAsOf", version)
    return reader.table(table)


def rows(spark, table: str, version: int | None = None) -> list[tuple]:
    return sorted(tuple(row) for row in read(spark, table, version).collect())


def num_files(spark, table: str) -> int:
    return spark.sql(f"DESCRIBE DETAIL {table}").first()["numFiles"]


def register_model(spark, settings, name: str, table: str, version: int) -> str:
    """A run that trained on `table` at `version`, logged as the ML loop logs it, registered as a version."""
    import mlflow
    from mlflow import MlflowClient

    from ml.tracking import configure, log_inputs

    configure(settings, "maintain-tests")
    mlflow.set_experiment("maintain-tests")
    with mlflow.start_run() as run:
        log_inputs(spark, [{"table_name": table, "version": version, "context": "training"}])
        mlflow.log_params({"table": table, "table_version": version})
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    registered = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return str(registered.version)


@pytest.fixture(scope="module")
def maint_settings(spark, settings, tmp_path_factory):
    """The session warehouse with the test tables declared, and an MLflow registry of its own."""
    schemas = tmp_path_factory.mktemp("schemas")
    shutil.copytree(settings.schemas_dir, schemas, dirs_exist_ok=True)
    for name in ("silver.maint_variants", "silver.maint_cli", "silver.maint_plain"):
        layer, table = name.split(".")
        (schemas / layer / f"{table}.yaml").write_text(yaml.safe_dump(declaration(name)))
    return dataclasses.replace(
        settings,
        schemas_dir=schemas,
        mlflow_tracking_uri=f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db",
    )


def test_cluster_by_must_name_declared_columns():
    from lakehouse.errors import ConfigError

    decl = declaration("silver.x")
    assert parse_declaration(decl).cluster_by == ("contig", "pos")
    with pytest.raises(ConfigError, match=r"cluster_by names undeclared columns \['position'\]"):
        parse_declaration({**decl, "cluster_by": ["contig", "position"]})


def test_referenced_versions_stay_readable_and_older_ones_are_cleaned(spark, maint_settings):
    from ml.experiment import ExperimentSpec, record_finding

    table = "silver.maint_variants"
    first = build(spark, table)
    spec = ExperimentSpec(
        name="maint-exp", hypothesis="version 1 is worth keeping", table=table, label="allele", group="contig"
    )
    stats = {"model_value": 0.9, "baseline_value": 0.5, "effect": 0.4, "effect_ci": (0.3, 0.5)}
    inputs = [{"table_name": table, "version": 1, "validation_id": "-", "readiness": 1.0}]
    record_finding(spark, maint_settings, spec, "finding-v1", inputs, None, stats, "supported", "test")
    model_version = register_model(spark, maint_settings, "maint-model", table, 3)
    assert num_files(spark, table) == FILES_PER_VERSION

    references = referenced_versions(spark, maint_settings)
    assert references[table] == {
        1: ["finding finding-v1 (maint-exp)"],
        3: [f"model maint-model v{model_version}"],
    }
    started = time.monotonic()
    report = maintain(spark, maint_settings, table, references=references)
    print(f"maintain: {time.monotonic() - started:.1f} s; {json.dumps(report.to_dict(), indent=1)}")

    # OPTIMIZE: the current version's four files Z-ordered into one.
    assert report.zorder_by == ("contig", "pos")
    assert (report.optimize_files_removed, report.optimize_files_added) == (FILES_PER_VERSION, 1)
    assert (report.files_before, report.files_after) == (FILES_PER_VERSION, 1) == (4, num_files(spark, table))
    # VACUUM: exactly version 0's files, the only ones removed before the oldest reference (version 1).
    assert report.protected == references[table]
    assert report.vacuum_files_deleted == FILES_PER_VERSION
    assert set(report.vacuum_files) == first
    # Time travel: referenced versions and every later one read their exact rows; version 0 is gone.
    for version in (1, 2, 3):
        assert rows(spark, table, version) == sorted(rows_of(version)), version
    assert rows(spark, table) == sorted(rows_of(3))
    with pytest.raises(Exception, match=MISSING_FILE) as missing:
        read(spark, table, 0).collect()
    cause = next(line for line in str(missing.value).splitlines() if "FILE_NOT_EXIST" in line)
    print(f"version 0 after maintenance: {type(missing.value).__name__}: {cause.strip()[:200]}")
    # The log of the referenced versions outlives Delta's 30 days by as much as they are old.
    properties = {row.key: row.value for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}
    assert properties["delta.logRetentionDuration"] == "interval 31 days"
    assert properties["delta.deletedFileRetentionDuration"] == "interval 8 days"
    # The run is traceable: meta.ingest_runs, and the commits it made carry its id.
    run = spark.table("meta.ingest_runs").filter(F.col("run_id") == report.run_id).first()
    assert (run.job, run.status) == (f"maintain {table}", "succeeded")
    assert [(t.table_name, t.version) for t in run.targets] == [(table, report.version_after)]
    operations = {
        row.operation
        for row in spark.sql(f"DESCRIBE HISTORY {table}").collect()
        if row.userMetadata and report.run_id in row.userMetadata
    }
    assert {"OPTIMIZE", "SET TBLPROPERTIES", "VACUUM START", "VACUUM END"} <= operations

    again = maintain(spark, maint_settings, table)
    assert (again.vacuum_files, again.vacuum_files_deleted) == ([], 0)
    assert again.protected == references[table] and again.properties_set == {}
    assert rows(spark, table, 1) == sorted(rows_of(1)) and rows(spark, table) == sorted(rows_of(3))


def test_unreferenced_table_keeps_the_default_retention(spark, maint_settings):
    table = "silver.maint_plain"
    build(spark, table, versions=2)
    report = maintain(spark, maint_settings, table)
    assert report.protected == {} and report.retention_hours == pytest.approx(168, abs=0.01)
    assert (report.vacuum_files, report.vacuum_files_deleted) == ([], 0)
    assert rows(spark, table, 0) == sorted(rows_of(0))


def test_cli_dry_run_lists_then_maintain_deletes_what_a_model_does_not_need(
    spark, maint_settings, monkeypatch, capsys
):
    from lakehouse.cli import main
    from lakehouse.maintenance import data_tables

    table = "silver.maint_cli"
    first = build(spark, table)
    # Without TABLE, every bronze, silver and gold table is maintained; meta, quality and knowledge are not.
    everything = data_tables(spark)
    assert table in everything and "silver.gnomad_variants" in everything
    assert not [name for name in everything if name.split(".")[0] not in ("bronze", "silver", "gold")]
    model_version = register_model(spark, maint_settings, "maint-model", table, 1)
    for key, value in lakehouse_env(
        maint_settings.home,
        LAKEHOUSE_SCHEMAS=str(maint_settings.schemas_dir),
        MLFLOW_TRACKING_URI=maint_settings.mlflow_tracking_uri,
    ).items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()

    assert main(["maintain", table, "--dry-run", "--format", "json"]) == 0
    [planned] = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] and set(planned["vacuum_files"]) == first
    assert planned["protected"]["1"] == [f"model maint-model v{model_version}"]
    assert planned["vacuum_files_deleted"] == 0 and planned["run_id"] is None
    assert rows(spark, table, 0) == sorted(rows_of(0)) and num_files(spark, table) == FILES_PER_VERSION

    assert main(["maintain", table]) == 0
    printed = capsys.readouterr().out
    print(printed)
    [line] = [line for line in printed.splitlines() if table in line]
    cells = [cell.strip() for cell in line.strip().strip("┃│").split("│")]
    assert cells[:6] == [table, "4", "1", "4", "1", "contig,pos"]
    assert cells[7:9] == ["4", f"v1: model maint-model v{model_version}"]
    assert rows(spark, table, 1) == sorted(rows_of(1))
    with pytest.raises(Exception, match=MISSING_FILE):
        read(spark, table, 0).collect()
