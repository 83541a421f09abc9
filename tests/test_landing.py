"""The landing engine: statistics, conforming, task-written files and delta-rs commits on real Delta tables
read back by Spark, delta-rs and DuckDB."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.errors import DataError
from lakehouse.landing import (
    Provenance,
    Report,
    Rows,
    Target,
    changed_rows,
    check_keys,
    commit,
    conform,
    file_stats,
    fill_gaps,
    key_hashes,
    repeated_hashes,
    repeated_values,
    upsert_rows,
    write_pieces,
)
from lakehouse.runs import IngestResult, IngestRun, InputFile
from lakehouse.schemas import parse_declaration


def test_statistics_bound_only_what_readers_compare_exactly():
    long_min, long_max = "a" * 300, "z" * 300
    table = pa.table(
        {
            "pos": pa.array([5, None, 2], pa.int64()),
            "name": pa.array(["b", long_min, long_max]),
            "score": pa.array([1.5, float("nan"), 0.5]),
            "ratio": pa.array([0.25, None, 0.75]),
            "day": pa.array([dt.date(2024, 1, 2), dt.date(2023, 5, 1), None]),
            "flag": pa.array([True, False, None]),
            "nested": pa.array([{"a": 1, "b": 2}] * 3),
        }
    )
    stats = file_stats(table)
    assert stats["numRecords"] == 3
    assert stats["minValues"] == {"pos": 2, "name": "a" * 256, "ratio": 0.25, "day": "2023-05-01"}
    assert stats["maxValues"] == {
        "pos": 5,
        "ratio": 0.75,
        "day": "2024-01-02",
    }  # a long max has no prefix bound
    assert stats["nullCount"] == {"pos": 1, "name": 0, "score": 0, "ratio": 1, "day": 1, "flag": 1}
    assert file_stats(table, indexed=2)["nullCount"] == {"pos": 1, "name": 0}


DECL = {
    "name": "silver.landing_probe",
    "description": "rows of the landing engine's tests",
    "primary_key": ["contig", "pos"],
    "partition_by": ["contig"],
    "columns": [
        {"name": "contig", "type": "string", "nullable": False, "description": "contig"},
        {"name": "pos", "type": "bigint", "nullable": False, "description": "position"},
        {"name": "value", "type": "double", "description": "a value"},
        {"name": "line_number", "type": "bigint", "description": "line"},
    ],
}


def _target_schema():
    from lakehouse.landing import arrow_schema

    return arrow_schema(parse_declaration(DECL))


def test_conform_orders_casts_and_names_the_line_of_a_missing_required_value():
    from lakehouse.storage import Storage

    decl = parse_declaration(DECL)
    schema = _target_schema()
    target = Target(decl.name, schema, ("contig",), ("contig", "pos"), Storage("file:/nowhere"), decl)
    provenance = Provenance("probe.txt", "0" * 64, None, "run", dt.datetime(2026, 12, 3))
    rows = provenance.add_to(
        pa.table({"pos": pa.array([1, 2], pa.int32()), "contig": ["chr1", "chr2"], "line_number": [7, 9]})
    )
    conformed = conform(rows, target, "probe.txt")
    assert conformed.schema.names == [*decl.column_names]
    assert conformed.column("pos").type == pa.int64() and conformed.column("value").null_count == 2
    with pytest.raises(DataError, match=r"^probe.txt, line 9: silver.landing_probe.pos is declared not null"):
        conform(rows.set_column(0, "pos", pa.array([1, None])), target, "probe.txt")
    with pytest.raises(DataError, match=r"columns not declared for silver.landing_probe: \['extra'\]"):
        conform(rows.append_column("extra", pa.array([1, 2])), target, "probe.txt")


def _dimension(rows: list[dict]) -> pa.Table:
    schema = pa.schema([("case", pa.string()), ("age", pa.int32()), ("fields", pa.map_(pa.string(), pa.string())),
                        ("source_file", pa.string())])  # fmt: skip
    return pa.Table.from_pylist(rows, schema)


def test_gaps_fill_from_the_stored_row_and_maps_merge_with_the_rows_entries_winning():
    stored = _dimension([
        {"case": "C1", "age": 40, "fields": [("stage", "II"), ("site", "breast")], "source_file": "old.tsv"},
        {"case": "C2", "age": None, "fields": None, "source_file": "old.tsv"},
    ])  # fmt: skip
    rows = _dimension([
        {"case": "C1", "age": None, "fields": [("stage", "III")], "source_file": "new.tsv"},
        {"case": "C2", "age": 7, "fields": [("grade", "G1")], "source_file": "new.tsv"},
        {"case": "C3", "age": None, "fields": None, "source_file": "new.tsv"},
    ])  # fmt: skip
    filled = fill_gaps(rows, stored, ["case"]).to_pylist()
    assert filled[0] == {"case": "C1", "age": 40, "fields": [("site", "breast"), ("stage", "III")],
                         "source_file": "new.tsv"}  # fmt: skip
    assert filled[1]["age"] == 7 and filled[1]["fields"] == [("grade", "G1")]
    assert filled[2] == {"case": "C3", "age": None, "fields": None, "source_file": "new.tsv"}
    # what an upsert writes: new keys and changed values; provenance and map order are not a change
    same = _dimension([{"case": "C1", "age": 40, "fields": [("site", "breast"), ("stage", "II")],
                        "source_file": "elsewhere.tsv"}])  # fmt: skip
    assert changed_rows(same, stored, ["case"]).num_rows == 0
    assert changed_rows(rows, stored, ["case"]).column("case").to_pylist() == ["C1", "C2", "C3"]


def test_repeated_keys_are_found_alike_on_key_columns_and_on_their_hashes():
    rows = pa.table({"contig": ["chr2", "chr1", "chr2", None, None, "chr1"], "pos": [7, 3, 7, None, None, 4]})
    key = ["contig", "pos"]
    # key columns: first seen first, a null key repeated like any other
    assert repeated_values(rows, key).to_pylist() == [
        {"contig": "chr2", "pos": 7},
        {"contig": None, "pos": None},
    ]
    assert repeated_values(rows.slice(0, 1), key).num_rows == 0
    # one integer column (hashes): sorted, in the column's type
    ints = repeated_values(pa.table({"pos": pa.array([9, 3, 9, 3, 3, 1], pa.int32())}), ["pos"])
    assert ints.column("pos").to_pylist() == [3, 9] and ints.schema.field("pos").type == pa.int32()
    hashes = key_hashes(rows, key)
    assert sorted(repeated_hashes(hashes)) == sorted(set(hashes[[0, 3]]))
    assert repeated_hashes(hashes[:2]).dtype == np.uint64 and len(repeated_hashes(hashes[:0])) == 0


def test_every_source_summarises_its_run_alike():
    versions = {"silver.geo_expression": 4, "gold.geo_gene_expression": 2, "quality.validation_results": 9}
    rows = {"silver.geo_expression": 720, "gold.geo_gene_expression": 1}
    counts = {"samples": 6, "values": 720, "non-numeric values → null": 18}
    landed = IngestResult("GEO", "r1", ("/in/a.soft", "/in/b.soft"), versions, rows, 3, counts=counts)
    assert landed.summary().splitlines() == [
        "GEO 2 files: 6 samples, 720 values, 18 non-numeric values → null, 721 rows written, 3 quarantined; run r1",
        "  gold.geo_gene_expression → version 2 (1 row written)",
        "  quality.validation_results → version 9",  # the gate's results: appended, not counted as written
        "  silver.geo_expression → version 4 (720 rows written)",
    ]
    one = IngestResult("gnomAD", "r2", ("/in/g.vcf.bgz",), counts={"release": "v4.1", "records": 7})
    assert (
        one.summary()
        == "gnomAD /in/g.vcf.bgz: release v4.1, 7 records, 0 rows written, 0 quarantined; run r2"
    )
    skipped = IngestResult("gnomAD", "r3", ("/in/g.vcf.bgz",), skipped=True, counts={"release": "v4.1"})
    assert skipped.summary() == "gnomAD /in/g.vcf.bgz: already landed (same SHA-256); nothing written; run r3"


def test_an_upsert_of_driver_rows_replaces_by_key_and_commits_nothing_when_nothing_changes(
    spark, settings, probe
):
    decl, source = probe
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)
        mark = Provenance.of(source, run)

        def rows(positions: list[int], value: float | None) -> pa.Table:
            n = len(positions)
            return mark.add_to(pa.table({"contig": ["chr1"] * n, "pos": pa.array(positions, pa.int64()),
                                         "value": pa.array([value] * n, pa.float64()),
                                         "line_number": pa.array(range(n), pa.int64())}))  # fmt: skip

        first = upsert_rows(target, rows([1, 2, 3], 0.5), run, source=[source])
        assert upsert_rows(target, rows([1, 2], 0.5), run, source=[source]) == first  # nothing changed
        second = upsert_rows(target, rows([2, 4], None), run, source=[source], fill=True)
        with pytest.raises(
            DataError, match=r"the batch repeats primary key \(contig, pos\): contig=chr1, pos=5"
        ):
            upsert_rows(target, rows([5, 5], 1.0), run, source=[source])
    assert second == first + 1
    stored = {r.pos: r.value for r in spark.table(decl.name).collect()}
    assert stored == {1: 0.5, 2: 0.5, 3: 0.5, 4: None}  # pos 2's null value was filled from the stored row


@pytest.fixture
def probe(spark, settings, tmp_path):
    """A declared table of the session warehouse, emptied for each test, and a source file for it."""
    from lakehouse.catalog import forget_checks

    spark.sql("DROP TABLE IF EXISTS silver.landing_probe")
    forget_checks()
    decl = parse_declaration(DECL)
    source = tmp_path / "probe.tsv"
    source.write_text("probe\n")
    return decl, InputFile.of(source)


def _pieces(source: InputFile, run, positions_per_piece: list[list[int]], encoded: bool = False):
    """Pieces of probe rows; `encoded`: the provenance strings dictionary-encoded, as long-form tables
    hand them over (one value on every row)."""
    provenance = Provenance.of(source, run)

    def work(piece):
        (index,) = piece
        positions = positions_per_piece[index]
        rows = pa.table(
            {
                "contig": ["chr1" if p < 100 else "chr2" for p in positions],
                "pos": pa.array(positions, pa.int64()),
                "value": pa.array([p / 10 for p in positions]),
                "line_number": pa.array([i + 1 for i in range(len(positions))], pa.int64()),
            }
        )
        rows = provenance.add_to(rows)
        if encoded:
            for name in ("source_file", "source_sha256", "ingest_run_id"):
                rows = rows.set_column(
                    rows.schema.get_field_index(name), name, pc.dictionary_encode(rows.column(name))
                )
        yield Rows("silver.landing_probe", rows, f"piece {index}")
        yield Report({"index": index, "rows": len(positions)})

    return [(i,) for i in range(len(positions_per_piece))], work


def _checksum(rows: list[tuple]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()


def test_pieces_land_once_and_read_the_same_in_spark_delta_rs_and_duckdb(spark, settings, probe):
    import duckdb
    from deltalake import DeltaTable

    decl, source = probe
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)
        pieces, work = _pieces(source, run, [[1, 2, 150], [3, 160, 170], [4]])
        written = write_pieces(spark, pieces, "index int", [1, 1, 1], work, [target])
        assert sorted(r["rows"] for r in written.reports) == [1, 3, 3]
        check_keys([target], written)
        version = commit(
            target, written.files[decl.name], run, app_id=f"probe:{source.sha256}", source=source
        )
        again = commit(target, written.files[decl.name], run, app_id=f"probe:{source.sha256}", source=source)
    assert again == version == 1  # the repeated commit found its transaction id and added nothing

    spark_rows = [tuple(r) for r in spark.table(decl.name).select("contig", "pos", "value").collect()]
    assert len(spark_rows) == 7
    location = target.storage.delta_uri()
    delta = DeltaTable(location)
    rs_rows = delta.to_pyarrow_table(columns=["contig", "pos", "value"]).to_pylist()
    duck = duckdb.connect()
    duck.execute(f"LOAD '{_duckdb_delta_extension()}'")
    duck_rows = duck.execute(f"SELECT contig, pos, value FROM delta_scan('{location}')").fetchall()
    assert _checksum(spark_rows) == _checksum([tuple(r.values()) for r in rs_rows]) == _checksum(duck_rows)
    adds = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
    # one file per task and partition (2 tasks on local[2]), each with its statistics
    assert {a["partition.contig"] for a in adds} == {"chr1", "chr2"} and sum(
        a["num_records"] for a in adds
    ) == 7
    assert all(
        a["num_records"] and a["min.pos"] is not None and a["max.source_file"] == source.path for a in adds
    )


def test_dictionary_encoded_columns_land_as_their_declared_type_and_unhashed_keys_are_read_when_needed(
    spark, settings, probe
):
    """A long-form table hands over repeated strings dictionary-encoded, and a table whose key follows
    from another's sends no key hashes back (`write_pieces`'s `hashed`): every reader still sees plain
    strings with statistics, and a repeated key is still refused, from the files' key columns."""
    import duckdb
    from deltalake import DeltaTable

    from lakehouse.quality.checks import count
    from lakehouse.quality.expectations import Expectation

    decl, source = probe
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)
        pieces, work = _pieces(source, run, [[1, 2, 150], [3, 160]], encoded=True)
        written = write_pieces(spark, pieces, "index int", [1, 1], work, [target], hashed=[])
        files = written.files[decl.name]
        assert files and all(f.keys is None for f in files)
        check_keys([target], written)
        commit(target, files, run, app_id=f"probe:{source.sha256}", source=source)
        pieces, work = _pieces(source, run, [[7, 8], [8]], encoded=True)
        repeated = write_pieces(spark, pieces, "index int", [1, 1], work, [target], hashed=[])
        with pytest.raises(DataError, match=r"repeats primary key \(contig, pos\): contig=chr1, pos=8"):
            check_keys([target], repeated)

    location = target.storage.delta_uri()
    delta = DeltaTable(location)
    read = delta.to_pyarrow_table(columns=["pos", "source_file"])
    assert read.schema.field("source_file").type == pa.string()
    assert set(read.column("source_file").to_pylist()) == {source.path} and read.num_rows == 5
    duck = duckdb.connect()
    duck.execute(f"LOAD '{_duckdb_delta_extension()}'")
    assert duck.execute(
        f"SELECT count(*) FROM delta_scan('{location}') WHERE source_file = ?", [source.path]
    ).fetchone() == (5,)
    assert spark.table(decl.name).where(f"source_file = '{source.path}'").count() == 5
    adds = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
    assert all(a["min.source_file"] == a["max.source_file"] == source.path for a in adds)

    # the same keys hash alike plain or encoded; expectations count alike on both
    plain = pa.table({"contig": ["chr1", "chr2", None, "chr1"], "pos": pa.array([1, 2, 3, None], pa.int64())})
    encoded = plain.set_column(0, "contig", pc.dictionary_encode(plain.column("contig")))
    assert key_hashes(plain, ["contig", "pos"]).tolist() == key_hashes(encoded, ["contig", "pos"]).tolist()
    assert len(set(key_hashes(plain, ["contig", "pos"]).tolist())) == 4
    checks = [
        Expectation("expect_column_values_to_be_in_set", {"column": "contig", "value_set": ["chr1"]}, "in"),
        Expectation(
            "expect_column_values_to_match_regex", {"column": "contig", "regex": "^chr[0-9]+$"}, "re"
        ),
    ]
    assert [(c.unexpected, c.missing) for c in count(checks, encoded).values()] == [(1, 1), (0, 1)]
    assert [(c.unexpected, c.missing) for c in count(checks, plain).values()] == [(1, 1), (0, 1)]
    assert file_stats(encoded)["minValues"]["contig"] == "chr1" == file_stats(plain)["minValues"]["contig"]


