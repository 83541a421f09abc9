"""Validate one exact Delta table version; store the evidence; quarantine the offending rows; gate promotion.

Two executors share one definition of every expectation (`expectations.py`):

- `great_expectations`: a GX 1.x file context under the warehouse (Spark data source, ExpectationSuite,
  ValidationDefinition, Checkpoint with Data Docs). GX computes each expectation's metrics in its own Spark
  jobs: on a 10M-row table that cost 3.5× (BOOLEAN_ONLY) to 20× (SUMMARY) one full scan here.
- `batched`: every row-level expectation becomes a predicate in ONE aggregation pass; key uniqueness is one
  hash-grouping job; checks against other tables are one anti-join each; samples of unexpected values are
  read only for expectations that failed.

The `validation_engine` setting picks one (`auto`: GX for versions up to `gx_max_rows` rows, batched above). Either way
the same Spark predicates put exactly the violating rows into `quality.quarantine`, since GX on Spark
returns no row ids.

Before either scans, a version whose live files all carry the counts the landing engine made as it wrote
them (`checks.py`) is validated from those counts, reading no data (`from_counts`); the result is stored
in GX's validation store with its Data Docs page as well (unless the setting is `batched`). A violation, or
a file without counts, sends the version to the scan, which finds the exact rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import LakehouseError
from lakehouse.quality.expectations import Expectation, suite_for
from lakehouse.runs import IngestRun, utcnow
from lakehouse.schemas import TableDecl, declaration
from lakehouse.settings import Settings
from lakehouse.storage import arrow_dataset, table_exists

log = logging.getLogger(__name__)
# A scan that keeps the driver small: one batch in memory at a time, decoded on the calling thread.
ONE_BATCH_AT_A_TIME = {"batch_readahead": 0, "fragment_readahead": 1, "use_threads": False}

RESULTS_TABLE = "quality.validation_results"
SAMPLE_SIZE = 20
DATA_LAYERS = ("bronze", "silver", "gold")


class ValidationFailed(LakehouseError):
    """A table version failed validation and may not be promoted."""


@dataclass
class ExpectationResult:
    expectation: Expectation
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: str | None = None
    unexpected_sample: list[str] = field(default_factory=list)
    engine: str = "batched"
    gx_run_id: str | None = None


@dataclass
class Validation:
    validation_id: str
    table: str
    version: int
    suite_name: str
    results: list[ExpectationResult]
    engine: str
    quarantined: int = 0
    # The expectations every live file carried counts of: the landing that made them quarantined the rows
    # they found violating (with their lines), so the scan's quarantine leaves those alone.
    flagged: frozenset = frozenset()
    # expectation id -> the quarantine rows (BAD_COLUMNS) the validation found itself, reading what it
    # checks: the groups a group_sum_between finds out of bounds, the rows values_in_table finds unreferenced
    found: dict = field(default_factory=dict)
    recounted: list = field(default_factory=list)  # (path, expectation, Count) counted by the validation

    @property
    def success(self) -> bool:
        return all(result.success for result in self.results)

    @property
    def failed(self) -> list[ExpectationResult]:
        return [result for result in self.results if not result.success]

    def summary(self) -> str:
        head = f"{self.table} v{self.version}: {len(self.results) - len(self.failed)}/{len(self.results)} expectations passed"
        if self.success:
            return head
        failures = "; ".join(
            f"{r.expectation.id} ({r.unexpected_count if r.unexpected_count is not None else r.observed_value} unexpected)"
            for r in self.failed
        )
        return f"{head}; failed: {failures}"


def current_version(spark, table: str) -> int:
    """The table's latest version, from its Delta log (delta-rs): no Spark job, and no Delta Python API, which
    Spark Connect sessions lack (Delta 4.4 publishes no Connect server plugin for Spark 4.1)."""
    from lakehouse.storage import open_table

    return open_table(spark, table).version()


def engine_for(settings: Settings, requested: str | None, frame: DataFrame) -> str:
    engine = requested or settings.validation_engine
    if engine not in ("auto", "gx", "batched"):
        raise LakehouseError(f"validation engine must be auto, gx or batched, not {engine!r}")
    if engine == "auto":
        # count(*) of a Delta version is answered from the log, so choosing costs no scan.
        return "gx" if frame.count() <= settings.gx_max_rows else "batched"
    return engine


def validate_table(
    spark,
    settings: Settings,
    table: str,
    version: int | None = None,
    engine: str | None = None,
    run: IngestRun | None = None,
    decl: TableDecl | None = None,
) -> Validation:
    """Validate `table` at `version` (default: current), store results, quarantine violating rows."""
    validation = _evaluate(spark, settings, table, version, engine, decl)
    if run is None:
        with IngestRun(spark, settings, job=f"validate {table}") as own:
            _store(spark, settings, [validation], own)
    else:
        _store(spark, settings, [validation], run)
    return validation


def _evaluate(
    spark, settings: Settings, table: str, version: int | None, engine: str | None, decl: TableDecl | None
) -> Validation:
    """Run `table`@`version`'s suite; nothing is written."""
    if decl is None:
        from lakehouse.catalog import stored_schema
        from lakehouse.schemas import with_stored_columns

        decl = declaration(table, settings.schemas_dir)
        if decl.dynamic_columns:
            stored = [(f.name, f.dataType.simpleString()) for f in stored_schema(spark, table).fields]
            decl = with_stored_columns(decl, stored)
    version = current_version(spark, table) if version is None else version
    expectations = suite_for(decl)
    by_counts = engine in (None, "auto")  # an engine asked for by name scans
    counted, flagged = from_counts(spark, settings, decl, version, expectations, record=by_counts)
    if counted is not None and by_counts:
        return counted
    frame = spark.read.option("versionAsOf", version).table(table)
    chosen = engine_for(settings, engine, frame)
    scanned = [e for e in expectations if e.type != "drift"]  # compared from the log, not scanned
    if chosen == "gx":
        results = run_gx(spark, settings, decl, version, frame, scanned)
    else:
        results = run_batched(spark, frame, scanned)
    if len(scanned) < len(expectations):
        from lakehouse.quality.checks import CHECKS_TABLE
        from lakehouse.storage import open_table

        ledger = open_table(spark, CHECKS_TABLE) if table_exists(spark, CHECKS_TABLE) else None
        by_id = {r.expectation.id: r for r in results}
        by_id.update(
            {e.id: drift_result(spark, table, version, e, ledger) for e in expectations if e.type == "drift"}
        )
        results = [by_id[e.id] for e in expectations]
    return Validation(uuid.uuid4().hex, table, version, f"{table}.suite", results, chosen, flagged=flagged)


