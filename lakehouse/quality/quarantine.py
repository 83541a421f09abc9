"""`quality.quarantine`: where records that cannot land go, with file, line and reason.

One mechanism for every source and for the gate: rows in Arrow, each (table, file checksum, line, reason)
quarantined once, appended through the landing engine's commit (no Spark job).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.runs import IngestRun

QUARANTINE_TABLE = "quality.quarantine"
BAD_COLUMNS = ("table_name", "source_file", "source_sha256", "line_number", "record", "reason")
BAD_SCHEMA = pa.schema(
    [("table_name", pa.string()), ("source_file", pa.string()), ("source_sha256", pa.string()),
     ("line_number", pa.int64()), ("record", pa.string()), ("reason", pa.string())]
)  # fmt: skip


def bad_rows(rows: list[dict]) -> pa.Table:
    """Quarantine rows (dicts holding at least BAD_COLUMNS) as the table `quarantine_rows` takes."""
    return pa.Table.from_pylist([{c: r.get(c) for c in BAD_COLUMNS} for r in rows], BAD_SCHEMA)


ONCE = ["table_name", "source_sha256", "line_number", "reason", "record"]


def quarantine_rows(spark, run: IngestRun, bad: pa.Table) -> int:
    """Append the rows of `bad` (BAD_COLUMNS) that the quarantine does not hold yet for the same file
    content, line, reason and record. Returns how many were added (0 commits nothing)."""
    import pyarrow.dataset as pads

    from lakehouse.landing import Target, append, read_table
    from lakehouse.schemas import declaration

    if bad.num_rows == 0:
        return 0
    target = Target.of(spark, declaration(QUARANTINE_TABLE, run.settings.schemas_dir))
    bad = bad.select(list(BAD_COLUMNS))
    checksums = pa.array(sorted(set(bad.column("source_sha256").drop_null().to_pylist())), pa.string())
    known = read_table(spark, QUARANTINE_TABLE, ONCE, pads.field("source_sha256").isin(checksums))
    if known.num_rows:
        bad = bad.join(known.group_by(ONCE).aggregate([]), keys=ONCE, join_type="left anti")
    bad = _first_of_each(bad)
    if bad.num_rows == 0:
        return 0
    at = pa.scalar(run.started_at.replace(tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))
    rows = bad.append_column("ingest_run_id", pa.repeat(pa.scalar(run.run_id), bad.num_rows))
    rows = rows.append_column("quarantined_at", pa.repeat(at, bad.num_rows))
    append(target, rows, metadata=run.commit_metadata())
    run.rows_quarantined += bad.num_rows
    return bad.num_rows


def _first_of_each(bad: pa.Table) -> pa.Table:
    """One row per (table, checksum, line, reason, record) of the input itself."""
    if bad.num_rows < 2:
        return bad
    numbered = bad.append_column("_row", pa.array(range(bad.num_rows), pa.int64()))
    first = numbered.group_by(ONCE, use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    return bad.take(pc.take(first, pc.sort_indices(first)))


def quarantine(spark, bad, run: IngestRun) -> int:
    """`quarantine_rows` for rows found by a Spark scan (a DataFrame with BAD_COLUMNS)."""
    return quarantine_rows(spark, run, bad.select(*BAD_COLUMNS).toArrow())
