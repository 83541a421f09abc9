"""Expectations counted on the files a landing writes: the same counts as Spark's predicates, a version
validated from its files' counts without reading them, and the full scan wherever counts cannot decide."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.landing import Provenance, Rows, Target, commit, write_pieces
from lakehouse.quality.checks import CHECKS_TABLE, count, countable, per_file, sql_mask, sql_masks
from lakehouse.quality.expectations import Expectation, suite_for
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import parse_declaration

KINDS = [
    Expectation("expect_column_values_to_not_be_null", {"column": "gene"}, "gene.not_null"),
    Expectation(
        "expect_column_values_to_match_regex", {"column": "gene", "regex": r"^ENSG\d{3}$"}, "gene.re"
    ),
    Expectation("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["a", "b"]}, "kind.set"),
    Expectation(
        "expect_column_values_to_be_between", {"column": "score", "min_value": 0, "max_value": 1}, "s"
    ),
    Expectation(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "an", "column_B": "ac", "or_equal": True},
        "an_ac",
    ),
    Expectation(
        "rows",
        {
            "unexpected_where": "exists(ids, x -> NOT x rlike '^rs[0-9]+$')",
            "column": "ids",
            "element_regex": r"^rs\d+$",
        },
        "ids.dbsnp",
    ),
]


def test_arrow_counts_agree_with_the_spark_predicates(spark):
    table = pa.table(
        {
            "gene": ["ENSG001", "ENSG1", None, "ENSG002", "x"],
            "kind": ["a", "c", None, "b", "a"],
            "score": [0.5, 1.5, None, -0.1, 1.0],
            "an": pa.array([10, 4, None, 3, None], pa.int32()),
            "ac": pa.array([2, 5, 1, 3, None], pa.int32()),
            "ids": [["rs1", "rs2"], ["rs3", "bad"], None, [], ["x", "y"]],
        }
    )
    frame = spark.createDataFrame(table.to_pandas())
    counts = count(KINDS, table)
    for exp in KINDS:
        assert countable(exp)
        expected = frame.filter(exp.unexpected_predicate()).count()
        assert counts[exp.id].unexpected == expected, exp.id
        assert counts[exp.id].rows == 5
    assert [c.unexpected for c in counts.values()] == [1, 2, 1, 2, 1, 2]
    assert counts["gene.re"].missing == 1 and counts["an_ac"].missing == 1
    assert counts["kind.set"].sample == ['{"kind": "c"}']
    assert counts["an_ac"].sample == ['{"ac": 5, "an": 4}']


SQL_KINDS = [
    Expectation("rows", {"unexpected_where": "an > 0 AND abs(af - ac / an) > 1e-4"}, "af_matches"),
    Expectation("rows", {"unexpected_where": "2 * nhomalt > ac AND contig NOT IN ('chrX', 'chrY')"}, "hom"),
    Expectation("rows", {"unexpected_where": "isnan(af) OR abs(af) = CAST('Infinity' AS DOUBLE)"}, "finite"),
    Expectation("share_between", {"where": "array_contains(filters, 'PASS')", "min_value": 0.5}, "pass"),
]


def test_sql_expectations_count_the_same_rows_in_duckdb_as_in_spark(spark):
    """Declared SQL is read by both engines: DuckDB on the rows a task writes, Spark on a version."""
    table = pa.table(
        {
            "contig": ["chr1", "chr1", "chrX", "chr2", "chr3", "chr1"],
            "ac": pa.array([2, 3, 3, None, 4, 0], pa.int32()),
            "an": pa.array([10, 10, 4, 10, 0, 8], pa.int32()),
            "af": [0.2, 0.31, 0.75, 0.1, float("nan"), float("inf")],
            "nhomalt": pa.array([1, 2, 3, 0, None, 0], pa.int32()),
            "filters": [["PASS"], ["AC0", "RF"], ["PASS"], None, ["PASS"], []],
        }
    )
    frame = spark.createDataFrame(table)  # from Arrow: NaN stays NaN (pandas would make it null)
    counts = count(SQL_KINDS, table)
    for exp in SQL_KINDS[:3]:
        assert counts[exp.id].unexpected == frame.filter(exp.unexpected_predicate()).count(), exp.id
    assert [counts[e.id].unexpected for e in SQL_KINDS] == [2, 1, 2, 3]
    assert counts["af_matches"].sample == [
        '{"ac": 3, "af": 0.31, "an": 10}',
        '{"ac": 0, "af": Infinity, "an": 8}',
    ]
    # Counted together, in one query over the columns they name, as each is alone (and SQL naming none).
    predicates = {"one": "ac > an", "two": "contig = 'chrX' AND nhomalt > 1", "none": "1 = 1"}
    together = sql_masks(table, predicates)
    for name, predicate in predicates.items():
        assert together[name].to_pylist() == sql_mask(table, predicate).to_pylist(), name
    assert together["two"].to_pylist() == [False, False, True, False, False, False]
    assert together["none"].to_pylist() == [True] * 6


def test_values_in_a_reference_table_match_on_the_source_and_bound_a_position(spark):
    """`values_in_table` with match, table_filter, element and at_most: the Arrow mask selects the rows
    the Spark SQL selects, and a source the reference says nothing about is not judged."""
    from lakehouse.quality.checks import reference_mask
    from lakehouse.quality.validate import unexpected_rows

    reference = pa.table(
        {
            "source_sha256": ["a", "a", "a", "a", "b"],
            "kind": ["contig", "contig", "FILTER", "FILTER", "FILTER"],
            "id": ["chr1", "chr2", "PASS", "AC0", "PASS"],
            "length": pa.array([1000, None, None, None, None], pa.int64()),
        }
    )
    rows = pa.table(
        {
            "source_sha256": pa.array(["a", "a", "a", "a", "b", "c"]).dictionary_encode(),
            "contig": ["chr1", "chr1", "chr2", "chr9", "chr1", "chr1"],
            "pos": pa.array([5, 1001, 10**9, 3, 5, 5], pa.int64()),
            "filters": [["PASS"], ["AC0", "RF"], None, ["PASS", "PASS"], ["AC0"], ["XX"]],
        }
    )
    contig = Expectation(
        "values_in_table",
        {"column": "contig", "table": "ref_ids", "table_column": "id", "match": {"source_sha256": "source_sha256"},
         "table_filter": {"kind": "contig"}, "at_most": {"column": "pos", "table_column": "length"}},
        "contig.declared",
    )  # fmt: skip
    filters = Expectation(
        "values_in_table",
        {"column": "filters", "element": True, "table": "ref_ids", "table_column": "id",
         "match": {"source_sha256": "source_sha256"}, "table_filter": {"kind": "FILTER"}},
        "filters.declared",
    )  # fmt: skip
    spark.createDataFrame(reference.to_pandas()).createOrReplaceTempView("ref_ids")
    frame = spark.createDataFrame(rows.combine_chunks().cast(
        pa.schema([("source_sha256", pa.string()), *list(rows.schema)[1:]])).to_pandas())  # fmt: skip
    assert np.flatnonzero(reference_mask(contig, rows, reference).to_numpy()).tolist() == [1, 3]
    assert np.flatnonzero(reference_mask(filters, rows, reference).to_numpy()).tolist() == [1, 4]
    for exp, expected in ((contig, [1001, 3]), (filters, [1001, 5])):
        assert sorted(r.pos for r in unexpected_rows(spark, frame, exp).collect()) == sorted(expected)


DECL = {
    "name": "silver.checks_probe",
    "description": "rows of the counted-validation tests",
    "primary_key": ["contig", "pos"],
    "partition_by": ["contig"],
    "columns": [
        {"name": "contig", "type": "string", "nullable": False, "description": "contig"},
        {"name": "pos", "type": "bigint", "nullable": False, "description": "position"},
        {"name": "value", "type": "double", "description": "a share"},
    ],
    "expectations": [
        {"type": "expect_column_values_to_be_between", "column": "value", "min_value": 0, "max_value": 1}
    ],
}


def _land(spark, settings, target, source: InputFile, positions: list[int], values: list[float]):
    """One landing of `positions` into the probe table; returns the run (its validations are done)."""
    with IngestRun(spark, settings, job="checks-probe", inputs=[source]) as run:
        provenance = Provenance.of(source, run)

        def work(piece):
            rows = pa.table({"contig": ["chr1"] * len(positions), "pos": pa.array(positions, pa.int64()),
                             "value": values})  # fmt: skip
            yield Rows(target.name, provenance.add_to(rows), source.path)

        written = write_pieces(spark, [(0,)], "index int", [1], work, [target])
        commit(target, written.files[target.name], run,
               replace=[source.path], source=source)  # fmt: skip
    return run


@pytest.fixture
def counted(spark, settings):
    from lakehouse.catalog import forget_checks

    spark.sql("DROP TABLE IF EXISTS silver.checks_probe")
    forget_checks()
    decl = parse_declaration(DECL)
    return decl, Target.of(spark, decl, settings.schemas_dir)


def test_a_version_validates_from_its_files_counts_and_falls_back_to_the_scan_on_a_violation(
    spark, settings, counted, tmp_path
):
    from lakehouse.quality.validate import validate_table

    decl, target = counted
    assert {e.id for e in target.checked} == {e.id for e in per_file(suite_for(decl))}
    assert target.unique is not None and target.ledger.name == CHECKS_TABLE
    sources = []
    for name in ("a.tsv", "b.tsv", "c.tsv"):
        (tmp_path / name).write_text(name)
        sources.append(InputFile.of(tmp_path / name))

    first = _land(spark, settings, target, sources[0], [1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 0.5])
    [validation] = first.validations
    assert (validation.engine, validation.success, validation.version) == ("counts", True, 1)
    assert {r.element_count for r in validation.results if r.element_count is not None} == {5}
    scanned = validate_table(spark, settings, decl.name, 1, engine="batched", decl=decl)
    assert scanned.success and {r.expectation.id for r in scanned.results} == {
        r.expectation.id for r in validation.results
    }
    import dataclasses

    from lakehouse.quality.validate import data_docs_index

    with_gx = dataclasses.replace(settings, validation_engine="auto")
    documented = validate_table(spark, with_gx, decl.name, 1, decl=decl)
    assert documented.engine == "counts" and documented.results[0].gx_run_id.startswith(f"{decl.name}@v1@")
    pages = data_docs_index(with_gx).parent / "validations" / "silver" / "checks_probe" / "suite"
    assert (pages / f"{decl.name}@v1").is_dir()
    stored = spark.table(CHECKS_TABLE).filter(f"table_name = '{decl.name}'")
    assert stored.filter("expectation_id = 'primary_key.unique'").count() == 1
    assert stored.filter("unexpected_count > 0").count() == 0

    # Another source repeats the key (chr1, 3): its commit's comparison counts it, the scan reports it.
    second = _land(spark, settings, target, sources[1], [3, 6], [0.6, 0.7])
    [validation] = second.validations
    assert validation.engine != "counts" and not validation.success
    [unique] = [r for r in validation.results if r.expectation.id == "primary_key.unique"]
    assert unique.unexpected_count == 2

    # Replacing that source without the repeat validates from counts again; a value out of range does not.
    replaced = _land(spark, settings, target, sources[1], [6], [0.7])
    assert [v.engine for v in replaced.validations] == ["counts"]
    # A violation is decided from the counts too: the landing quarantined its row as it wrote it.
    third = _land(spark, settings, target, sources[2], [7, 8], [0.8, 5.0])
    [validation] = third.validations
    assert validation.engine == "counts"
    [between] = validation.failed
    assert between.expectation.id == "value.to_be_between" and between.unexpected_count == 1
    held = spark.table("quality.quarantine").filter(f"source_file = '{sources[2].path}'").collect()
    assert [json.loads(r.record)["value"] for r in held] == [5.0]
    assert spark.table(decl.name).count() == 8


def test_a_check_declared_after_a_file_landed_is_counted_from_that_file_once(
    spark, settings, counted, tmp_path
):
    """A file written before a check existed (a column a later release adds, a check declared since) is
    counted at validation from the columns the check reads, not scanned, and its counts are kept."""
    import dataclasses

    from lakehouse.quality.checks import CHECKS_TABLE
    from lakehouse.quality.validate import validate_table

    decl, target = counted
    (tmp_path / "a.tsv").write_text("a")
    _land(spark, settings, target, InputFile.of(tmp_path / "a.tsv"), [1, 2, 3], [0.1, 0.6, 0.9])
    stricter = dataclasses.replace(
        decl,
        expectations=(
            *decl.expectations,
            {"type": "rows", "id": "value.small", "unexpected_where": "value > 0.95"},
        ),
    )
    first = validate_table(spark, settings, decl.name, decl=stricter)
    assert (first.engine, first.success) == ("counts", True)
    stored = spark.table(CHECKS_TABLE).filter(
        f"table_name = '{decl.name}' AND expectation_id = 'value.small'"
    )
    assert [(r.element_count, r.unexpected_count) for r in stored.collect()] == [(3, 0)]
    again = validate_table(spark, settings, decl.name, decl=stricter)  # from the stored counts now
    assert (again.engine, again.success) == ("counts", True) and stored.count() == 1
    strictest = dataclasses.replace(
        decl,
        expectations=(
            *decl.expectations,
            {"type": "rows", "id": "value.tiny", "unexpected_where": "value > 0.5"},
        ),
    )
    failed = validate_table(spark, settings, decl.name, decl=strictest)  # no landing quarantined those rows
    assert failed.engine != "counts" and [r.unexpected_count for r in failed.failed] == [2]