# Delta's primitive type names, as the Spark type classes `expect_column_values_to_be_of_type` names.
_DELTA_TYPES = {
    "string": "StringType", "boolean": "BooleanType", "integer": "IntegerType", "long": "LongType",
    "double": "DoubleType", "float": "FloatType", "date": "DateType", "timestamp": "TimestampType",
    "timestamp_ntz": "TimestampNTZType", "short": "ShortType", "byte": "ByteType", "binary": "BinaryType",
}  # fmt: skip


def from_counts(
    spark,
    settings: Settings,
    decl: TableDecl,
    version: int,
    expectations: list[Expectation],
    record=True,
    paths: Sequence[str] | None = None,
) -> tuple[Validation | None, frozenset[str]]:
    """(the validation of `decl`'s table at `version` from the counts its files carry, the ids of the
    expectations those counts decided). The Delta log says which files are live, `quality.file_checks`
    what each holds; a `values_in_table` check no landing counted reads the columns it checks. No other
    data is read.

    The landing that made the counts quarantined the rows they found violating, with their lines, so a
    failed validation comes from the counts too, with their samples. The validation is None when the
    counts cannot decide it: a live file without counts, a stored type that differs, or a violation of a
    check no task counted (a repeated key): the full evaluation then finds the exact rows.

    With `paths`, only the rows of those live files are judged (`own_rows_pass`), and drift not at all."""
    from lakehouse.quality.checks import (
        CHECKS_TABLE,
        DRIFT,
        GROUPED,
        REFERENCED,
        SHARE,
        UNIQUE_TYPES,
        countable,
        version_tallies,
    )
    from lakehouse.storage import open_table

    typed = "expect_column_values_to_be_of_type"
    nothing = frozenset()
    if any(
        not (countable(e) or e.type in (*UNIQUE_TYPES, typed, REFERENCED, GROUPED, DRIFT))
        for e in expectations
    ):
        return None, nothing
    if not table_exists(spark, CHECKS_TABLE):
        return None, nothing
    table = open_table(spark, decl.name, version)
    ledger = open_table(spark, CHECKS_TABLE)
    recounted: list[tuple[str, Expectation, object]] = []

    def recount(path: str, lacking: list[Expectation]) -> dict:
        # A file written before a check existed (a column a later release added, a check declared since):
        # its own rows are counted now, once, and the counts stored beside the others.
        from lakehouse.quality.checks import file_counts

        found = file_counts(table, path, lacking)
        recounted.extend((path, e, found[e.id]) for e in lacking)
        return found

    tally = version_tallies(
        ledger, table, decl.name, [e for e in expectations if e.type not in (typed, REFERENCED, DRIFT)],
        paths=paths, recount=recount,
    )  # fmt: skip
    if tally.undecided:
        log.info("%s v%s: validated by scanning (%s)", decl.name, version, tally.undecided)
        return None, nothing
    if any(found.unexpected for _, e, found in recounted if e.type != SHARE):  # no landing quarantined them
        return None, nothing
    counts = dict(tally.counts)
    rows_found: dict[str, list[dict]] = {}
    decided = {e.id for e in expectations if e.type not in (typed, REFERENCED, DRIFT, *UNIQUE_TYPES)}
    for exp in expectations:
        if exp.type != REFERENCED:
            continue
        stored = version_tallies(ledger, table, decl.name, [exp], paths)
        if stored.undecided:  # no landing counted it: read the columns it checks
            from lakehouse.quality.checks import Count

            missing, rows_found[exp.id] = _unreferenced_rows(spark, table, exp, decl, paths)
            counts[exp.id] = Count(tally.rows, missing)  # its rows are quarantined from here
        else:
            counts[exp.id] = stored.counts[exp.id]
        decided.add(exp.id)
    for exp in expectations:
        if exp.type == GROUPED:
            from lakehouse.quality.checks import bad_groups

            groups = bad_groups(exp, counts[exp.id].groups)
            rows_found[exp.id] = _group_rows(decl.name, exp, groups)
            counts[exp.id].unexpected = len(groups)
            counts[exp.id].sample = [json.dumps(g, default=str, sort_keys=True) for g in groups[:SAMPLE_SIZE]]
    by_id = {e.id: e for e in expectations}
    drifts = {
        e.id: drift_result(spark, decl.name, version, e, ledger)
        if paths is None
        else ExpectationResult(e, True, observed_value="not judged on some files", engine="counts")
        for e in expectations
        if e.type == DRIFT
    }
    failing = {
        i for i, c in counts.items()
        if by_id[i].type != SHARE and not by_id[i].tolerates(c.unexpected, c.rows - c.missing)
    }  # fmt: skip
    if failing - decided:
        return None, frozenset(decided)
    stored_types = {
        f.name: _DELTA_TYPES.get(getattr(f.type, "type", None), type(f.type).__name__)
        for f in table.schema().fields
    }
    results = []
    for exp in expectations:
        found = counts.get(exp.id)
        if exp.type == typed:
            observed = stored_types.get(exp.column)
            results.append(
                ExpectationResult(
                    exp, observed == exp.kwargs["type_"], observed_value=observed, engine="counts"
                )
            )
        elif exp.type == DRIFT:
            results.append(drifts[exp.id])
        elif exp.type == SHARE:
            share = found.unexpected / found.rows if found.rows else 0.0
            ok = exp.kwargs.get("min_value", 0) <= share <= exp.kwargs.get("max_value", 1)
            results.append(
                ExpectationResult(exp, ok, tally.rows, observed_value=f"{share:.6f}", engine="counts")
            )
        else:
            base = found.rows - found.missing
            results.append(
                ExpectationResult(
                    exp, exp.tolerates(found.unexpected, base), tally.rows, found.unexpected,
                    100.0 * found.unexpected / base if base else 0.0,
                    observed_value=str(found.unexpected) if exp.type in ("rows", REFERENCED) else None,
                    unexpected_sample=list(found.sample[:SAMPLE_SIZE]), engine="counts",
                )
            )  # fmt: skip
    validation = Validation(
        uuid.uuid4().hex,
        decl.name,
        version,
        f"{decl.name}.suite",
        results,
        "counts",
        flagged=frozenset(decided),
        found=rows_found,
        recounted=recounted,
    )
    if any(not r.success for r in results if r.expectation.type == typed):
        return None, frozenset(decided)  # a stored type differs: the full evaluation says so in detail
    if record and settings.validation_engine != "batched":  # batched: GX is not used at all
        record_gx(settings, decl, validation)
    return validation, frozenset(decided)


