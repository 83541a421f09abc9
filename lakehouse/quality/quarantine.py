"""`quality.quarantine`: where records that cannot land go, with file, line and reason."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.runs import IngestRun
from lakehouse.schemas import declaration
from lakehouse.tables import append_rows

QUARANTINE_TABLE = "quality.quarantine"


def quarantine(spark, bad: DataFrame, run: IngestRun) -> int:
    """Append `bad` (table_name, source_file, source_sha256, line_number, record, reason) to the quarantine.

    Returns the number of records quarantined (0 writes nothing and commits nothing).
    """
    count = bad.count()
    if count == 0:
        return 0
    rows = bad.select(
        "*",
        F.lit(run.run_id).alias("ingest_run_id"),
        F.lit(run.started_at).cast("timestamp").alias("quarantined_at"),
    )
    append_rows(
        spark, rows, declaration(QUARANTINE_TABLE, run.settings.schemas_dir), run, counts_as_written=False
    )
    run.rows_quarantined += count
    return count
