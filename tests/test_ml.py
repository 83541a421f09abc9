"""The ML loop on real Delta versions with real MLflow stores (local SQLite, and a server over HTTP)."""

import dataclasses
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import yaml
from pyspark.sql import functions as F

from lakehouse.quality.validate import validate_table
from lakehouse.runs import LOCK
from lakehouse.schemas import load_declarations
from ml.experiment import ExperimentSpec, findings, run_experiment
from ml.lineage import lineage

TABLE = "gold.ml_expression"
DECLARATION = {
    "name": TABLE,
    "description": "expression of generated patients, long form",
    "licence": "CC0-1.0",
    "source": "test generator",
    "primary_key": ["sample_id", "gene_id"],
    "provenance": False,
    "columns": [
        {"name": "sample_id", "type": "string", "nullable": False, "description": "sample"},
        {"name": "case_id", "type": "string", "nullable": False, "description": "patient"},
        {"name": "subtype", "type": "string", "description": "molecular subtype"},
        {
            "name": "gene_id",
            "type": "string",
            "nullable": False,
            "description": "gene",
            "identifier": "ensembl.gene",
        },
        {"name": "tpm", "type": "double", "description": "expression", "unit": "TPM"},
    ],
    "matrix": {"obs": "sample_id", "var": "gene_id", "value": "tpm", "obs_columns": ["case_id", "subtype"]},
}