def drift_result(spark, name: str, version: int, exp: Expectation, ledger) -> ExpectationResult:
    """`drift` of `name`@`version` against the newest earlier version that passed validation: the rows
    `version` added (its live files the earlier version did not have; all of them if none) against every
    row of the earlier one. Column sums and counts come from the files' stored counts, else from reading
    the columns."""
    from lakehouse.reader import logged_rows
    from lakehouse.storage import open_table

    previous = _previous_passed(spark, name, version)
    if previous is None:
        return ExpectationResult(exp, True, observed_value="no earlier validated version", engine="counts")
    now, before = open_table(spark, name, version), open_table(spark, name, previous)
    live_now = set(pa_paths(now))
    added = live_now - set(pa_paths(before)) or live_now
    k = exp.kwargs
    by = list(k.get("by") or [])
    old_groups, new_groups = _files_by(before, by, None), _files_by(now, by, added)
    least = k.get("min_rows", 0)
    found, problems, compared = [], [], 0
    for key in sorted(set(old_groups) & set(new_groups), key=str):
        old = _column_stats(before, name, exp, ledger, old_groups[key])
        new = _column_stats(now, name, exp, ledger, new_groups[key])
        if min(old[0], new[0]) < least:  # a handful of rows has no distribution to compare
            continue
        compared += 1
        label = "".join(f"{c}={v} " for c, v in zip(by, key, strict=True))
        _compare(exp, label, old, new, previous, version, found, problems)
    if not compared:
        return ExpectationResult(
            exp, True, 0, 0, engine="counts",
            observed_value=f"not compared: no {'/'.join(by) or 'rows'} with {least} rows or more both in v{previous} and added",
        )  # fmt: skip
    rows_before, rows_now = logged_rows(before), logged_rows(now)
    if k.get("max_row_change") is not None and rows_before and rows_now is not None:
        change = (rows_now - rows_before) / rows_before
        found.append(f"rows {rows_before} in v{previous} → {rows_now} ({change:+.1%})")
        if abs(change) > k["max_row_change"]:
            problems.append(f"rows: {rows_before} in v{previous} → {rows_now} in v{version} "
                            f"({change:+.1%}, bound ±{k['max_row_change']:.0%})")  # fmt: skip
    observed = "; ".join(problems) if problems else f"against v{previous}: " + "; ".join(found)
    return ExpectationResult(
        exp, not problems, rows_now, len(problems), observed_value=observed, engine="counts"
    )


def _compare(
    exp: Expectation, label: str, old, new, previous: int, version: int, found: list, problems: list
):
    """Compare the column statistics `old` (rows of v`previous`) and `new` (rows v`version` added)."""
    k = exp.kwargs
    for column in k["columns"]:
        (sum_old, n_old), (sum_new, n_new) = old[1].get(column, (0.0, 0)), new[1].get(column, (0.0, 0))
        if n_old and n_new and k.get("max_mean_change") is not None:
            mean_old, mean_new = sum_old / n_old, sum_new / n_new
            change = (mean_new - mean_old) / abs(mean_old) if mean_old else mean_new - mean_old
            found.append(f"{label}{column} mean {mean_old:.6g} → {mean_new:.6g}")
            if abs(change) > k["max_mean_change"]:
                problems.append(f"{label}{column}: mean {mean_old:.6g} in v{previous} → {mean_new:.6g} in the rows v{version} "
                                f"added ({change:+.1%}, bound ±{k['max_mean_change']:.0%})")  # fmt: skip
        if k.get("max_null_share_change") is not None and old[0] and new[0]:
            share_old, share_new = 1 - n_old / old[0], 1 - n_new / new[0]
            if abs(share_new - share_old) > k["max_null_share_change"]:
                problems.append(f"{label}{column}: null share {share_old:.1%} in v{previous} → {share_new:.1%} in the rows "
                                f"v{version} added (bound ±{k['max_null_share_change']:.0%})")  # fmt: skip


