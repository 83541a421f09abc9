"""From a registered model version back to the exact data it was trained on."""

from __future__ import annotations

import json

from lakehouse.errors import LakehouseError


def lineage(spark, model_ref: str) -> dict:
    """`NAME@ALIAS` (or `NAME/VERSION`) → run, code commit, and each input table version with its
    validation results and readiness score."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from pyspark.sql import functions as F

    client = MlflowClient()
    try:
        if "@" in model_ref:
            name, alias = model_ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = model_ref.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (MlflowException, ValueError) as exc:
        raise LakehouseError(
            f"no registered model version {model_ref!r}: {str(exc).splitlines()[0]}"
        ) from exc
    run = client.get_run(version.run_id)
    inputs = json.loads(run.data.tags.get("lakehouse.inputs", "[]"))
    tables = []
    for item in inputs:
        results = (
            spark.table("quality.validation_results")
            .filter(F.col("validation_id") == item["validation_id"])
            .select("expectation_id", "success", "unexpected_count")
            .collect()
        )
        tables.append(
            {
                **item,
                "validation_success": bool(results) and all(r.success for r in results),
                "expectations": len(results),
                "failed_expectations": sorted(r.expectation_id for r in results if not r.success),
                "delta_time_travel": f"SELECT * FROM {item['table_name']} VERSION AS OF {item['version']}",
            }
        )
    return {
        "model": version.name,
        "version": version.version,
        "run_id": version.run_id,
        "code_version": run.data.tags.get("lakehouse.code_version"),
        "hypothesis": run.data.tags.get("lakehouse.hypothesis"),
        "outcome": run.data.tags.get("lakehouse.outcome"),
        "inputs": tables,
    }
