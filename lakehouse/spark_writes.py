"""Write helpers every job uses: conform to the declaration, then commit idempotently.

- `upsert`: MERGE on the declared primary key; rows whose values did not change are left untouched, so
  re-running the same input rewrites nothing and duplicates nothing.
- `replace_source`: replaces every row that came from one source file in a single commit (`replaceWhere`),
  for tables whose rows are owned by the file they came from.
- `append_rows`: for logs such as `quality.quarantine`.

Each commit carries the run's job name, run id and source checksum in Delta's commit metadata, and each
write records the table version it produced on the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table
from lakehouse.errors import DataError
from lakehouse.runs import IngestRun, InputFile, commit_metadata, retry_conflicts
from lakehouse.schemas import PROVENANCE_COLUMNS, TableDecl

PROVENANCE_NAMES = tuple(column["name"] for column in PROVENANCE_COLUMNS)


def with_provenance(
    frame: DataFrame, source: InputFile, run: IngestRun, release: str | None = None
) -> DataFrame:
    return frame.select(
        "*",
        F.lit(source.path).alias("source_file"),
        F.lit(source.sha256).alias("source_sha256"),
        F.lit(release).cast("string").alias("source_release"),
        F.lit(run.run_id).alias("ingest_run_id"),
        F.lit(run.started_at).cast("timestamp").alias("ingested_at"),
    )


def conform(frame: DataFrame, decl: TableDecl) -> DataFrame:
    """Select exactly the declared columns, in declared order, cast to declared types."""
    present = set(frame.columns)
    missing = [c.name for c in decl.columns if c.name not in present and not c.nullable]
    if missing:
        raise DataError(f"cannot write {decl.name}: required columns missing from the data: {missing}")
    extra = sorted(present - set(decl.column_names))
    if extra:
        raise DataError(f"cannot write {decl.name}: columns not declared in {decl.origin}: {extra}")
    return frame.select(
        *[
            (F.col(c.name) if c.name in present else F.lit(None))
            .cast(c.type)
            .alias(c.name, metadata={"comment": c.description})
            for c in decl.columns
        ]
    )


def check_unique_key(frame: DataFrame, decl: TableDecl, limit: int = 5) -> None:
    if not decl.primary_key:
        return
    key = list(decl.primary_key)
    # One 64-bit hash per row is shuffled, not the key's strings (half the time on a 5.5M-row GEO file);
    # only rows whose hash repeats have their keys compared.
    digest = F.xxhash64(*key)
    suspects = frame.groupBy(digest.alias("h")).count().filter(F.col("count") > 1).limit(10_000).collect()
    if not suspects:
        return
    if len(suspects) < 10_000:
        frame = frame.filter(digest.isin([row["h"] for row in suspects]))
    duplicates = frame.groupBy(*key).count().filter(F.col("count") > 1).limit(limit).collect()
    if duplicates:
        shown = "; ".join(", ".join(f"{k}={row[k]}" for k in key) for row in duplicates)
        raise DataError(
            f"cannot write {decl.name}: the input repeats primary key ({', '.join(key)}): {shown}"
        )


def upsert(spark, frame: DataFrame, decl: TableDecl, run: IngestRun, source: InputFile | None = None) -> int:
    """MERGE `frame` into `decl`'s table on its primary key; returns the table version committed."""
    from delta.tables import DeltaTable

    if not decl.primary_key:
        raise DataError(f"cannot upsert into {decl.name}: it declares no primary_key")
    ensure_table(spark, decl)
    rows = conform(frame, decl)
    check_unique_key(rows, decl)
    nullable = {c.name for c in decl.columns if c.nullable}
    on = " AND ".join(
        f"t.`{k}` <=> s.`{k}`" if k in nullable else f"t.`{k}` = s.`{k}`" for k in decl.primary_key
    )
    values = [c for c in decl.column_names if c not in decl.primary_key and c not in PROVENANCE_NAMES]
    changed = " OR ".join(_differs(decl.column(c)) for c in values) or "false"
    with commit_metadata(spark, run.commit_metadata(source)):
        retry_conflicts(
            lambda: (
                DeltaTable.forName(spark, decl.name)
                .alias("t")
                .merge(rows.alias("s"), on)
                .whenMatchedUpdateAll(condition=changed)
                .whenNotMatchedInsertAll()
                .execute()
            ),
            decl.name,
        )
    return _record(spark, decl, run)


