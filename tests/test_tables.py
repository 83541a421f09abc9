"""Write helpers, runs and drift checks against real Delta tables in a real metastore."""

import json
from itertools import count

import pytest
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table, table_property
from lakehouse.errors import DataError, SchemaDriftError
from lakehouse.quality.quarantine import quarantine
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import parse_declaration
from lakehouse.spark_writes import replace_source, upsert, with_provenance

_names = count()


def declare(columns=None, **extra):
    name = f"bronze.t{next(_names)}_{extra.pop('suffix', 'x')}"
    return parse_declaration(
        {
            "name": name,
            "description": "test table",
            "primary_key": ["sample_id", "gene"],
            "columns": columns
            or [
                {"name": "sample_id", "type": "string", "nullable": False, "description": "sample"},
                {"name": "gene", "type": "string", "nullable": False, "description": "gene"},
                {"name": "value", "type": "double", "description": "value"},
            ],
            **extra,
        }
    )


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("sample_id,gene,value\nS1,TP53,1.5\nS1,EGFR,2.5\nS2,TP53,3.5\n")
    return InputFile.of(path)


def load(spark, source, run, values=None):
    frame = spark.read.csv(source.path, header=True, schema="sample_id string, gene string, value double")
    if values:
        frame = frame.withColumn("value", F.coalesce(F.lit(values.get("value")).cast("double"), "value"))
    return with_provenance(frame, source, run)


def data_rows(spark, name, version=None):
    reader = spark.read.option("versionAsOf", version) if version is not None else spark.read
    frame = (
        reader.table(name) if version is None else spark.sql(f"SELECT * FROM {name} VERSION AS OF {version}")
    )
    return sorted(tuple(r) for r in frame.drop("ingested_at", "ingest_run_id").collect())


def runs_of(spark, job):
    return spark.table("meta.ingest_runs").filter(F.col("job") == job).orderBy("started_at").collect()


def test_repeated_upsert_leaves_identical_rows_and_two_runs(spark, settings, source):
    decl = declare(suffix="upsert")
    job = f"test-{decl.table}"
    for _ in range(2):
        with IngestRun(spark, settings, job=job, inputs=[source]) as run:
            upsert(spark, load(spark, source, run), decl, run, source)
        if _ == 0:
            first = data_rows(spark, decl.name)
    assert data_rows(spark, decl.name) == first
    assert [
        (r.sample_id, r.value) for r in spark.table(decl.name).orderBy("sample_id", "gene").collect()
    ] == [("S1", 2.5), ("S1", 1.5), ("S2", 3.5)]
    runs = runs_of(spark, job)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert [r.rows_written for r in runs] == [3, 0]  # the second run rewrote nothing
    assert runs[0].inputs[0].sha256 == source.sha256 and runs[0].inputs[0].size_bytes == source.size_bytes
    assert runs[0].targets[0].table_name == decl.name and runs[0].ended_at >= runs[0].started_at


def test_upsert_of_changed_values_updates_and_time_travel_keeps_the_old(spark, settings, source):
    decl = declare(suffix="change")
    with IngestRun(spark, settings, job="test-change", inputs=[source]) as run:
        v1 = upsert(spark, load(spark, source, run), decl, run, source)
    with IngestRun(spark, settings, job="test-change", inputs=[source]) as run:
        v2 = upsert(spark, load(spark, source, run, {"value": 9.0}), decl, run, source)
    assert v2 == v1 + 1
    assert {r.value for r in spark.table(decl.name).collect()} == {9.0}
    old = spark.sql(f"SELECT value FROM {decl.name} VERSION AS OF {v1}").collect()
    assert sorted(r.value for r in old) == [1.5, 2.5, 3.5]
    assert spark.sql(f"SELECT count(*) AS n FROM {decl.name} VERSION AS OF 0").first().n == 0


def test_replace_source_is_idempotent_and_commit_metadata_names_the_run(spark, settings, source, tmp_path):
    decl = declare(suffix="replace")
    other_path = tmp_path / "other.csv"
    other_path.write_text("sample_id,gene,value\nS9,KRAS,7.0\n")
    other = InputFile.of(other_path)
    run_ids = []
    for src in (source, other, source):
        with IngestRun(spark, settings, job="test-replace", inputs=[src]) as run:
            replace_source(spark, load(spark, src, run), decl, run, src)
            run_ids.append(run.run_id)
    rows = spark.table(decl.name).groupBy("source_file").count().collect()
    assert {(r.source_file, r["count"]) for r in rows} == {(source.path, 3), (other.path, 1)}
    last = spark.sql(f"DESCRIBE HISTORY {decl.name} LIMIT 1").first()
    meta = json.loads(last.userMetadata)
    assert meta == {
        "job": "test-replace",
        "run_id": run_ids[-1],
        "source_file": source.path,
        "source_sha256": source.sha256,
    }