def _files_by(table, by: list[str], paths) -> dict[tuple, list[str]]:
    """The live files of `table` (among `paths`) by their values of the `by` columns, read from the log:
    partition values, else exact bounds (min = max); a file holding several values is left out."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    groups: dict[tuple, list[str]] = {}
    for action in actions:
        if paths is not None and action["path"] not in paths:
            continue
        key = []
        for column in by:
            value = action.get(f"partition.{column}")
            if value is None and action.get(f"min.{column}") == action.get(f"max.{column}"):
                value = action.get(f"min.{column}")
            key.append(value)
        if None not in key:
            groups.setdefault(tuple(key), []).append(action["path"])
    return groups


def pa_paths(table) -> list[str]:
    """The paths of the live files of a delta-rs table."""
    import pyarrow as pa

    return pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()


def _column_stats(table, name: str, exp: Expectation, ledger, paths) -> tuple[int, dict[str, tuple]]:
    """(rows, {column: (sum, non-null values)}) over the live files of `table` (or those in `paths`)."""
    import pyarrow.compute as pc

    from lakehouse.quality.checks import version_tallies

    if ledger is not None:
        tally = version_tallies(ledger, table, name, [exp], paths)
        if not tally.undecided:
            found = tally.counts[exp.id]
            return found.rows, {c: (s, n) for c, (s, n, _) in found.groups.items()}
    from lakehouse.quality.checks import live_rows

    data = live_rows(arrow_dataset(table), paths, list(exp.kwargs["columns"]))
    return data.num_rows, {
        c: (pc.sum(data.column(c)).as_py() or 0.0, pc.count(data.column(c)).as_py())
        for c in exp.kwargs["columns"]
    }


def _previous_passed(spark, name: str, version: int) -> int | None:
    found = stored_results(spark, [name], ["table_version", "validation_success"])
    rows = [] if found is None else found.to_pylist()
    return max((r["table_version"] for r in rows if r["validation_success"] and r["table_version"] < version),
               default=None)  # fmt: skip


def _unreferenced_rows(
    spark, table, exp: Expectation, decl: TableDecl, paths: Sequence[str] | None = None
) -> tuple[int, list[dict]]:
    """(how many rows of `table` (delta-rs, one version) `values_in_table` finds no reference for in the
    current version of the reference table (none there when it does not exist), those rows as quarantine
    rows): the columns the check names are read batch by batch, and the rows' own only where some are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakehouse.quality.checks import reference_mask
    from lakehouse.storage import open_table

    k = exp.kwargs
    mine = [k["column"], *(k.get("match") or {})] + ([k["at_most"]["column"]] if k.get("at_most") else [])
    theirs = [k["table_column"], *(k.get("match") or {}).values(), *(k.get("table_filter") or {})]
    theirs += [k["at_most"]["table_column"]] if k.get("at_most") else []
    if table_exists(spark, k["table"]):
        reference = arrow_dataset(open_table(spark, k["table"])).to_table(columns=list(dict.fromkeys(theirs)))
    else:
        reference = None
    import pyarrow.dataset as pads

    prepared: dict = {}  # the reference grouped once for every batch

    def unreferenced(rows: pa.Table) -> pa.ChunkedArray:
        if reference is None:
            return pc.is_valid(rows.column(k["column"]))
        return reference_mask(exp, rows, reference, prepared)

    strings = [c for c in dict.fromkeys(mine) if c != (k.get("at_most") or {}).get("column")]
    read = pads.ParquetReadOptions(dictionary_columns=strings)  # repeated ids read once per page
    dataset = arrow_dataset(table, parquet_read_options=read)
    if paths is not None:
        from lakehouse.quality.checks import live_files

        dataset = live_files(dataset, paths)
    missing = 0
    # One batch at a time: the scanner's default read-ahead (16 batches of 4 files) held 370 MB of GEO's
    # 16.4M-value version in the driver, which must not grow with the table.
    for batch in dataset.to_batches(columns=list(dict.fromkeys(mine)), **ONE_BATCH_AT_A_TIME):
        missing += pc.sum(unreferenced(pa.Table.from_batches([batch]))).as_py() or 0
    if not missing:
        return 0, []
    from lakehouse.landing import FLAGGED_PER_TASK

    names = set(dataset.schema.names)
    shown = [c for c in dict.fromkeys([*decl.primary_key, *mine]) if c in names]
    located = [c for c in ("source_file", "source_sha256", "line_number") if c in names]
    found = []
    for batch in dataset.to_batches(columns=list(dict.fromkeys([*shown, *located])), **ONE_BATCH_AT_A_TIME):
        rows = pa.Table.from_batches([batch])
        hits = rows.filter(unreferenced(rows)).slice(0, FLAGGED_PER_TASK - len(found))
        for row in hits.to_pylist():
            found.append(
                {"table_name": decl.name, "source_file": row.get("source_file"),
                 "source_sha256": row.get("source_sha256"), "line_number": row.get("line_number"),
                 "record": json.dumps({c: row[c] for c in shown}, default=str, sort_keys=True),
                 "reason": exp.violation()}
            )  # fmt: skip
        if len(found) >= FLAGGED_PER_TASK:
            break
    return missing, found


def unexpected_rows(spark, frame: DataFrame, expectation: Expectation) -> DataFrame | None:
    """Exactly the rows of `frame` that violate `expectation` (None for table-level expectations)."""
    from pyspark.sql import Window

    if expectation.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        key = expectation.key_columns()
        counted = frame.withColumn("_lakehouse_key_rows", F.count(F.lit(1)).over(Window.partitionBy(*key)))
        return counted.filter(F.col("_lakehouse_key_rows") > 1).drop("_lakehouse_key_rows")
    if expectation.type == "group_sum_between":  # the groups, not their rows
        frame.createOrReplaceTempView("_lakehouse_validated")
        return spark.sql(expectation.bad_groups_sql("_lakehouse_validated"))
    sql = expectation.unexpected_where("_lakehouse_validated")
    if expectation.type == "values_in_table":
        frame.createOrReplaceTempView("_lakehouse_validated")
        return spark.sql(sql)
    predicate = expectation.unexpected_predicate()
    return frame.filter(predicate) if predicate is not None else None


def run_batched(spark, frame: DataFrame, expectations: list[Expectation]) -> list[ExpectationResult]:
    aggregates = [F.count(F.lit(1)).alias("_n")]
    for index, exp in enumerate(expectations):
        predicate = exp.unexpected_predicate() if exp.type != "values_in_table" else None
        if predicate is not None:
            aggregates.append(F.sum(F.when(predicate, 1).otherwise(0)).alias(f"_u{index}"))
            missing = _missing(exp)
            if missing is not None:
                aggregates.append(F.sum(F.when(missing, 1).otherwise(0)).alias(f"_m{index}"))
        elif exp.type == "share_between":
            aggregates.append(
                F.avg(F.when(F.expr(exp.kwargs["where"]), 1.0).otherwise(0.0)).alias(f"_s{index}")
            )
    metrics = frame.agg(*aggregates).first().asDict()
    total = metrics["_n"]
    stored_types = {f.name: f.dataType.__class__.__name__ for f in frame.schema.fields}
    results = []
    for index, exp in enumerate(expectations):
        if exp.type == "expect_column_values_to_be_of_type":
            observed = stored_types.get(exp.column)
            results.append(ExpectationResult(exp, observed == exp.kwargs["type_"], observed_value=observed))
            continue
        if exp.type == "share_between":
            share = metrics[f"_s{index}"] or 0.0
            ok = exp.kwargs.get("min_value", 0) <= share <= exp.kwargs.get("max_value", 1)
            results.append(ExpectationResult(exp, ok, total, observed_value=f"{share:.6f}"))
            continue
        if f"_u{index}" in metrics:
            unexpected = metrics[f"_u{index}"] or 0
            base = total - (metrics.get(f"_m{index}") or 0)
        elif exp.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            unexpected, base = _duplicate_rows(frame, exp.key_columns()), total
        else:  # values_in_table, group_sum_between
            unexpected, base = unexpected_rows(spark, frame, exp).count(), total
        result = ExpectationResult(
            exp,
            exp.tolerates(unexpected, base),
            total,
            unexpected,
            100.0 * unexpected / base if base else 0.0,
            observed_value=str(unexpected) if exp.type in _COUNTED_AS_OBSERVED else None,
        )
        if unexpected:
            result.unexpected_sample = _sample(spark, frame, exp)
        results.append(result)
    return results