def test_held_columns_are_those_with_a_value_and_every_key_or_required_one():
    from lakehouse.landing import held_columns
    from lakehouse.storage import Storage

    decl = parse_declaration(DECL)
    target = Target("silver.landing_probe", _target_schema(), ("contig",), ("contig", "pos"),
                    Storage("file:/nowhere"), decl)  # fmt: skip

    def file_rows(**values):
        return pa.table(
            {
                f.name: pa.array(values[f.name], f.type) if f.name in values else pa.nulls(2, f.type)
                for f in target.file_schema
            }
        )

    required = {f.name for f in target.file_schema if not f.nullable}
    assert "pos" in required and "value" not in required
    assert held_columns(file_rows(pos=[5, 6], line_number=[1, None]), target) == required | {"line_number"}
    assert held_columns(file_rows(pos=[5, 6], value=[None, 0.5]), target) == required | {"value"}


def test_a_file_holds_only_its_columns_with_values_and_every_reader_sees_the_others_as_null(
    spark, settings, probe
):
    """A table whose schema is the union of its sources' columns (gnomAD releases): a file is written with
    the columns its rows have, and Spark, delta-rs and DuckDB read the others as null."""
    import duckdb
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    decl, source = probe
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)
        provenance = Provenance.of(source, run)

        def work(piece):
            (contig,) = piece
            rows = {"contig": [contig] * 3, "pos": pa.array([1, 2, 3], pa.int64())}
            if contig == "chr1":  # chr2's source has no values at all
                rows["value"] = pa.array([0.5, None, 1.5])
            yield Rows(decl.name, provenance.add_to(pa.table(rows)), f"piece {contig}")

        written = write_pieces(spark, [("chr1",), ("chr2",)], "contig string", [1, 1], work, [target])
        check_keys([target], written)
        version = commit(target, written.files[decl.name], run, app_id="sparse", source=source)
        assert commit(target, written.files[decl.name], run, app_id="sparse", source=source) == version

    location = target.storage.delta_uri()
    adds = {
        a["partition.contig"]: a
        for a in pa.table(DeltaTable(location).get_add_actions(flatten=True)).to_pylist()
    }
    held = {c: set(pq.read_schema(f"{location}/{a['path']}").names) for c, a in adds.items()}
    assert "value" in held["chr1"] and "value" not in held["chr2"] and "line_number" not in held["chr1"]
    assert adds["chr2"]["null_count.value"] == 3 and adds["chr1"]["null_count.value"] == 1
    expected = {("chr1", 1, 0.5), ("chr1", 2, None), ("chr1", 3, 1.5), ("chr2", 1, None), ("chr2", 2, None),
                ("chr2", 3, None)}  # fmt: skip
    spark_rows = {tuple(r) for r in spark.table(decl.name).select("contig", "pos", "value").collect()}
    rs_rows = {
        tuple(r.values())
        for r in DeltaTable(location).to_pyarrow_table(columns=["contig", "pos", "value"]).to_pylist()
    }
    duck = duckdb.connect()
    duck.execute(f"LOAD '{_duckdb_delta_extension()}'")
    duck_rows = set(duck.execute(f"SELECT contig, pos, value FROM delta_scan('{location}')").fetchall())
    assert spark_rows == rs_rows == duck_rows == expected
    assert spark.table(decl.name).where("value IS NULL").count() == 4