def test_duplicate_keys_in_the_input_are_refused_naming_the_key(spark, settings, tmp_path):
    decl = declare(suffix="dups")
    path = tmp_path / "dups.csv"
    path.write_text("sample_id,gene,value\nS1,TP53,1\nS1,TP53,2\n")
    src = InputFile.of(path)
    with (
        pytest.raises(DataError, match=r"repeats primary key \(sample_id, gene\): sample_id=S1, gene=TP53"),
        IngestRun(spark, settings, job="test-dups", inputs=[src]) as run,
    ):
        upsert(spark, load(spark, src, run), decl, run, src)
    failed = runs_of(spark, "test-dups")
    assert [r.status for r in failed] == ["failed"]
    assert "repeats primary key" in failed[0].error
    assert not spark.catalog.tableExists(decl.name) or spark.table(decl.name).count() == 0


def test_quarantine_keeps_bad_records_with_line_and_reason(spark, settings, source):
    bad = spark.createDataFrame(
        [("bronze.x", source.path, source.sha256, 7, "S1,TP53,abc", "value 'abc' is not a double")],
        "table_name string, source_file string, source_sha256 string, line_number bigint, record string, reason string",
    )
    with IngestRun(spark, settings, job="test-quarantine", inputs=[source]) as run:
        assert quarantine(spark, bad, run) == 1
    row = spark.table("quality.quarantine").filter(F.col("ingest_run_id") == run.run_id).first()
    assert (row.line_number, row.record, row.reason) == (7, "S1,TP53,abc", "value 'abc' is not a double")
    assert runs_of(spark, "test-quarantine")[0].rows_quarantined == 1


def test_schema_drift_is_refused_naming_table_and_column(spark):
    from lakehouse.catalog import forget_checks

    base = declare(suffix="drift")
    ensure_table(spark, base)
    as_dict = {"name": base.name, "description": "d", "primary_key": ["sample_id", "gene"]}
    cols = [
        {"name": c.name, "type": c.type, "nullable": c.nullable, "description": "c"} for c in base.columns[:3]
    ]

    forget_checks()
    retyped = parse_declaration({**as_dict, "columns": [*cols[:2], {**cols[2], "type": "string"}]})
    with pytest.raises(
        SchemaDriftError, match=f"table {base.name}: column value is stored as double but declared as string"
    ):
        ensure_table(spark, retyped)

    forget_checks()
    added = [*cols, {"name": "unit", "type": "string", "description": "unit"}]
    with pytest.raises(
        SchemaDriftError, match=f"table {base.name}: column unit is declared but not stored; add a migration"
    ):
        ensure_table(spark, parse_declaration({**as_dict, "columns": added}))

    forget_checks()
    ensure_table(
        spark,
        parse_declaration(
            {**as_dict, "columns": added, "migrations": [{"version": 2, "add_columns": ["unit"]}]}
        ),
    )
    assert "unit" in spark.table(base.name).columns
    assert table_property(spark, base.name, "lakehouse.schema_version") == "2"

    forget_checks()
    renamed = [*cols, {"name": "units", "type": "string", "description": "unit"}]
    with pytest.raises(SchemaDriftError, match=f"table {base.name}: stored column unit is not declared"):
        ensure_table(
            spark,
            parse_declaration(
                {**as_dict, "columns": renamed, "migrations": [{"version": 2, "add_columns": ["units"]}]}
            ),
        )