_COUNTED_AS_OBSERVED = ("rows", "values_in_table", "group_sum_between")


def _missing(exp: Expectation):
    """Rows GX counts as missing for a column-map expectation (they are neither expected nor unexpected)."""
    if exp.type in (
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
    ):
        return F.col(exp.column).isNull()
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        return F.col(exp.kwargs["column_A"]).isNull() & F.col(exp.kwargs["column_B"]).isNull()
    return None


def _duplicate_rows(frame: DataFrame, key: list[str]) -> int:
    """Rows whose key occurs more than once: grouped on a 64-bit hash, confirmed on the key itself."""
    by_hash = frame.groupBy(F.xxhash64(*key).alias("_h")).count().filter(F.col("count") > 1)
    if by_hash.limit(1).count() == 0:
        return 0
    duplicated = frame.groupBy(*key).count().filter(F.col("count") > 1)
    return duplicated.agg(F.coalesce(F.sum("count"), F.lit(0))).first()[0]


def _sample(spark, frame: DataFrame, exp: Expectation) -> list[str]:
    rows = unexpected_rows(spark, frame, exp)
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        columns = [exp.kwargs["column_A"], exp.kwargs["column_B"]]
    elif exp.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        columns = exp.key_columns()
    elif exp.column and exp.type != "group_sum_between":
        columns = [exp.column]
    else:
        columns = rows.columns[:8]
    picked = rows.select(F.to_json(F.struct(*columns)).alias("v")).limit(SAMPLE_SIZE).collect()
    return [row.v for row in picked]


def run_gx(
    spark,
    settings: Settings,
    decl: TableDecl,
    version: int,
    frame: DataFrame,
    expectations: list[Expectation],
) -> list[ExpectationResult]:
    """Run the suite with a GX Checkpoint (Data Docs updated); lakehouse-only kinds run batched."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx_context(settings)
    source = context.data_sources.add_or_update_spark("lakehouse_spark")
    asset_name = decl.name
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        batch = asset.get_batch_definition("whole_version")
    except (KeyError, LookupError, ValueError):
        batch = asset.add_batch_definition_whole_dataframe("whole_version")
    gx_expectations = [(exp, exp.to_gx()) for exp in expectations]
    suite, _ = _gx_suite(context, decl, expectations)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{decl.name}.validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{decl.name}.checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
        )
    )
    built = time.time() - 1
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=f"{decl.name}@v{version}")
    )
    from lakehouse.quality.docs_assets import localize_site

    localize_site(data_docs_index(settings).parent, settings.cache_dir, since=built)
    run_id = f"{outcome.run_id.run_name}@{outcome.run_id.run_time.isoformat()}"
    by_id = {}
    for suite_result in outcome.run_results.values():
        for item in suite_result.results:
            by_id[item.expectation_config.meta.get("lakehouse_id")] = item
    results = []
    leftovers = [exp for exp, g in gx_expectations if g is None]
    batched = {r.expectation.id: r for r in run_batched(spark, frame, leftovers)} if leftovers else {}
    for exp, _ in gx_expectations:
        if exp.id in batched:
            results.append(batched[exp.id])
            continue
        item = by_id[exp.id]
        payload = item.result or {}
        observed = payload.get("observed_value")
        results.append(
            ExpectationResult(
                exp,
                bool(item.success),
                payload.get("element_count"),
                payload.get(
                    "unexpected_count", observed if exp.type in ("rows", "values_in_table") else None
                ),
                payload.get("unexpected_percent"),
                None if observed is None else str(observed),
                [
                    json.dumps(v, default=str)
                    for v in payload.get("partial_unexpected_list", [])[:SAMPLE_SIZE]
                ],
                engine="great_expectations",
                gx_run_id=run_id,
            )
        )
    return results


def record_gx(settings: Settings, decl: TableDecl, validation: Validation) -> None:
    """Store `validation` (decided without GX) as a GX validation result of the table's suite, and render
    its Data Docs page: every table version has one, whichever way it was validated."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx_context(settings)
    suite, changed = _gx_suite(context, decl, [r.expectation for r in validation.results])
    configurations = {e.meta.get("lakehouse_id"): e.configuration for e in suite.expectations}
    now = dt.datetime.now(dt.UTC)
    run_id = RunIdentifier(run_name=f"{decl.name}@v{validation.version}", run_time=now)
    gx_results = []
    for r in validation.results:
        if r.expectation.id not in configurations:  # a lakehouse-only kind: not in the GX suite
            continue
        if r.element_count is None or r.expectation.type in ("rows", "values_in_table"):
            payload = {
                "observed_value": r.observed_value if r.observed_value is not None else r.unexpected_count
            }
        else:
            payload = {
                "element_count": r.element_count, "unexpected_count": r.unexpected_count,
                "unexpected_percent": r.unexpected_percent, "partial_unexpected_list": r.unexpected_sample,
                "missing_count": 0, "missing_percent": 0.0,
            }  # fmt: skip
        gx_results.append(
            ExpectationValidationResult(
                success=r.success, expectation_config=configurations[r.expectation.id], result=payload
            )
        )
    passed = sum(1 for g in gx_results if g.success)
    outcome = ExpectationSuiteValidationResult(
        success=passed == len(gx_results),
        results=gx_results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(gx_results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(gx_results) - passed,
            "success_percent": 100.0 * passed / len(gx_results) if gx_results else 100.0,
        },
        meta={
            "great_expectations_version": gx.__version__,
            "run_id": run_id,
            "validation_time": now,
            "batch_spec": {"table": decl.name, "version": validation.version, "engine": validation.engine},
            "active_batch_definition": {
                "datasource_name": "lakehouse",
                "data_connector_name": "delta_log",
                "data_asset_name": decl.name,
                "batch_identifiers": {"version": validation.version},
            },
        },
    )
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=run_id,
        batch_identifier=f"{decl.name}@v{validation.version}",
    )
    context.validation_results_store.set(key, outcome)
    built = time.time() - 1  # file times are coarse on some filesystems
    # The suite's own page is rendered again only when the suite changed (2 s for 2,000 expectations).
    pages = [key, ExpectationSuiteIdentifier(name=suite.name)] if changed else [key]
    context.build_data_docs(resource_identifiers=pages)
    from lakehouse.quality.docs_assets import localize_site

    localize_site(data_docs_index(settings).parent, settings.cache_dir, since=built)
    gx_run = f"{run_id.run_name}@{now.isoformat()}"
    for r in validation.results:
        r.gx_run_id = gx_run