def test_replace_by_source_is_one_commit_and_repeated_keys_are_refused(spark, settings, probe):
    decl, source = probe
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)
        pieces, work = _pieces(source, run, [[1, 2], [150]])
        first = commit(
            target, write_pieces(spark, pieces, "index int", [1, 1], work, [target]).files[decl.name], run
        )
        pieces, work = _pieces(source, run, [[5], [6, 160]])
        files = write_pieces(spark, pieces, "index int", [1, 1], work, [target]).files[decl.name]
        second = commit(target, files, run, replace=[source.path])
        pieces, work = _pieces(source, run, [[7, 8], [8]])
        repeated = write_pieces(spark, pieces, "index int", [1, 1], work, [target])
        with pytest.raises(DataError, match=r"repeats primary key \(contig, pos\): contig=chr1, pos=8"):
            check_keys([target], repeated)
    assert second == first + 1
    assert run.table_rows == {decl.name: 3 + 3}  # what each commit added, per table
    assert sorted(r.pos for r in spark.table(decl.name).collect()) == [5, 6, 160]
    assert sorted(r.pos for r in spark.read.option("versionAsOf", first).table(decl.name).collect()) == [
        1,
        2,
        150,
    ]
    [operation] = [
        h.operation for h in spark.sql(f"DESCRIBE HISTORY {decl.name}").collect() if h.version == second
    ]
    assert operation == "WRITE"