def cohort(patients: int, first: int = 0, seed: int = 1) -> list[tuple]:
    """Two samples per patient; subtype B raises genes 0-4 (a learnable, planted signal)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(first, first + patients):
        subtype = "A" if p % 2 else "B"
        for s in range(2):
            for g in range(30):
                level = 40.0 if subtype == "B" and g < 5 else 10.0
                rows.append(
                    (f"P{p:03d}-{s}", f"P{p:03d}", subtype, f"ENSG{g:011d}", float(rng.gamma(4.0, level / 4)))
                )
    return rows


@pytest.fixture(scope="module")
def ml_settings(spark, settings, tmp_path_factory):
    """The session warehouse, with the test table declared, and a local MLflow store of its own."""
    schemas = tmp_path_factory.mktemp("schemas")
    shutil.copytree(settings.schemas_dir, schemas, dirs_exist_ok=True)
    (schemas / "gold").mkdir(exist_ok=True)
    (schemas / "gold" / "ml_expression.yaml").write_text(yaml.safe_dump(DECLARATION))
    mlflow_dir = tmp_path_factory.mktemp("mlflow")
    ml = dataclasses.replace(
        settings, schemas_dir=schemas, mlflow_tracking_uri=f"sqlite:///{mlflow_dir}/mlflow.db"
    )
    decl = load_declarations(schemas)[TABLE]
    schema = "sample_id string, case_id string, subtype string, gene_id string, tpm double"
    # The table's first commit holds the data: a model trained on it must trace back to version 0.
    spark.createDataFrame(cohort(40), schema).writeTo(TABLE).using("delta").create()
    assert spark.sql(f"DESCRIBE HISTORY {TABLE}").first().version == 0
    assert validate_table(spark, ml, TABLE, 0, decl=decl).success
    return ml


def spec(**overrides) -> ExperimentSpec:
    base = {
        "name": "subtype",
        "hypothesis": "Expression of the planted programme predicts the subtype",
        "table": TABLE,
        "label": "subtype",
        "group": "case_id",
        "version": "latest_validated",
        "model": {"type": "logistic_regression", "C": 0.5},
        "baseline": {"type": "majority"},
        "metric": "balanced_accuracy",
        "min_effect": 0.2,
        "model_name": "lakehouse-test-subtype",
    }
    return ExperimentSpec(**{**base, **overrides})


def test_supported_hypothesis_is_registered_and_traced_to_version_0(spark, ml_settings):
    import mlflow

    result = run_experiment(spark, ml_settings, spec())
    assert result.outcome == "supported", result.stats
    assert result.promoted and result.model_version == "1"
    chain = lineage(spark, "lakehouse-test-subtype@champion")
    [source] = chain["inputs"]
    assert (source["table_name"], source["version"]) == (TABLE, 0)
    assert source["validation_success"] and source["expectations"] > 5 and not source["failed_expectations"]
    assert 0 < source["readiness"] <= 1
    assert chain["run_id"] == result.run_id and chain["code_version"]
    run = mlflow.get_run(result.run_id)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == [f"{TABLE}@v0"]
    assert run.data.tags["lakehouse.outcome"] == "supported"
    # the run names the package version and the dependency lock it ran with
    assert run.data.tags["lakehouse.version"] == version("lakehouse")
    assert run.data.tags["lakehouse.lock_sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert {"effect_ci_low", "effect_ci_high", "balanced_accuracy_ci_low"} <= set(run.data.metrics)
    # the model's requirements are the packages it needs, pinned to the versions that trained it

    required = mlflow.pyfunc.get_model_dependencies("models:/lakehouse-test-subtype@champion")
    pinned = Path(required).read_text().split()
    assert f"scikit-learn=={version('scikit-learn')}" in pinned and f"skops=={version('skops')}" in pinned
    assert not {line.split("==")[0] for line in pinned} & {"pytest", "rich", "dask"}


def test_refuted_hypothesis_is_kept_and_listed_as_negative(spark, ml_settings, monkeypatch):
    from click.testing import CliRunner

    from lakehouse.cli import cli

    refuted = run_experiment(
        spark,
        ml_settings,
        spec(
            name="subtype-impossible",
            hypothesis="The model beats the majority class by 0.9 balanced accuracy",
            min_effect=0.9,
            register=False,
        ),
    )
    assert refuted.outcome == "refuted" and refuted.stats["effect_ci"][1] < 0.9
    row = findings(spark, negative=True).filter(F.col("run_id") == refuted.run_id).first()
    assert row.outcome == "refuted" and row.data_versions[0].version == 0 and row.min_effect == 0.9
    for key, value in {
        "LAKEHOUSE_HOME": str(ml_settings.home),
        "LAKEHOUSE_SCHEMAS": str(ml_settings.schemas_dir),
        "MLFLOW_TRACKING_URI": ml_settings.mlflow_tracking_uri,
    }.items():
        monkeypatch.setenv(key, value)
    listed = CliRunner().invoke(cli, ["results", "--negative", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert refuted.run_id in {f["run_id"] for f in json.loads(listed.stdout)}
    assert all(f["outcome"] != "supported" for f in json.loads(listed.stdout))


def test_retraining_on_a_new_version_records_it_and_old_runs_keep_theirs(spark, ml_settings):
    from mlflow import MlflowClient

    first = run_experiment(
        spark, ml_settings, spec(name="subtype-retrain", model_name="lakehouse-test-retrain")
    )
    spark.createDataFrame(cohort(20, first=40, seed=2), spark.table(TABLE).schema).writeTo(TABLE).append()
    decl = load_declarations(ml_settings.schemas_dir)[TABLE]
    assert validate_table(spark, ml_settings, TABLE, 1, decl=decl).success
    second = run_experiment(
        spark, ml_settings, spec(name="subtype-retrain", model_name="lakehouse-test-retrain")
    )
    assert [d["version"] for d in first.data_versions] == [0]
    assert [d["version"] for d in second.data_versions] == [1]
    client = MlflowClient()
    assert json.loads(client.get_run(first.run_id).data.tags["lakehouse.inputs"])[0]["version"] == 0
    assert json.loads(client.get_run(second.run_id).data.tags["lakehouse.inputs"])[0]["version"] == 1
    challenger = client.get_model_version_by_alias("lakehouse-test-retrain", "challenger")
    assert str(challenger.version) == second.model_version
    champion = client.get_model_version_by_alias("lakehouse-test-retrain", "champion")
    assert str(champion.version) == (second.model_version if second.promoted else first.model_version)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runs_are_logged_over_http_to_a_real_mlflow_server(spark, ml_settings, tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        remote = dataclasses.replace(ml_settings, mlflow_tracking_uri=base)
        result = run_experiment(spark, remote, spec(name="subtype-http", model_name="lakehouse-test-http"))
        with urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/runs/get?run_id={result.run_id}", timeout=10
        ) as reply:
            run = json.load(reply)["run"]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["lakehouse.outcome"] == result.outcome
        assert json.loads(tags["lakehouse.inputs"])[0]["table_name"] == TABLE
        with urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/registered-models/alias?name=lakehouse-test-http&alias=champion",
            timeout=10,
        ) as reply:
            assert json.load(reply)["model_version"]["run_id"] == result.run_id
    finally:
        import os

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode is not None