def _gx_suite(context, decl: TableDecl, expectations: list[Expectation]):
    """(the table's GX suite, whether it was stored anew): anew only when its expectations changed."""
    import great_expectations as gx
    from great_expectations.exceptions import DataContextError

    wanted = [g for g in (e.to_gx() for e in expectations) if g is not None]
    name = f"{decl.name}.suite"
    try:
        stored = context.suites.get(name)
    except DataContextError:  # not stored yet
        stored = None
    if stored is not None:
        if _suite_key(stored.expectations) == _suite_key(wanted):
            return stored, False
        # GX's add_or_update compares expectations pairwise: 103 s for a suite of 1,700 (a wide gnomAD
        # table); deleting and adding the suite is 0.7 s.
        context.suites.delete(name)
    return context.suites.add(gx.ExpectationSuite(name=name, expectations=wanted)), True


def _suite_key(expectations) -> list:
    return sorted(
        json.dumps([e.expectation_type, e.configuration.kwargs, e.meta], sort_keys=True, default=str)
        for e in expectations
    )


# How many validation results the Data Docs index lists (newest first): building the index reads each.
DOCS_INDEX_LIMIT = 50


def gx_context(settings: Settings):
    import great_expectations as gx

    context = gx.get_context(mode="file", project_root_dir=str(settings.home))
    sites = context.variables.data_docs_sites or {}
    index = sites.get("local_site", {}).get("site_index_builder")
    if index is not None and index.get("validation_results_limit") != DOCS_INDEX_LIMIT:
        index["validation_results_limit"] = DOCS_INDEX_LIMIT
        context.variables.data_docs_sites = sites
        context.variables.save()
        context = gx.get_context(mode="file", project_root_dir=str(settings.home))
    return context


def data_docs_index(settings: Settings):
    return settings.home / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _store(spark, settings: Settings, validations: list[Validation], run: IngestRun) -> None:
    """Every result of `validations` in one append to the results table, then the violating rows of each
    failed validation into quarantine."""
    decl = declaration(RESULTS_TABLE, settings.schemas_dir)
    now = utcnow()
    for validation in validations:
        _attach_evidence(spark, validation)
    rows = [
        {
            "validation_id": validation.validation_id,
            "table_name": validation.table,
            "table_version": validation.version,
            "suite_name": validation.suite_name,
            "expectation_id": r.expectation.id,
            "expectation_type": r.expectation.type,
            "expectation_kwargs": json.dumps(r.expectation.kwargs, sort_keys=True, default=str),
            "origin": r.expectation.origin,
            "row_level": r.expectation.row_level,
            "success": r.success,
            "observed_value": r.observed_value,
            "element_count": r.element_count,
            "unexpected_count": r.unexpected_count,
            "unexpected_percent": r.unexpected_percent,
            "unexpected_sample": r.unexpected_sample,
            "engine": r.engine,
            "gx_run_id": r.gx_run_id,
            "validation_success": validation.success,
            "ingest_run_id": run.run_id,
            "validated_at": now,
        }
        for validation in validations
        for r in validation.results
    ]
    if rows:
        import pyarrow as pa

        from lakehouse.landing import Target, append

        target = Target.of(spark, decl)
        version, _ = append(target, pa.Table.from_pylist(rows, target.schema), metadata=run.commit_metadata())
        run.record_target(RESULTS_TABLE, version, decl)
    _store_recounts(spark, settings, validations, run)
    for validation in validations:
        if not validation.success:
            _quarantine_violations(spark, validation, run)
            run.failed.append(
                f"{validation.table} v{validation.version}: validation {validation.validation_id} failed: "
                + ", ".join(evidence(spark, validation.validation_id))
            )


def _attach_evidence(spark, validation: Validation) -> None:
    """Put, first in each failed result's sample, up to EVIDENCE of its rows as the quarantine holds them
    (source file, line, record): those the landing flagged, and those the validation found itself."""
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table
    from lakehouse.quality.quarantine import QUARANTINE_TABLE

    failed = [r for r in validation.results if not r.success and r.expectation.row_level]
    flagged = [
        r
        for r in failed
        if r.expectation.id in validation.flagged and r.expectation.id not in validation.found
    ]
    held = None
    if flagged and table_exists(spark, QUARANTINE_TABLE):
        reasons = [r.expectation.violation() for r in flagged]
        held = read_table(
            spark, QUARANTINE_TABLE, ["source_file", "line_number", "record", "reason"],
            (pads.field("table_name") == validation.table) & pads.field("reason").isin(reasons),
        ).to_pylist()  # fmt: skip
    for result in failed:
        if result.expectation.id in validation.found:
            rows = validation.found[result.expectation.id]
        else:
            rows = [q for q in held or [] if q["reason"] == result.expectation.violation()]
        rows = sorted(rows, key=lambda q: (q["source_file"] or "", q["line_number"] or 0))[:EVIDENCE]
        shown = [json.dumps({k: q[k] for k in ("source_file", "line_number", "record")}) for q in rows]
        result.unexpected_sample = (shown + result.unexpected_sample)[:SAMPLE_SIZE]


