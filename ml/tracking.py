"""MLflow set-up and provenance: every run says which Delta versions it saw, validated how, by which code.

A tracking server can go away while a run is open. `tracked_run` then still tries to mark the run FAILED;
when the server cannot be reached it writes the run id to a small journal
(`$LAKEHOUSE_HOME/mlflow/unclosed-runs.json`), leaves MLflow with no active run and raises one line naming
the server and the run. The next `configure` against that server marks the journaled runs FAILED, so a
crashed experiment never shows as RUNNING (or FINISHED) for good.

MLflow retries a request 7 times with exponential back-off (about four minutes) and waits up to 120 s for
an answer; against a server that is gone that is minutes of silence. `configure` lowers the defaults
(`FAIL_FAST`) so it fails in seconds; setting the variables yourself overrides them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from lakehouse.errors import EnvironmentProblem
from lakehouse.settings import Settings, redact, redact_uri
from lakehouse.spark import session_conf

PACKAGES = (
    "pyspark",
    "delta-spark",
    "great-expectations",
    "mlflow",
    "scikit-learn",
    "numpy",
    "pandas",
    "lakehouse",
)

# MLflow's own variables (mlflow/environment_variables.py). Three retries with a back-off factor of 1 wait
# about 0 + 2 + 4 s (plus up to 1 s jitter each) before a request to a dead server fails, instead of ~4 min.
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

JOURNAL = "unclosed-runs.json"


def journal_path(settings: Settings) -> Path:
    return settings.home / "mlflow" / JOURNAL


def unreachable_cause(exc: BaseException) -> str | None:
    """A short cause ("connection refused") when `exc` comes from not reaching the server, else None.

    MLflow re-raises a failed request as an MlflowException whose context is the `requests` error; the
    connection error itself (or the timeout) is somewhere down that chain.
    """
    import requests

    unreachable = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        ConnectionError,
        TimeoutError,
    )
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, unreachable):
            return _short_cause(exc)
        exc = exc.__cause__ or exc.__context__
    return None


def _short_cause(exc: BaseException) -> str:
    # requests' text is a nest of reprs ending in the socket's own words, and names the URL (which may carry
    # credentials): keep only the socket's words.
    text = str(exc)
    errno = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno[-1].strip().lower()
    if isinstance(exc, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    for words in ("Remote end closed connection without response", "Connection aborted", "Connection reset"):
        if words.lower() in text.lower():
            return words.lower()
    return exc.__class__.__name__


def _unreachable(uri: str, cause: str, what: str, was: bool = False) -> EnvironmentProblem:
    state = "was" if was else "is"
    return EnvironmentProblem(
        f"MLflow tracking server {redact_uri(uri)} {state} unreachable ({cause}); {what}"
    )


@contextlib.contextmanager
def reachable(
    uri: str, what: str = "start it or point MLFLOW_TRACKING_URI at one that runs"
) -> Iterator[None]:
    """Turn a failure to reach the tracking server into one line naming it (outside any run)."""
    try:
        yield
    except EnvironmentProblem:
        raise
    except Exception as exc:
        cause = unreachable_cause(exc)
        if cause is None:
            raise
        raise _unreachable(uri, cause, what) from exc


@contextlib.contextmanager
def _journal(settings: Settings) -> Iterator[list[dict]]:
    """The journal's entries, locked against other processes; what the block leaves in the list is written
    back atomically (temp file + rename), so a crash never leaves half a journal."""
    path = journal_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(JOURNAL + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = json.loads(path.read_text()) if path.exists() else []
        before = list(entries)
        yield entries
        if entries == before:
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{JOURNAL}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(entries, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def unclosed_runs(settings: Settings) -> list[dict]:
    """Runs that could not be ended because their server was away (run_id, tracking_uri, ...)."""
    with _journal(settings) as entries:
        return list(entries)


def _remember(settings: Settings, uri: str, run_id: str, run_name: str, cause: str) -> None:
    with _journal(settings) as entries:
        entries[:] = [e for e in entries if e["run_id"] != run_id]
        entries.append(
            {
                "run_id": run_id,
                "tracking_uri": redact_uri(uri),
                "run_name": run_name,
                "cause": cause,
                "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )


def close_unclosed_runs(settings: Settings) -> list[str]:
    """Mark FAILED the journaled runs of this tracking URI that are still RUNNING, and forget them (and those
    already ended). Entries the server cannot close stay for the next time; returns the runs marked."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus
    from mlflow.exceptions import MlflowException

    uri = settings.mlflow_tracking_uri
    marked, away = [], None
    with _journal(settings) as entries:
        closed = set()
        for entry in [e for e in entries if e["tracking_uri"] == redact_uri(uri)]:
            client = MlflowClient(tracking_uri=uri)
            try:
                if client.get_run(entry["run_id"]).info.status == RunStatus.to_string(RunStatus.RUNNING):
                    client.set_terminated(entry["run_id"], RunStatus.to_string(RunStatus.FAILED))
                    marked.append(entry["run_id"])
                closed.add(entry["run_id"])
            except (MlflowException, OSError) as exc:  # requests' errors are OSErrors
                cause = unreachable_cause(exc)
                if cause is not None:
                    away = _unreachable(
                        uri,
                        cause,
                        f"run {entry['run_id']} of an earlier experiment is still to be marked FAILED",
                    )
                    away.__cause__ = exc
                    break
                # Anything else (the run deleted, no permission) keeps the entry, to be looked at again.
                logging.getLogger(__name__).warning(
                    "cannot mark MLflow run %s FAILED (%s); it stays in %s",
                    entry["run_id"],
                    exc.__class__.__name__,
                    journal_path(settings),
                )
        entries[:] = [e for e in entries if e["run_id"] not in closed]
    if away is not None:
        raise away
    return marked


