"""Ingest runs: every job run is a row of `meta.ingest_runs`, from start to its end or failure.

A run is written as `running` when it starts and closed with `succeeded` or `failed` (with the error
message) when it ends, so a run killed mid-write is still visible. Inputs are fingerprinted (SHA-256, size)
before anything is read, and every Delta commit the run makes carries its job, run id and input checksum.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Self

from lakehouse.errors import describe_error
from lakehouse.schemas import declaration
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

RUNS_TABLE = "meta.ingest_runs"


@dataclass(frozen=True)
class InputFile:
    path: str
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, path: str | Path) -> InputFile:
        path = Path(path).resolve()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return cls(str(path), digest.hexdigest(), path.stat().st_size)


def code_version() -> str:
    """The git commit of the code that runs (with `-dirty` when the tree has changes), or `unknown`."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = head.stdout.strip() if head.returncode == 0 else ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}-dirty" if commit and dirty else (commit or "unknown")


# The runtime lock the package was built with (package data): exact versions of every dependency.
LOCK = resources.files("lakehouse") / "conf" / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]*?))?\s*\\?$")


@dataclass(frozen=True)
class Environment:
    """What ran, beyond the code: the package's version, the hash of its lock, and where the installed
    packages differ from that lock (empty when the environment was installed from it)."""

    lakehouse_version: str
    lock_sha256: str
    lock_drift: tuple[str, ...]


def lock_pins(text: str) -> dict[str, str]:
    """`name -> version` of the lock's pins whose environment markers hold on this interpreter."""
    from packaging.markers import Marker

    pins = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match and (not match[3] or Marker(match[3]).evaluate()):
            pins[canonical_name(match[1])] = match[2]
    return pins


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_drift(pins: Mapping[str, str], installed: Mapping[str, str]) -> tuple[str, ...]:
    """One line per locked package that is missing or at another version (PEP 440 equality)."""
    from packaging.version import InvalidVersion, Version

    def same(a: str, b: str) -> bool:
        try:
            return Version(a) == Version(b)
        except InvalidVersion:
            return a == b

    drift = []
    for name, locked in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            drift.append(f"{name} missing (locked {locked})")
        elif not same(have, locked):
            drift.append(f"{name} {have} (locked {locked})")
    return tuple(drift)