def _store_recounts(spark, settings: Settings, validations: list[Validation], run: IngestRun) -> None:
    """The counts a validation made of files that had none (`from_counts`), into `quality.file_checks`."""
    import pyarrow as pa

    from lakehouse.landing import Target, append
    from lakehouse.quality.checks import CHECKS_TABLE, signature

    now = dt.datetime.now(dt.UTC)
    rows = [
        {"table_name": v.table, "path": path, "expectation_id": exp.id, "signature": signature(exp),
         "checked_version": v.version, "element_count": found.rows, "unexpected_count": found.unexpected,
         "missing_count": found.missing, "unexpected_sample": found.stored_sample(), "ingest_run_id": run.run_id,
         "checked_at": now}
        for v in validations
        for path, exp, found in v.recounted
    ]  # fmt: skip
    if rows:
        target = Target.of(spark, declaration(CHECKS_TABLE, settings.schemas_dir), ledger=False)
        append(target, pa.Table.from_pylist(rows, target.schema), metadata=run.commit_metadata())


def _quarantine_violations(spark, validation: Validation, run: IngestRun) -> None:
    from lakehouse.quality.quarantine import bad_rows, quarantine, quarantine_rows

    read = lambda: spark.read.option("versionAsOf", validation.version).table(validation.table)
    for result in validation.failed:  # a check passing within its `mostly` is reported, not quarantined
        if result.expectation.id in validation.found:
            rows = bad_rows(validation.found[result.expectation.id])
            validation.quarantined += quarantine_rows(spark, run, rows)
            continue
        if result.expectation.type == "group_sum_between":
            validation.quarantined += _quarantine_groups(spark, validation, result.expectation, read, run)
            continue
        if not result.expectation.row_level or result.expectation.id in validation.flagged:
            continue
        frame = read()
        offending = unexpected_rows(spark, frame, result.expectation)
        has_source = "source_file" in frame.columns
        has_line = "line_number" in frame.columns
        bad = offending.select(
            F.lit(validation.table).alias("table_name"),
            (F.col("source_file") if has_source else F.lit(None).cast("string")).alias("source_file"),
            (F.col("source_sha256") if has_source else F.lit(None).cast("string")).alias("source_sha256"),
            (F.col("line_number") if has_line else F.lit(None).cast("bigint")).alias("line_number"),
            F.to_json(F.struct(*[F.col(c) for c in frame.columns])).alias("record"),
            F.lit(result.expectation.violation()).alias("reason"),
        )
        validation.quarantined += quarantine(spark, bad, run)


def _quarantine_groups(
    spark, validation: Validation, exp: Expectation, read: Callable[[], DataFrame], run: IngestRun
) -> int:
    """One quarantine record per group a `group_sum_between` check found outside its bounds, found by a
    Spark scan (`_group_rows`)."""
    from lakehouse.quality.quarantine import bad_rows, quarantine_rows

    keys = list(exp.kwargs["group_by"])
    found = [
        {"key": [r[c] for c in keys], "sum": r["total"], "values": r["n"], "source_file": r["source_file"]}
        for r in unexpected_rows(spark, read(), exp).collect()
    ]
    rows = _group_rows(validation.table, exp, found)
    return quarantine_rows(spark, run, bad_rows(rows))


def _group_rows(table: str, exp: Expectation, groups: list[dict]) -> list[dict]:
    """Quarantine rows of the groups a `group_sum_between` check found outside its bounds: the group's key,
    sum and count of values, and its file (no line: the whole group is the evidence)."""
    reason = exp.violation()
    return [
        {"table_name": table, "source_file": g["source_file"], "source_sha256": None, "line_number": None,
         "record": json.dumps({**dict(zip(exp.kwargs["group_by"], g["key"], strict=True)),
                               f"sum({exp.kwargs['column']})": g["sum"], "values": g["values"]}, default=str),
         "reason": reason}
        for g in groups
    ]  # fmt: skip


def stored_results(spark, tables: list[str], columns: list[str]):
    """The rows of the results table about `tables` (Arrow, read with delta-rs), or None before it exists."""
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table

    if not table_exists(spark, RESULTS_TABLE):
        return None
    return read_table(spark, RESULTS_TABLE, columns, pads.field("table_name").isin(tables))


def latest_validation(spark, table: str, version: int):
    """The newest stored validation of `table` at `version`: (validation_id, success) or None."""
    found = stored_results(
        spark, [table], ["table_version", "validated_at", "validation_id", "validation_success"]
    )
    if found is None:
        return None
    rows = [r for r in found.to_pylist() if r["table_version"] == version]
    if not rows:
        return None
    newest = max(rows, key=lambda r: r["validated_at"])
    return newest["validation_id"], newest["validation_success"]


def _failed_rows(spark, validation_id: str) -> list[dict]:
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table

    found = read_table(
        spark, RESULTS_TABLE,
        ["table_name", "table_version", "expectation_id", "unexpected_count", "observed_value", "unexpected_sample"],
        (pads.field("validation_id") == validation_id) & ~pads.field("success"),
    )  # fmt: skip
    return sorted(found.to_pylist(), key=lambda r: r["expectation_id"])


def failed_expectations(spark, validation_id: str) -> list[str]:
    """`id (how many unexpected)` of each failed expectation of a stored validation."""
    return [
        f"{r['expectation_id']} ({r['unexpected_count'] if r['unexpected_count'] is not None else r['observed_value']})"
        for r in _failed_rows(spark, validation_id)
    ]


EVIDENCE = 5


