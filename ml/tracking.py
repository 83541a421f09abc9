"""MLflow set-up and provenance: every run says which Delta versions it saw, validated how, by which code."""

from __future__ import annotations

import json
import os
from importlib import metadata

from lakehouse.settings import Settings, redact

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


def configure(settings: Settings, experiment: str) -> str:
    """Point MLflow at the configured store and return the experiment id (artifacts under LAKEHOUSE_HOME)."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = (
        None if uri.startswith(("http://", "https://")) else (settings.home / "mlflow" / "artifacts").as_uri()
    )
    return mlflow.create_experiment(experiment, artifact_location=location)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def log_inputs(spark, inputs: list[dict]) -> None:
    """Log each input as an MLflow Delta dataset and as the `lakehouse.inputs` tag (table, version, ids).

    MLflow's Delta source drops version 0 from its dict form and hashes the query plan for its digest, so
    the tag, not the dataset entry, is what lineage reads; the dataset entries keep MLflow's UI useful.
    """
    import mlflow

    for item in inputs:
        frame = spark.read.option("versionAsOf", item["version"]).table(item["table_name"])
        dataset = mlflow.data.from_spark(
            frame,
            table_name=item["table_name"],
            version=str(item["version"]),
            name=f"{item['table_name']}@v{item['version']}",
            digest=f"{item['table_name']}@v{item['version']}"[:36],
        )
        mlflow.log_input(dataset, context=item.get("context", "training"))
    mlflow.set_tag("lakehouse.inputs", json.dumps(inputs, sort_keys=True))


def log_environment(spark, code_version: str) -> None:
    import mlflow

    mlflow.set_tag("lakehouse.code_version", code_version)
    mlflow.set_tag("mlflow.source.git.commit", code_version)
    mlflow.log_dict(
        {
            "packages": package_versions(),
            "spark_conf": {k: redact(k, v) for k, v in sorted(spark.sparkContext.getConf().getAll())},
        },
        "environment.json",
    )
