"""Shared fixtures: one SparkSession per test session on a temporary warehouse, and a CLI runner.

The Delta jar cache is shared by every temporary home (it is resolved once by `make test`'s set-up), so
tests never touch the network for jars unless they are about resolving them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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


# Cases of tests/reliability/ record their observed outcomes here; the summary prints them (see catalogue.py).
RELIABILITY_LEDGER = Path(
    os.environ.get("LAKEHOUSE_RELIABILITY_LEDGER")
    or Path(tempfile.gettempdir()) / f"lakehouse-reliability-{os.getpid()}.json"  # one per test session
)


def pytest_sessionstart(session):
    RELIABILITY_LEDGER.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    """The reliability catalogue's ledger: every case with its observed outcome, and the totals."""
    import json

    if not RELIABILITY_LEDGER.exists():
        return
    entries = json.loads(RELIABILITY_LEDGER.read_text())
    terminalreporter.section("reliability catalogue")
    for e in entries:
        terminalreporter.line(f"{e['case']}: {e['outcome']}")
    totals = {k: sum(e[k] for e in entries) for k in ("rows_lost", "partial_commits", "duplicates")}
    terminalreporter.line(
        f"{len(entries)} cases; rows lost {totals['rows_lost']}, partial commits {totals['partial_commits']}, "
        f"duplicates {totals['duplicates']} (ledger: {RELIABILITY_LEDGER})"
    )
