"""The MLflow tracking server going away while an experiment's run is open.

A real `mlflow server` (SQLite backend store, artifacts directory, 127.0.0.1, a free port) is SIGKILLed by a
watcher thread the moment the experiment's run shows as RUNNING on it, i.e. after the run was created and
before it was ended. The experiment runs through the real `lakehouse experiment run` command line, in this
process, on a small generated gold table (test_ml's cohort). The server is then restarted on the same port
and store, and the experiment run again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from catalogue import cli_in_process, record
from conftest import lakehouse_env
from pyspark.sql import functions as F
from test_ml import DECLARATION, cohort

from lakehouse.quality.validate import validate_table
from lakehouse.schemas import load_declarations
from ml.tracking import journal_path

TABLE = "gold.mlflow_away_expression"
EXPERIMENT = "mlflow-away"
CASE = "MLflow server going away during training"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """The first server, launched before the table is built so that its start-up overlaps that work."""
    store, port = tmp_path_factory.mktemp("mlflow-server"), free_port()
    process = launch(store, port)
    yield store, port, process
    if process.poll() is None:
        stop(process)


@pytest.fixture(scope="module")
def schemas(spark, settings, tmp_path_factory) -> Path:
    """The session's declarations plus a gold table of its own (version 0 holds 40 validated patients)."""
    schemas = tmp_path_factory.mktemp("schemas-mlflow-away")
    shutil.copytree(settings.schemas_dir, schemas, dirs_exist_ok=True)
    (schemas / "gold").mkdir(exist_ok=True)
    (schemas / "gold" / "mlflow_away_expression.yaml").write_text(
        yaml.safe_dump({**DECLARATION, "name": TABLE})
    )
    schema = "sample_id string, case_id string, subtype string, gene_id string, tpm double"
    spark.createDataFrame(cohort(40), schema).writeTo(TABLE).using("delta").create()
    decl = load_declarations(schemas)[TABLE]
    assert validate_table(
        spark, dataclasses.replace(settings, schemas_dir=schemas), TABLE, 0, decl=decl
    ).success
    return schemas


def launch(store: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:PORT over STORE (its SQLite file and artifacts); see `ready`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{store}/server.db",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the workers too
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )


def ready(server: subprocess.Popen, port: int) -> subprocess.Popen:
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                stop(server)
                raise
            time.sleep(0.2)


