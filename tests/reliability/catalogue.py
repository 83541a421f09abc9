"""What every reliability case shares: a real `lakehouse` command line run, table facts, and the ledger.

Each case records its observed outcome and three counts — rows lost, partial commits, duplicated rows —
measured on the real tables, not assumed. The ledger (JSON) is printed at the end of the test session.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass

from conftest import RELIABILITY_LEDGER as LEDGER
from pyspark.sql import functions as F


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def cli_in_process(env: dict[str, str], *args: str) -> Outcome:
    """`lakehouse ARGS` through the real command line, in this process (its SparkSession is reused)."""
    from lakehouse.catalog import forget_checks
    from lakehouse.cli import main

    saved = dict(os.environ)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        forget_checks()
    return Outcome(code, out.getvalue(), err.getvalue())


def version(spark, table: str) -> int | None:
    if not spark.catalog.tableExists(table):
        return None
    from delta.tables import DeltaTable

    return DeltaTable.forName(spark, table).history(1).first()["version"]


def commits_of(spark, table: str, run_id: str) -> int:
    """Commits of `table` made by the run (its id is in every commit's user metadata)."""
    if not spark.catalog.tableExists(table):
        return 0
    from delta.tables import DeltaTable

    return DeltaTable.forName(spark, table).history().filter(F.col("userMetadata").contains(run_id)).count()


def duplicates(frame, key: list[str]) -> int:
    """Rows beyond the first of each key."""
    return frame.count() - frame.select(*key).distinct().count()


def runs(spark, job: str):
    return spark.table("meta.ingest_runs").filter(F.col("job") == job).orderBy(F.col("started_at").desc())


def record(case: str, outcome: str, lost: int = 0, partial: int = 0, duplicated: int = 0) -> None:
    mine = LEDGER / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json"
    entries = json.loads(mine.read_text()) if mine.exists() else []
    entries = [e for e in entries if e["case"] != case]
    entries.append(
        {
            "case": case,
            "outcome": outcome,
            "rows_lost": lost,
            "partial_commits": partial,
            "duplicates": duplicated,
        }
    )
    mine.write_text(json.dumps(entries, indent=1))