def test_owned_key_columns_are_checked_in_the_tasks_and_repeats_still_refused(spark, settings, probe):
    """Pieces that own their key columns' values (here: a piece's contig) send the driver those values, not
    a hash per row; a key repeated within a task, or in two tasks sharing an owned value, is still refused,
    and a commit replacing every owned value needs no comparison with the table."""
    from lakehouse.landing import _covered, _owned_suspects, file_hashes

    decl, source = probe
    owned = {decl.name: ("contig",)}
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)

        def land(positions, **how):
            pieces, work = _pieces(source, run, positions)
            return write_pieces(spark, pieces, "index int", [1] * len(pieces), work, [target], **how)

        apart = land([[1, 2], [150]], owned=owned)
        files = apart.files[decl.name]
        assert all(f.keys is None for f in files)  # no hash per row travels to the driver
        assert sorted(tuple(v) for f in files for v in json.loads(f.owned)["values"]) == [
            ("chr1",),
            ("chr2",),
        ]
        assert _owned_suspects(files) == []
        check_keys([target], apart)
        hashed = [h for f in land([[1, 2], [150]]).files[decl.name] for h in np.frombuffer(f.keys, np.uint64)]
        assert sorted(file_hashes(target, files)) == sorted(hashed)  # read from the files when asked
        assert _covered(target, files, {"contig": ["chr1", "chr2"]})
        assert not _covered(target, files, {"contig": ["chr1"]}) and not _covered(
            target, files, [source.path]
        )

        for positions in ([[7, 8, 8], [150]], [[7, 8], [8, 150]]):  # within a task; across two tasks
            with pytest.raises(DataError, match=r"repeats primary key \(contig, pos\): contig=chr1, pos=8"):
                check_keys([target], land(positions, owned=owned))
        mixed = land([[7]], owned=owned)  # beside a file that carries hashes (as a driver rewrite does)
        mixed.files[decl.name] += land([[7]]).files[decl.name]
        with pytest.raises(DataError, match=r"repeats primary key \(contig, pos\): contig=chr1, pos=7"):
            check_keys([target], mixed)
        shared = land([[7], [9, 150]], owned=owned)  # chr1 in both tasks, no key twice
        assert len(_owned_suspects(shared.files[decl.name])) == 2
        check_keys([target], shared)