def evidence(spark, validation_id: str) -> list[str]:
    """Each failed expectation of a stored validation with its evidence: how many rows it found and up to
    EVIDENCE of them, as the quarantine holds them (file:line and the record), else as sampled."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table
    from lakehouse.quality.quarantine import QUARANTINE_TABLE

    failed = _failed_rows(spark, validation_id)
    if not failed:
        return []
    held = None
    if table_exists(spark, QUARANTINE_TABLE):
        held = read_table(
            spark, QUARANTINE_TABLE, ["source_file", "line_number", "record", "reason", "quarantined_at"],
            pads.field("table_name") == failed[0]["table_name"],
        )  # fmt: skip
    said = []
    for r in failed:
        count = r["unexpected_count"] if r["unexpected_count"] is not None else r["observed_value"]
        shown = []
        if held is not None and held.num_rows:
            mine = held.filter(
                pc.match_substring(held.column("reason"), f"expectation {r['expectation_id']} failed")
            )
            mine = mine.sort_by([("quarantined_at", "descending"), ("line_number", "ascending")])
            for q in mine.slice(0, EVIDENCE).to_pylist():
                place = os.path.basename(q["source_file"] or "?") + (
                    f":{q['line_number']}" if q["line_number"] else ""
                )
                shown.append(f"{place} {_short(q['record'])}")
        if not shown:
            shown = [_short(v) for v in (r["unexpected_sample"] or [])[:EVIDENCE]]
        if not shown and r["observed_value"] not in (None, str(count)):  # a table-level finding (drift)
            shown = [_short(r["observed_value"], 400)]
        said.append(
            f"{r['expectation_id']} ({count} unexpected" + (": " + "; ".join(shown) if shown else "") + ")"
        )
    return said


def _short(text: str | None, limit: int = 160) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_of(
    spark,
    settings: Settings,
    table: str,
    version: int,
    run: IngestRun | None = None,
    decl: TableDecl | None = None,
) -> tuple[str, bool]:
    """(validation_id, success) of `table`@`version`: the stored validation, or a new one if it has none."""
    found = latest_validation(spark, table, version)
    if found is None:
        validation = validate_table(spark, settings, table, version, run=run, decl=decl)
        found = (validation.validation_id, validation.success)
    return found


def require_passed(
    spark,
    settings: Settings,
    table: str,
    version: int,
    run: IngestRun | None = None,
    decl: TableDecl | None = None,
) -> str:
    """The gate: return the id of a passed validation of `table`@`version`, validating if none exists yet.

    Raises ValidationFailed, naming the failed expectations, when that version did not pass.
    """
    validation_id, success = validation_of(spark, settings, table, version, run=run, decl=decl)
    if not success:
        raise ValidationFailed(
            f"{table} version {version} failed validation {validation_id}; not promoted. Failed expectations: "
            + ", ".join(evidence(spark, validation_id))
        )
    return validation_id


def gate(spark, settings: Settings, run: IngestRun, tables: list[str]) -> dict[str, DataFrame]:
    """`gate_versions`, as DataFrames of those exact versions, to build gold from."""
    versions = gate_versions(spark, settings, run, tables)
    return {t: spark.read.option("versionAsOf", v).table(t) for t, v in versions.items()}


def gate_versions(
    spark,
    settings: Settings,
    run: IngestRun,
    tables: list[str],
    reads: Mapping[str, Callable[[int], list[str]]] | None = None,
) -> dict[str, int]:
    """The promotion gate of a gold build: each input table at the version `run` wrote (else its current one),
    required to have passed validation; returns those exact versions.

    Raises ValidationFailed naming the failed expectations of every failing input, before gold is touched.

    A failed version still passes for this gold build when the rows gold reads from it pass: the files this
    run added to it (`own_rows_pass`), or, for a table the run reads only, the data files `reads[table]`
    (given the version) names: GEO's genes read the probes of their own platforms, and a platform landed
    with bad identifiers must not stop every later series.
    """
    with run.gate_timed():
        return _gate_versions(spark, settings, run, tables, reads or {})


def _gate_versions(spark, settings: Settings, run: IngestRun, tables: list[str], reads) -> dict[str, int]:
    versions = {t: run.targets[t] if t in run.targets else current_version(spark, t) for t in tables}
    failures = []
    for table, version in versions.items() if run.validate else ():  # validate=False: tests, benchmarks
        try:
            require_passed(spark, settings, table, version, run=run, decl=run.declarations.get(table))
        except ValidationFailed as failed:
            if table in reads and table not in run.added_files:
                paths = reads[table](version)
                if not paths or rows_pass(spark, settings, run, table, version, paths):
                    log.warning(
                        "%s v%s failed validation on rows this gold build does not read; the %d files it "
                        "reads pass", table, version, len(paths),
                    )  # fmt: skip
                    continue
            elif own_rows_pass(spark, settings, run, table, version):
                run.failed.append(
                    f"{table} v{version}: the rows of this run's files pass every check; gold was built from "
                    "them (the failing rows came from other files: land those files again, corrected)"
                )
                continue
            failures.append(str(failed))
    if failures:
        raise ValidationFailed(" ".join(failures))
    return versions


def own_rows_pass(spark, settings: Settings, run: IngestRun, table: str, version: int) -> bool:
    """Whether the rows `run` added to `table` (the files it committed) pass every check that their own
    rows decide. A version holding another file's failing rows fails its validation, and stays failed for
    every use of the whole table; but gold built from this run's rows only needs those rows to pass, and one
    bad file must not stop every later landing."""
    paths = run.added_files.get(table)
    return bool(paths) and rows_pass(spark, settings, run, table, version, paths)


def rows_pass(
    spark, settings: Settings, run: IngestRun, table: str, version: int, paths: Sequence[str]
) -> bool:
    """Whether the rows of `table`@`version`'s data files `paths` pass every check their own rows decide."""
    from lakehouse.quality.checks import UNIQUE_TYPES

    decl = run.declarations.get(table) or declaration(table, settings.schemas_dir)
    expectations = [e for e in suite_for(decl) if e.type not in (*UNIQUE_TYPES, "drift")]
    unique = [e for e in suite_for(decl) if e.type in UNIQUE_TYPES]
    scoped, _ = from_counts(spark, settings, decl, version, expectations + unique, record=False, paths=paths)
    return scoped is not None and scoped.success


def latest_passed_version(spark, table: str) -> int | None:
    """The newest version of `table` that passed validation (read with delta-rs), if any did."""
    found = stored_results(spark, [table], ["table_version", "validation_success"])
    passed = (
        [] if found is None else [r["table_version"] for r in found.to_pylist() if r["validation_success"]]
    )
    return max(passed, default=None)


def validate_run_targets(spark, settings: Settings, run: IngestRun) -> list[Validation]:
    """Validate every data-table version a run wrote that has not been validated yet; one lookup of what is
    validated and one append of the results, however many tables the run wrote."""
    targets = {t: v for t, v in sorted(run.targets.items()) if t.split(".")[0] in DATA_LAYERS}
    if not targets:
        return []
    found = stored_results(spark, list(targets), ["table_name", "table_version"])
    validated = set() if found is None else {(r["table_name"], r["table_version"]) for r in found.to_pylist()}
    done = [
        _evaluate(spark, settings, table, version, None, run.declarations.get(table))
        for table, version in targets.items()
        if (table, version) not in validated
    ]
    _store(spark, settings, done, run)
    return done