def _differs(column) -> str:
    """SQL that is true when the target and source values of `column` differ (nulls compared as values)."""
    if "map<" in column.type.replace(" ", "").lower():
        # Spark has no equality on maps: compare their JSON (the same input gives the same entry order).
        return f"NOT (to_json(t.`{column.name}`) <=> to_json(s.`{column.name}`))"
    return f"NOT (t.`{column.name}` <=> s.`{column.name}`)"


def replace_source(
    spark,
    frame: DataFrame,
    decl: TableDecl,
    run: IngestRun,
    source: InputFile,
    unique_by: str | None = None,
) -> int:
    """Atomically replace every row of `decl` that came from `source.path` with `frame`."""
    return replace_sources(spark, frame, decl, run, [source], unique_by)


def replace_sources(
    spark,
    frame: DataFrame,
    decl: TableDecl,
    run: IngestRun,
    sources: Sequence[InputFile],
    unique_by: str | None = None,
) -> int:
    """Atomically replace every row of `decl` that came from any of `sources` with `frame` (one commit for
    many files parsed in parallel).

    The frame's primary key is checked first (a Spark job over the frame), unless `unique_by` says why the
    frame is unique by construction (a key derived from an already checked one, say).
    """
    ensure_table(spark, decl)
    rows = conform(frame, decl)
    if unique_by is None:
        check_unique_key(rows, decl)
    paths = [source.path for source in sources]
    # DataFrameWriterV2's conditional overwrite is Delta's replaceWhere: delete + insert in one commit.
    with commit_metadata(spark, run.commit_metadata(sources[0] if len(sources) == 1 else None)):
        retry_conflicts(lambda: _writer(rows, decl).overwrite(F.col("source_file").isin(paths)), decl.name)
    return _record(spark, decl, run)


def append_rows(
    spark,
    frame: DataFrame,
    decl: TableDecl,
    run: IngestRun,
    source: InputFile | None = None,
    counts_as_written: bool = True,
) -> int:
    ensure_table(spark, decl)
    rows = conform(frame, decl)
    with commit_metadata(spark, run.commit_metadata(source)):
        retry_conflicts(lambda: _writer(rows, decl).append(), decl.name)
    return _record(spark, decl, run, counts_as_written)


def _writer(rows: DataFrame, decl: TableDecl):
    writer = rows.writeTo(decl.name)
    # Columns the declaration adds (TableDecl.evolving) join the schema in the same commit as the rows.
    return writer.option("mergeSchema", "true") if decl.evolving else writer


def _record(spark, decl: TableDecl, run: IngestRun, counts_as_written: bool = True) -> int:
    """Find the version this run committed (by its run id in the commit metadata) and its row count."""
    from delta.tables import DeltaTable

    commits = (
        DeltaTable.forName(spark, decl.name)
        .history(50)
        .filter(F.col("userMetadata").contains(run.run_id))
        .select("version", "operationMetrics")
        .orderBy(F.col("version").desc())
        .first()
    )
    if commits is None:
        # Delta commits nothing for a write with nothing to do (an empty MERGE source, an empty file's
        # replace that matches no rows): the table stays where it was and the run wrote no version of it.
        return DeltaTable.forName(spark, decl.name).history(1).first()["version"]
    metrics = commits["operationMetrics"] or {}
    if "numTargetRowsInserted" in metrics:  # MERGE: copied rows are rewritten, not written
        written = int(metrics["numTargetRowsInserted"]) + int(metrics.get("numTargetRowsUpdated", 0))
    else:
        written = int(metrics.get("numOutputRows", 0))
    if counts_as_written:
        run.count_written(decl.name, written)
    run.record_target(decl.name, commits["version"], decl)
    return commits["version"]