def configure(settings: Settings, experiment: str) -> str:
    """Point MLflow at the configured store, close runs a vanished server left open, make `experiment` the
    active experiment and return its id (artifacts of local stores under LAKEHOUSE_HOME)."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name, value in FAIL_FAST.items():
        os.environ.setdefault(name, value)
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    with reachable(uri):
        close_unclosed_runs(settings)
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = (
                None
                if uri.startswith(("http://", "https://"))
                else (settings.home / "mlflow" / "artifacts").as_uri()
            )
            experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def tracked_run(settings: Settings, run_name: str, experiment_id: str | None = None) -> Iterator:
    """`mlflow.start_run` that ends the run FINISHED on success and FAILED on any exception — and, when the
    server is gone so the run cannot be ended, journals it (see `close_unclosed_runs`), leaves no active
    run behind and raises one line naming the server and the run."""
    import mlflow
    from mlflow.entities import RunStatus

    uri = settings.mlflow_tracking_uri
    with reachable(uri, "no run was started"):
        run = mlflow.start_run(run_name=run_name, experiment_id=experiment_id)
    run_id = run.info.run_id
    try:
        yield run
    except BaseException as exc:
        ended = _end(settings, uri, run_id, run_name, RunStatus.to_string(RunStatus.FAILED), exc)
        cause = unreachable_cause(exc) if isinstance(exc, Exception) else None
        if cause is None or not ended:
            raise
        # The server was away mid-run but back in time to be told the run failed.
        raise _unreachable(uri, cause, f"run {run_id} was marked FAILED", was=True) from exc
    _end(settings, uri, run_id, run_name, RunStatus.to_string(RunStatus.FINISHED), None)


def _end(
    settings: Settings, uri: str, run_id: str, run_name: str, status: str, failure: BaseException | None
) -> bool:
    """End the active run with `status` (True if it was); if the server cannot be reached, journal the run
    and raise."""
    import mlflow

    try:
        mlflow.end_run(status)
        return True
    except Exception as exc:
        _leave(run_id)
        cause = unreachable_cause(exc)
        if cause is None:
            if failure is not None:
                return False  # the run's own failure is the one to report
            raise
        _remember(settings, uri, run_id, run_name, cause)
        if failure is not None and not isinstance(failure, Exception):
            return False  # KeyboardInterrupt, SystemExit: journaled, and they go on as they are
        what = (
            f"run {run_id} could not be finished and is recorded to be marked FAILED when the server is back"
        )
        if failure is not None and unreachable_cause(failure) is None:
            from lakehouse.errors import describe_error

            what += f"; it had failed: {describe_error(failure)}"
        raise _unreachable(uri, cause, what) from (failure or exc)


def _leave(run_id: str) -> None:
    """No active run is left behind, so the next `start_run` in this process is not refused or nested."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        # MLflow 3's end_run pops its run stack before it calls the server (fluent.py), so this is a guard
        # for a version that does not.
        from mlflow.tracking import fluent

        fluent._active_run_stack.get().pop()
        os.environ.pop("MLFLOW_RUN_ID", None)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def log_inputs(spark, inputs: list[dict]) -> None:
    """Log each input as an MLflow dataset whose source is the Delta table at that version, and as the
    `lakehouse.inputs` tag (table, version, ids). The datasets carry the table's name, version and schema,
    read from the Delta log with delta-rs: logging them runs no Spark job.

    The tag, not the dataset entry, is what lineage reads; the dataset entries keep MLflow's UI useful.
    """
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    from lakehouse.storage import open_table

    for item in inputs:
        name, version = item["table_name"], int(item["version"])
        delta = open_table(spark, name, version)
        source = DeltaDatasetSource(delta_table_name=name, delta_table_version=version)
        dataset = MetaDataset(
            source, name=f"{name}@v{version}", digest=f"{name}@v{version}"[:36], schema=_schema(delta)
        )
        mlflow.log_input(dataset, context=item.get("context", "training"))
    mlflow.set_tag("lakehouse.inputs", json.dumps(inputs, sort_keys=True))


def _schema(delta):
    """The MLflow schema of a Delta table's columns (nested columns described as strings)."""
    from mlflow.types.schema import ColSpec, DataType, Schema

    kinds = {"string": DataType.string, "long": DataType.long, "integer": DataType.integer,
             "double": DataType.double, "float": DataType.float, "boolean": DataType.boolean,
             "timestamp": DataType.datetime, "timestamp_ntz": DataType.datetime, "binary": DataType.binary,
             "short": DataType.integer, "byte": DataType.integer, "date": DataType.datetime}  # fmt: skip
    columns = []
    for field in delta.schema().fields:
        kind = getattr(field.type, "type", None)
        columns.append(ColSpec(kinds.get(kind, DataType.string), field.name, required=not field.nullable))
    return Schema(columns)


def log_environment(spark, code_version: str) -> None:
    import mlflow

    from lakehouse.runs import environment

    env = environment()
    mlflow.set_tag("lakehouse.code_version", code_version)
    mlflow.set_tag("mlflow.source.git.commit", code_version)
    mlflow.set_tag("lakehouse.version", env.lakehouse_version)
    mlflow.set_tag("lakehouse.lock_sha256", env.lock_sha256)
    mlflow.set_tag("lakehouse.lock_drift", str(len(env.lock_drift)))
    mlflow.log_dict(
        {
            "lock_drift": list(env.lock_drift),
            "packages": package_versions(),
            "spark_conf": {k: redact(k, v) for k, v in sorted(session_conf(spark).items())},
        },
        "environment.json",
    )