def stop(server: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if server.poll() is None:
        os.killpg(server.pid, sig)
    server.wait(timeout=60)


def api(base: str, endpoint: str, body: dict | None = None, query: str = "") -> dict:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{endpoint}{'?' + query if query else ''}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.load(reply)


def status_of(base: str, run_id: str) -> str:
    return api(base, "runs/get", query=f"run_id={run_id}")["run"]["info"]["status"]


class KillWhenRunning(threading.Thread):
    """Polls the server every 50 ms and SIGKILLs its process group as soon as a run of the experiment is
    RUNNING: between the run's creation and its end, whatever the run logs in between."""

    def __init__(self, server: subprocess.Popen, base: str, experiment_id: str):
        super().__init__(daemon=True)
        self.server, self.base, self.experiment_id = server, base, experiment_id
        self.stopped = threading.Event()
        self.run_id: str | None = None
        self.killed_at: float | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                found = api(
                    self.base,
                    "runs/search",
                    {"experiment_ids": [self.experiment_id], "filter": "attributes.status = 'RUNNING'"},
                ).get("runs", [])
            except OSError:
                found = []
            if found:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.killed_at = time.monotonic()
                self.run_id = found[0]["info"]["run_id"]
                return
            self.stopped.wait(0.05)


def test_server_killed_mid_run_fails_clearly_and_the_run_ends_failed_not_finished(
    mlflow_store, spark, settings, schemas, tmp_path
):
    import mlflow

    store, port, launched = mlflow_store
    base = f"http://127.0.0.1:{port}"
    env = lakehouse_env(settings.home, MLFLOW_TRACKING_URI=base, LAKEHOUSE_SCHEMAS=str(schemas))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "name": EXPERIMENT,
                "hypothesis": "Expression of the planted programme predicts the subtype",
                "data": {"table": TABLE, "version": 0, "label": "subtype", "group": "case_id"},
                "model": {"type": "logistic_regression", "C": 0.5},
                "baseline": {"type": "majority"},
                "metric": "balanced_accuracy",
                "min_effect": 0.2,
                "model_name": "lakehouse-test-mlflow-away",
            }
        )
    )
    journal = journal_path(settings)
    journal.unlink(missing_ok=True)

    server = ready(launched, port)
    try:
        experiment_id = api(base, "experiments/create", {"name": EXPERIMENT})["experiment_id"]
        watcher = KillWhenRunning(server, base, experiment_id)
        watcher.start()
        try:
            first = cli_in_process(env, "experiment", "run", str(spec_path))
        finally:
            watcher.stopped.set()
            watcher.join(timeout=10)
        failed_after = time.monotonic() - watcher.killed_at if watcher.killed_at else None
    finally:
        stop(server, signal.SIGKILL)

    assert watcher.run_id is not None, f"the run never showed as RUNNING: {first}"
    assert first.code == 1, first
    [line] = first.errors
    run_id = watcher.run_id
    assert line == (
        f"error: MLflow tracking server {base} is unreachable (connection refused); run {run_id} could not "
        "be finished and is recorded to be marked FAILED when the server is back"
    ), line
    assert "Traceback" not in first.err
    assert failed_after < 60, f"{failed_after:.0f} s from the kill to the error: MLflow kept retrying"
    assert mlflow.active_run() is None  # the process is not left inside the dead run
    [entry] = json.loads(journal.read_text())
    assert (entry["run_id"], entry["tracking_uri"], entry["cause"]) == (run_id, base, "connection refused")
    unfound = spark.table("knowledge.findings").filter(F.col("run_id") == run_id).count()
    assert unfound == 0  # a run that did not end is not a finding

    server = ready(launch(store, port), port)
    try:
        before = status_of(base, run_id)
        assert before == "RUNNING", before  # killed before the run ended, and not marked FINISHED since
        second = cli_in_process(env, "experiment", "run", str(spec_path))
        assert second.code == 0, second
        [new_run] = re.findall(r"run ([0-9a-f]{32})", second.out)
        after, new_status = status_of(base, run_id), status_of(base, new_run)
    finally:
        stop(server)
    assert (after, new_status) == ("FAILED", "FINISHED")
    assert json.loads(journal.read_text()) == []
    assert spark.table("knowledge.findings").filter(F.col("run_id") == new_run).count() == 1
    record(
        CASE,
        f"exit 1 {failed_after:.0f} s after the kill, {line!r}; run {before} on the restarted server, "
        f"{after} after the next experiment run (its own run {new_status}); no finding from the dead run",
        partial=unfound,
    )


def test_unreachable_server_before_any_run_is_one_line_without_credentials(settings, tmp_path, monkeypatch):
    from lakehouse.errors import EnvironmentProblem
    from ml.tracking import configure

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # ours to set: configure only fills defaults
    port = free_port()  # nothing listens there
    uri = f"http://alice:s3cret@127.0.0.1:{port}"
    home = tmp_path / "home"
    local = dataclasses.replace(settings, home=home, mlflow_tracking_uri=uri)
    with pytest.raises(EnvironmentProblem) as raised:
        configure(local, EXPERIMENT)
    assert str(raised.value) == (
        f"MLflow tracking server http://alice:*********(redacted)@127.0.0.1:{port} is unreachable "
        "(connection refused); start it or point MLFLOW_TRACKING_URI at one that runs"
    )
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"

    # A run journaled against that server stays journaled while the server is away.
    journal = journal_path(local)
    entry = {"run_id": "0" * 32, "tracking_uri": f"http://alice:*********(redacted)@127.0.0.1:{port}"}
    journal.write_text(json.dumps([entry]))
    with pytest.raises(EnvironmentProblem) as raised:
        configure(local, EXPERIMENT)
    assert str(raised.value).endswith(f"run {'0' * 32} of an earlier experiment is still to be marked FAILED")
    assert "s3cret" not in str(raised.value)
    assert json.loads(journal.read_text()) == [entry]