def test_a_range_query_on_pos_skips_files_by_their_statistics(spark, settings, probe):
    decl, source = probe
    with IngestRun(spark, settings, job="landing-test", inputs=[source], validate=False) as run:
        target = Target.of(spark, decl)
        pieces, work = _pieces(source, run, [[1, 2, 3], [10, 11, 12], [20, 21, 22], [30, 31]])
        commit(
            target,
            write_pieces(spark, pieces, "index int", [1, 1, 1, 1], work, [target]).files[decl.name],
            run,
        )
    frame = spark.table(decl.name).where("contig = 'chr1' AND pos BETWEEN 10 AND 12")
    assert sorted(r.pos for r in frame.collect()) == [10, 11, 12]
    assert _files_read(frame) < _files_read(spark.table(decl.name).where("contig = 'chr1'"))


def _files_read(frame) -> int:
    """Files Spark's scan reads for `frame`, after Delta's data skipping (the scan node's own metric)."""
    jdf = frame._jdf
    jdf.collectAsList()
    plan = jdf.queryExecution().executedPlan()
    if plan.nodeName().startswith("AdaptiveSparkPlan"):
        plan = plan.executedPlan()
    leaves = plan.collectLeaves()
    total = 0
    for i in range(leaves.size()):
        metrics = leaves.apply(i).metrics()
        if metrics.contains("numFiles"):
            total += metrics.apply("numFiles").value()
    return total


def _duckdb_delta_extension() -> Path:
    import duckdb
    import duckdb_extension_delta

    root = Path(duckdb_extension_delta.__file__).parent / "extensions"
    return next(root.glob(f"v{duckdb.__version__}/delta.duckdb_extension"))
