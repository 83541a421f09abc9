"""Shared fixtures: one SparkSession per test session on a temporary warehouse, and a CLI runner.

The Delta jar cache is shared by every temporary home (it is resolved once by `make test`'s set-up), so
tests never touch the network for jars unless they are about resolving them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Resolved like the paths the ingest records, so ../shared may be a link (a developer's checkout).
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()
JAR_CACHE = Path(os.environ.get("LAKEHOUSE_CACHE") or ROOT / "lakehouse-data" / "cache").resolve()


def lakehouse_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "MLFLOW_TRACKING_URI"))}
    env.update(
        LAKEHOUSE_HOME=str(home),
        LAKEHOUSE_CACHE=str(JAR_CACHE),
        LAKEHOUSE_CONFIG=str(home / "lakehouse.toml"),
        LAKEHOUSE_SPARK_MASTER="local[2]",
        GX_ANALYTICS_ENABLED="false",
        # GX's per-expectation Spark jobs cost seconds per table; the engines' parity is tested in
        # test_quality.py, so the rest of the suite validates with the batched engine.
        LAKEHOUSE_VALIDATION_ENGINE="batched",
    )
    if os.environ.get("LAKEHOUSE_SCHEMAS"):  # run the suite against another set of declarations
        env["LAKEHOUSE_SCHEMAS"] = os.environ["LAKEHOUSE_SCHEMAS"]
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `lakehouse ARGS` in a new process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "lakehouse", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env["LAKEHOUSE_HOME"],
    )


def run_status(spark, run_id: str) -> str:
    """The status meta.ingest_runs holds for run `run_id` (read with delta-rs: no Spark job)."""
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table

    [status] = (
        read_table(spark, "meta.ingest_runs", ["status"], pads.field("run_id") == run_id)
        .column(0)
        .to_pylist()
    )
    return status


def read_alike(spark, table: str, key: list[str]) -> dict[str, tuple[int, str]]:
    """(rows, checksum of the `key` columns) of `table`'s current version as Spark, delta-rs and DuckDB's
    delta extension each read it; also asserts that every live file carries Delta statistics."""
    import hashlib
    import json

    import duckdb
    import duckdb_extension_delta
    import pyarrow as pa
    from deltalake import DeltaTable

    from lakehouse.storage import Storage, table_location

    def digest(rows) -> tuple[int, str]:
        text = json.dumps(sorted([str(v) for v in row] for row in rows))
        return len(rows), hashlib.sha256(text.encode()).hexdigest()

    storage = Storage.of(spark, table_location(spark, table))
    rust = DeltaTable(storage.delta_uri(), storage_options=storage.delta_options())
    files = pa.table(rust.get_add_actions(flatten=True))
    assert files.column("num_records").null_count == 0, f"{table}: a file without statistics"
    extension = next(
        (Path(duckdb_extension_delta.__file__).parent / "extensions").glob(
            f"v{duckdb.__version__}/delta.duckdb_extension"
        )
    )
    duck = duckdb.connect()
    duck.execute(f"LOAD '{extension}'")
    columns = ", ".join(f'"{c}"' for c in key)
    return {
        "spark": digest([tuple(r) for r in spark.table(table).select(*key).collect()]),
        "delta-rs": digest(
            list(zip(*[c.to_pylist() for c in rust.to_pyarrow_table(columns=key).columns], strict=True))
        ),
        "duckdb": digest(
            duck.execute(f"SELECT {columns} FROM delta_scan('{storage.delta_uri()}')").fetchall()
        ),
    }


@contextlib.contextmanager
def serving(env: dict[str, str], home: Path, service: str, what: str) -> Iterator[int]:
    """`lakehouse serve <service>` on a free port of 127.0.0.1 (its output in `home`/serve.log): yields the
    port once it listens, then stops the server's process group and checks the port is closed."""
    from lakehouse.cluster import HOST, free_port, port_open, wait_until

    port = free_port()
    log = home / "serve.log"
    with open(log, "wb") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "lakehouse", "serve", service, "--port", str(port)],
            env=env,
            cwd=home,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: port_open(HOST, port), 240, what, process=server, log=log)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    assert not port_open(HOST, port)


def error_lines(stderr: str) -> list[str]:
    """The CLI's own error lines (JVM start-up notices such as the incubator-module warning excluded)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    from lakehouse.settings import Settings

    home = tmp_path_factory.mktemp("lakehouse-home")
    return Settings.load(environ=lakehouse_env(home))


@pytest.fixture(scope="session")
def spark(settings):
    from lakehouse.catalog import init_catalog
    from lakehouse.spark import get_spark

    session = get_spark(settings, app_name="lakehouse-tests")
    init_catalog(session, settings)
    yield session
    session.stop()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


# Cases of tests/reliability/ record their observed outcomes here, one file per pytest-xdist worker (they
# inherit the directory the session's first process names); the summary prints them (see catalogue.py).
RELIABILITY_LEDGER = Path(
    os.environ.setdefault(
        "LAKEHOUSE_RELIABILITY_LEDGER",
        str(Path(tempfile.gettempdir()) / f"lakehouse-reliability-{os.getpid()}"),
    )
)


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controlling process (or the only one)
        shutil.rmtree(RELIABILITY_LEDGER, ignore_errors=True)
    RELIABILITY_LEDGER.mkdir(parents=True, exist_ok=True)


def pytest_terminal_summary(terminalreporter):
    """The reliability catalogue's ledger: every case with its observed outcome, and the totals."""
    import json

    entries = [e for path in sorted(RELIABILITY_LEDGER.glob("*.json")) for e in json.loads(path.read_text())]
    if not entries:
        return
    entries.sort(key=lambda e: e["case"])
    terminalreporter.section("reliability catalogue")
    for e in entries:
        terminalreporter.line(f"{e['case']}: {e['outcome']}")
    totals = {k: sum(e[k] for e in entries) for k in ("rows_lost", "partial_commits", "duplicates")}
    terminalreporter.line(
        f"{len(entries)} cases; rows lost {totals['rows_lost']}, partial commits {totals['partial_commits']}, "
        f"duplicates {totals['duplicates']} (ledger: {RELIABILITY_LEDGER})"
    )