def test_row_counts_come_from_the_log_unless_deletion_vectors_hide_rows(spark):
    """`lakehouse tables` and the gate count rows from the add actions' numRecords; a table with deletion
    vectors keeps the deleted rows in that figure, so it is counted (and validated) by a scan."""
    from lakehouse.catalog import list_tables
    from lakehouse.quality.checks import version_tallies
    from lakehouse.reader import logged_rows
    from lakehouse.storage import open_table

    spark.sql("DROP TABLE IF EXISTS bronze.rows_probe")
    spark.sql("DROP TABLE IF EXISTS bronze.rows_probe_dv")
    for name, deletion_vectors in (("bronze.rows_probe", "false"), ("bronze.rows_probe_dv", "true")):
        spark.sql(
            f"CREATE TABLE {name} (id INT) USING DELTA "
            f"TBLPROPERTIES ('delta.enableDeletionVectors' = '{deletion_vectors}')"
        )
        spark.sql(f"INSERT INTO {name} VALUES (1), (2), (3), (4)")
    assert logged_rows(open_table(spark, "bronze.rows_probe")) == 4
    spark.sql("DELETE FROM bronze.rows_probe_dv WHERE id = 1")
    assert logged_rows(open_table(spark, "bronze.rows_probe_dv")) is None  # the log still says 4 rows
    # nor does the gate sum its files' stored counts then: it validates such a version by a scan
    assert version_tallies(None, open_table(spark, "bronze.rows_probe"), "bronze.rows_probe", []).rows == 4
    hidden = version_tallies(None, open_table(spark, "bronze.rows_probe_dv"), "bronze.rows_probe_dv", [])
    assert "deletion vectors" in hidden.undecided
    listed = {t.name: t for t in list_tables(spark) if t.name.startswith("bronze.rows_probe")}
    assert (listed["bronze.rows_probe"].rows, listed["bronze.rows_probe_dv"].rows) == (4, 3)
    assert listed["bronze.rows_probe_dv"].operation == "DELETE"
    spark.sql("DROP TABLE bronze.rows_probe")
    spark.sql("DROP TABLE bronze.rows_probe_dv")


def test_tables_read_without_a_jvm_are_what_spark_reads(spark, settings):
    """`lakehouse.read_table`, `history`, `tables` and `table_path` read the Delta log with delta-rs and find
    a table through the warehouse's catalog directory, whose entry the catalog wrote as it created it."""
    import subprocess
    import sys

    import pyarrow.dataset as pads

    import lakehouse
    from lakehouse.errors import LakehouseError
    from lakehouse.storage import table_location

    decl = declare(
        [
            {"name": "id", "type": "int", "nullable": False, "description": "row"},
            {"name": "contig", "type": "string", "nullable": False, "description": "contig"},
            {"name": "af", "type": "double", "description": "frequency"},
        ],
        primary_key=["id"],
        partition_by=["contig"],
        provenance=False,
        suffix="reader",
    )
    ensure_table(spark, decl)
    entry = json.loads((settings.home / "warehouse" / "_catalog" / f"{decl.name}.json").read_text())
    assert entry == {"name": decl.name, "layer": "bronze", "location": table_location(spark, decl.name)}
    rows = [(1, "chr1", 0.1), (2, "chr1", 0.7), (3, "chrX", 0.9)]
    more = [(4, "chr2", 0.6), (5, "chrX", None)]
    for batch in (rows, more):
        spark.createDataFrame(batch, "id int, contig string, af double").write.format("delta").mode(
            "append"
        ).saveAsTable(decl.name)

    assert lakehouse.table_path(decl.name, settings) == entry["location"]
    current = lakehouse.read_table(decl.name, settings=settings)
    assert current.num_rows == spark.table(decl.name).count() == 5
    first = lakehouse.read_table(
        decl.name, version=1, columns=["id", "af"], filter=pads.field("af") > 0.5, settings=settings
    )
    assert first.column_names == ["id", "af"]
    assert sorted(first.column("id").to_pylist()) == sorted(
        r.id for r in spark.read.option("versionAsOf", 1).table(decl.name).filter("af > 0.5").collect()
    )
    assert sorted(first.column("id").to_pylist()) == [2, 3]
    assert [c["version"] for c in lakehouse.history(decl.name, settings=settings)] == [2, 1, 0]
    listed = {t.name: t for t in lakehouse.tables(settings)}
    assert (listed[decl.name].version, listed[decl.name].rows) == (2, 5)
    with pytest.raises(LakehouseError, match=r"table bronze.no_such_table not found in the warehouse"):
        lakehouse.read_table("bronze.no_such_table", settings=settings)
    with pytest.raises(LakehouseError, match=rf"table {decl.name} has no column depth"):
        lakehouse.read_table(decl.name, columns=["id", "depth"], settings=settings)
    # Reading needs no Spark at all: not even its Python package is imported.
    probe = (
        "import sys, lakehouse; from lakehouse.settings import Settings; "
        f"print(lakehouse.read_table({decl.name!r}, settings=Settings.load()).num_rows, 'pyspark' in sys.modules)"
    )
    env = {"LAKEHOUSE_HOME": str(settings.home), "PATH": "/nonexistent", "GX_ANALYTICS_ENABLED": "false"}
    found = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert found.stdout.split() == ["5", "False"], found.stderr[-2000:]
    spark.sql(f"DROP TABLE {decl.name}")
    assert decl.name not in {t.name for t in lakehouse.tables(settings)}  # its entry outlives it: skipped