@lru_cache(maxsize=1)
def environment() -> Environment:
    text = LOCK.read_text()
    installed = {canonical_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    try:
        version = metadata.version("lakehouse")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "unknown"
    return Environment(
        version, hashlib.sha256(text.encode()).hexdigest(), lock_drift(lock_pins(text), installed)
    )


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class IngestRun:
    spark: object
    settings: Settings
    job: str
    inputs: list[InputFile] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: dt.datetime = field(default_factory=utcnow)
    targets: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    status: str = "running"
    error: str | None = None
    validate: bool = True
    validations: list = field(default_factory=list)  # the versions validated as the run closed
    failed: list[str] = field(default_factory=list)  # every failed validation the run stored, with evidence
    added_files: dict[str, list[str]] = field(default_factory=dict)  # table -> data files it committed
    declarations: dict = field(default_factory=dict)  # table -> TableDecl used for its writes
    commit_seconds: dict[str, float] = field(default_factory=dict)  # table -> seconds from start to commit
    table_rows: dict[str, int] = field(default_factory=dict)  # table -> rows this run committed to it
    # What the quality gate cost: "tasks", the CPU seconds the landing tasks spent counting expectations;
    # "driver", the wall seconds of every gate step on the driver (`gate_timed`).
    gate_seconds: dict[str, float] = field(default_factory=dict)
    _clock: float = field(default_factory=time.monotonic, repr=False)
    _runs: object = field(default=None, repr=False)  # landing.Target of meta.ingest_runs
    _row_files: list = field(default_factory=list, repr=False)  # the file holding this run's row
    _in_gate: bool = field(default=False, repr=False)

    def __enter__(self) -> Self:
        if self.validate:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            _preload("great_expectations")  # its import (~4 s) overlaps the JVM's catalog work below
        from lakehouse.landing import Target

        self._runs = Target.of(self.spark, declaration(RUNS_TABLE, self.settings.schemas_dir))
        close_abandoned_runs(self.spark, self._runs)
        self._write(append=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None and self.validate:
            # Every data-table version this run wrote is validated before the run counts as succeeded.
            from lakehouse.quality.validate import validate_run_targets

            try:
                with self.gate_timed():
                    self.validations = validate_run_targets(self.spark, self.settings, self)
            except Exception as error:
                self._close(type(error), error)
                raise
        try:
            self._close(exc_type, exc)
        except Exception as closing:
            if exc is None:
                raise
            # The run's own failure (a full disk, say) is what the user must see; the run's row stays
            # `running` and the next run on this host closes it as abandoned.
            log.warning("could not record the failure of run %s: %s", self.run_id, describe_error(closing))
        return False

    def _close(self, exc_type, exc) -> None:
        if self.gate_seconds:
            log.info("run %s: the quality gate took %.2f s on the driver and %.2f s of task CPU", self.run_id,
                     self.gate_seconds.get("driver", 0.0), self.gate_seconds.get("tasks", 0.0))  # fmt: skip
        self.status = "failed" if exc else "succeeded"
        if exc is not None:
            self.error = f"{exc_type.__name__}: {describe_error(exc)}"[:2000]
        self._write(append=False)

    def commit_metadata(self, source: InputFile | Sequence[InputFile] | None = None) -> str:
        """What a commit of this run records in Delta's history: job, run and the source file(s)."""
        meta = {"job": self.job, "run_id": self.run_id}
        sources = [source] if isinstance(source, InputFile) else list(source or [])
        if len(sources) == 1:
            meta["source_file"] = sources[0].path
            meta["source_sha256"] = sources[0].sha256
        elif sources:
            meta["source_files"] = [s.path for s in sources]
        return json.dumps(meta, sort_keys=True)

    def add_gate_seconds(self, part: str, seconds: float) -> None:
        self.gate_seconds[part] = self.gate_seconds.get(part, 0.0) + seconds

    @contextmanager
    def gate_timed(self) -> Iterator[None]:
        """Count the block's wall time as the gate's, on the driver (not twice where gate steps nest)."""
        if self._in_gate:
            yield
            return
        self._in_gate, started = True, time.perf_counter()
        try:
            yield
        finally:
            self._in_gate = False
            self.add_gate_seconds("driver", time.perf_counter() - started)

    def record_target(self, table: str, version: int, decl=None) -> None:
        self.targets[table] = max(version, self.targets.get(table, -1))
        self.commit_seconds[table] = time.monotonic() - self._clock
        if decl is not None:
            self.declarations[table] = decl

    def record_files(self, table: str, paths: list[str]) -> None:
        """The data files this run committed to `table` (what its own rows are, for the gate)."""
        self.added_files.setdefault(table, []).extend(paths)

    def count_written(self, table: str, rows: int) -> None:
        """`rows` committed to `table`: in the run's total and in the table's own count."""
        self.rows_written += rows
        self.table_rows[table] = self.table_rows.get(table, 0) + rows

    def _row(self) -> dict:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "status": self.status,
            "inputs": [{"path": i.path, "sha256": i.sha256, "size_bytes": i.size_bytes} for i in self.inputs],
            "targets": [{"table_name": t, "version": v} for t, v in sorted(self.targets.items())],
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_quarantined": self.rows_quarantined,
            "started_at": self.started_at,
            "ended_at": None if self.status == "running" else utcnow(),
            "error": self.error,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "code_version": code_version(),
            "lakehouse_version": environment().lakehouse_version,
            "lock_sha256": environment().lock_sha256,
            "lock_drift": list(environment().lock_drift),
        }

    def _write(self, append: bool) -> None:
        """The run's row: added when it starts; at its end, its file is replaced by one with the outcome,
        in one delta-rs commit (a Spark MERGE only if OPTIMIZE compacted that file meanwhile)."""
        import pyarrow as pa

        from lakehouse.landing import append as append_rows

        rows = pa.Table.from_pylist([self._row()], self._runs.schema)
        version, added = append_rows(
            self._runs, rows, metadata=self.commit_metadata(), instead_of=[] if append else self._row_files
        )
        if version is not None:
            self._row_files = added
            return
        decl = declaration(RUNS_TABLE, self.settings.schemas_dir)
        view = f"ingest_run_{self.run_id}"
        self.spark.createDataFrame([self._row()], schema=decl.spark_schema()).createOrReplaceTempView(view)

        def write():  # SQL, not Delta's Python API: a Spark Connect session has only the former
            self.spark.sql(
                f"MERGE INTO {RUNS_TABLE} t USING {view} s ON t.run_id = s.run_id "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            )

        with commit_metadata(self.spark, self.commit_metadata()):
            retry_conflicts(write, RUNS_TABLE)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest run landed, as every source returns it and the CLI and the spark-submit jobs print it
    (`summary`). Built from the closed run (`of`), so it holds every table version the run wrote, its
    quality gate's included; `counts` are the source's own figures (GEO's values, gnomAD's release and
    records, TCGA's files per kind), in the order they are printed."""

    source: str  # "GEO", "TCGA", "gnomAD"
    run_id: str
    inputs: tuple[str, ...]  # the input files' paths
    versions: Mapping[str, int] = field(default_factory=dict)  # table -> the version the run left it at
    rows: Mapping[str, int] = field(default_factory=dict)  # table -> rows the run committed to it
    quarantined: int = 0
    commit_seconds: Mapping[str, float] = field(default_factory=dict)  # table -> seconds from start to commit
    skipped: bool = False  # already landed (same checksum): nothing was written
    counts: Mapping[str, int | str] = field(default_factory=dict)
    failed: tuple[str, ...] = ()  # the table versions that failed validation, each with its evidence
    gate_seconds: Mapping[str, float] = field(default_factory=dict)  # `IngestRun.gate_seconds`

    @classmethod
    def of(cls, run: IngestRun, source: str, counts: Mapping[str, int | str], skipped: bool = False) -> Self:
        return cls(
            source,
            run.run_id,
            tuple(i.path for i in run.inputs),
            dict(run.targets),
            dict(run.table_rows),
            run.rows_quarantined,
            dict(run.commit_seconds),
            skipped,
            dict(counts),
            tuple(run.failed),
            dict(run.gate_seconds),
        )

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        """One line naming the source and its files, its figures and the run; then one per table version
        written, with the rows the run committed to it (none for the gate's results, which are appended
        beside the data and not counted as written, nor for a commit with nothing to add)."""
        files = self.inputs[0] if len(self.inputs) == 1 else f"{len(self.inputs)} files"
        if self.skipped:
            return f"{self.source} {files}: already landed (same SHA-256); nothing written; run {self.run_id}"
        figures = [f"{v} {k}" if isinstance(v, int) else f"{k} {v}" for k, v in self.counts.items()]
        figures += [f"{_rows(self.rows_written)} written", f"{self.quarantined} quarantined"]
        lines = [f"{self.source} {files}: {', '.join(figures)}; run {self.run_id}"]
        for table, version in sorted(self.versions.items()):
            written = f" ({_rows(self.rows[table])} written)" if table in self.rows else ""
            lines.append(f"  {table} → version {version}{written}")
        lines += [f"  FAILED {line}" for line in self.failed]
        return "\n".join(lines)


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _preload(module: str) -> None:
    """Import `module` in a background thread, so that a later import finds it loaded."""
    import importlib
    import threading

    if module not in sys.modules:
        threading.Thread(target=importlib.import_module, args=(module,), daemon=True).start()


def close_abandoned_runs(spark, runs) -> list[str]:
    """Mark failed the runs of this host still `running` whose process is gone (killed, machine stopped).

    A process killed with SIGKILL cannot close its own run. A write it had under way never committed (Delta
    commits are atomic), so that table is at its previous version; only the run's row needs the truth.
    `runs` is the landing Target of the runs table, read with delta-rs.
    """
    import pyarrow.dataset as pads

    host = socket.gethostname()
    found = runs.storage.dataset().to_table(
        filter=(pads.field("status") == "running") & (pads.field("host") == host), columns=["run_id", "pid"]
    )
    stale = [
        (row["run_id"], row["pid"])
        for row in found.to_pylist()
        if row["pid"] is not None and not _alive(row["pid"])
    ]
    if not stale:
        return []
    ids = [run_id for run_id, _ in stale if re.fullmatch(r"[0-9a-f]{32}", run_id)]  # uuid4 hex, as written
    if not ids:
        return []
    listed = ", ".join(f"'{run_id}'" for run_id in ids)
    # The host goes in as a SQL string literal: Delta's UPDATE binds no parameters.
    where = host.replace("\\", "\\\\").replace("'", "\\'")
    # SQL, not Delta's Python API: a Spark Connect session has only the former.
    retry_conflicts(
        lambda: spark.sql(
            f"UPDATE {RUNS_TABLE} SET status = 'failed', ended_at = current_timestamp(), "
            f"error = concat('abandoned: process ', cast(pid AS string), ' on {where} ended without closing "
            f"its run (killed or stopped)') WHERE run_id IN ({listed}) AND status = 'running'"
        ),
        RUNS_TABLE,
    )
    log.warning("closed %d abandoned run(s) of this host: %s", len(ids), ", ".join(ids))
    return ids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


CONFLICT_RETRIES = 10


def retry_conflicts(write, what: str):
    """Run one Delta commit, again if another writer committed first (Delta's optimistic concurrency).

    Every write the lakehouse makes can be repeated: a MERGE on the table's key, a replace of one source's
    rows, or an append that did not commit. So a conflict is not an error: re-reading the table and writing
    again gives the same rows exactly once. The wait grows, with jitter so two writers do not collide again.
    """
    import random
    import time

    import delta.exceptions as conflicts

    kinds = (
        conflicts.DeltaConcurrentModificationException,
        conflicts.ConcurrentWriteException,
        conflicts.MetadataChangedException,
        conflicts.ProtocolChangedException,
        conflicts.ConcurrentAppendException,
        conflicts.ConcurrentDeleteReadException,
        conflicts.ConcurrentDeleteDeleteException,
        conflicts.ConcurrentTransactionException,
    )
    for attempt in range(1, CONFLICT_RETRIES + 1):
        try:
            return write()
        except kinds as conflict:
            if attempt == CONFLICT_RETRIES:
                raise
            wait = min(0.2 * 2**attempt, 10) * random.uniform(0.5, 1.5)
            first = str(conflict).splitlines()[0][:200]
            log.warning("%s: concurrent commit (%s); retry %d in %.1f s", what, first, attempt, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


class commit_metadata:
    """Set Delta's commit user metadata for the writes inside the block (MERGE has no writer option)."""

    KEY = "spark.databricks.delta.commitInfo.userMetadata"

    def __init__(self, spark, text: str):
        self.spark, self.text = spark, text

    def __enter__(self):
        self.previous = self.spark.conf.get(self.KEY, None)
        self.spark.conf.set(self.KEY, self.text)

    def __exit__(self, *exc):
        if self.previous is None:
            self.spark.conf.unset(self.KEY)
        else:
            self.spark.conf.set(self.KEY, self.previous)
