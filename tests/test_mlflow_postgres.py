"""infra/mlflow-postgres.sh: a real MLflow server on a real PostgreSQL (Debian's), on 127.0.0.1, started,
used over HTTP with the MLflow client, read back, and stopped by the test."""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "infra" / "mlflow-postgres.sh"


def _why_no_postgres() -> str | None:
    """None when the script can run PostgreSQL here (installed, or installable with apt-get as root)."""
    if glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb"):
        return None
    if os.geteuid() == 0 and shutil.which("apt-get"):
        return None
    return (
        "PostgreSQL binaries are absent and cannot be installed here (not root): apt-get install postgresql"
    )


def _state(home: Path) -> dict[str, str]:
    lines = (home / "mlflow-postgres" / "state.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def _run(
    args: list[str], env: dict[str, str] | None = None, timeout: int = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, check=False, capture_output=True, text=True, timeout=timeout)


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_mlflow_server_on_postgres_logs_and_reads_back_a_run_over_http():
    reason = _why_no_postgres()
    if reason:
        pytest.skip(reason)
    # As root the cluster runs as the `postgres` OS user, which must traverse LAKEHOUSE_HOME; pytest's own
    # temporary root is private (0700), so this home is made beside it, traversable but not listable.
    home = Path(tempfile.mkdtemp(prefix="lh-pg-"))
    home.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LAKEHOUSE_", "PG"))}
    env.update(LAKEHOUSE_HOME=str(home), PYTHON=sys.executable, MLFLOW_DISABLE_TELEMETRY="true")
    try:
        _start_use_and_stop(home, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _start_use_and_stop(home: Path, env: dict[str, str]) -> None:
    from mlflow import MlflowClient

    started = _run([str(SCRIPT), "start"], env=env, timeout=600)
    try:
        assert started.returncode == 0, started.stderr
        uri = started.stdout.strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", uri), started.stdout
        state = _state(home)
        assert uri.endswith(f":{state['MLFLOW_PORT']}")
        assert f"postgresql://mlflow@127.0.0.1:{state['PG_PORT']}/mlflow" in started.stderr

        client = MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("postgres-backed")
        run = client.create_run(experiment, tags={"lakehouse.outcome": "supported"})
        client.log_param(run.info.run_id, "table", "silver.tcga_clinical")
        client.log_metric(run.info.run_id, "concordance_index", 0.66)
        client.log_dict(run.info.run_id, {"table_name": "silver.tcga_clinical", "version": 0}, "inputs.json")
        client.set_terminated(run.info.run_id)

        back = MlflowClient(tracking_uri=uri).get_run(run.info.run_id)
        assert back.data.metrics == {"concordance_index": 0.66}
        assert back.data.params == {"table": "silver.tcga_clinical"}
        assert back.data.tags["lakehouse.outcome"] == "supported" and back.info.status == "FINISHED"
        # Artifacts go through the server into its store under LAKEHOUSE_HOME.
        stored = list((home / "mlflow-postgres" / "artifacts").rglob("inputs.json"))
        assert [json.loads(p.read_text()) for p in stored] == [
            {"table_name": "silver.tcga_clinical", "version": 0}
        ]

        # The run is in PostgreSQL, readable with the role's password from the 0600 pgpass file only.
        pgpass = home / "mlflow-postgres" / "pgpass"
        assert pgpass.stat().st_mode & 0o777 == 0o600
        psql = [
            f"{state['PG_BINDIR_USED']}/psql",
            "-X",
            "-w",
            "-tA",
            "-h",
            "127.0.0.1",
            "-p",
            state["PG_PORT"],
            "-U",
            "mlflow",
            "-d",
            "mlflow",
            "-c",
        ]
        query = (
            f"SELECT value FROM metrics WHERE run_uuid = '{run.info.run_id}' AND key = 'concordance_index'"
        )
        with_password = _run(
            [*psql, query],
            env={**env, "PGPASSFILE": str(pgpass)},
            timeout=60,
        )
        assert with_password.returncode == 0, with_password.stderr
        assert float(with_password.stdout.strip()) == 0.66
        listen = _run(
            [*psql, "SHOW listen_addresses"],
            env={**env, "PGPASSFILE": str(pgpass)},
            timeout=60,
        )
        assert listen.stdout.strip() == "127.0.0.1"
        without = _run(
            [*psql, "SELECT 1"],
            env={**env, "PGPASSFILE": os.devnull},
            timeout=60,
        )
        assert without.returncode != 0 and "no password supplied" in without.stderr

        # The password is on no command line, in no log and in nothing the script printed.
        password = pgpass.read_text().strip().rsplit(":", 1)[1]
        assert len(password) >= 32
        commands = _run(["ps", "-eo", "args"]).stdout
        logs = [
            home / "mlflow-postgres" / "mlflow.log",
            Path(state["PGDATA_DIR"]) / "postgres.log",
            home / "mlflow-postgres" / "state.env",
        ]
        for text in (started.stdout, started.stderr, commands, *(p.read_text() for p in logs)):
            assert password not in text
    finally:
        stopped = _run([str(SCRIPT), "stop"], env=env, timeout=180)
    assert stopped.returncode == 0, stopped.stderr
    assert _refused(int(state["MLFLOW_PORT"])) and _refused(int(state["PG_PORT"]))
    with pytest.raises(ProcessLookupError):
        os.kill(int(state["MLFLOW_PID"]), 0)
    assert not (home / "mlflow-postgres" / "state.env").exists()
