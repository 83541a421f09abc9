"""Reference experiment (b): overall survival from clinical + mutation features, on a generated TCGA cohort
landed through the real ingest, validated, and tracked in a real local MLflow store."""

import dataclasses
import gzip
import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_status
from pyspark.sql import functions as F

from lakehouse.pipeline import SPECS
from ml.experiment import ExperimentSpec, run_experiment
from ml.stats import concordance_index, outcome
from ml.survival import stage_number, survival_features, survival_target, top_genes

SPEC = SPECS / "tcga_survival.yaml"
RELEASE = "survival-test"
CASES = 300


def test_harrells_c_counts_comparable_pairs_and_halves_ties():
    # Comparable pairs: the earlier time is an event. (t=1,e) vs 2 and 3, (t=2,e) vs 3; t=3 censored.
    y = survival_target([1, 1, 0], [1, 2, 3])
    assert concordance_index(y, np.array([3.0, 2.0, 1.0])) == 1.0
    assert concordance_index(y, np.array([1.0, 2.0, 3.0])) == 0.0
    assert concordance_index(y, np.array([2.0, 2.0, 1.0])) == pytest.approx(2.5 / 3)
    assert np.isnan(concordance_index(survival_target([0, 0], [1, 2]), np.array([1.0, 2.0])))


def test_features_are_fitted_on_training_levels_and_genes():
    assert [stage_number(s) for s in ("Stage IIIA", "Stage IV", "stage i", "Stage X", None, "Stage 0")] == [
        3.0,
        4.0,
        1.0,
        pytest.approx(np.nan, nan_ok=True),
        pytest.approx(np.nan, nan_ok=True),
        0.0,
    ]
    clinical = pd.DataFrame(
        {"age": ["61", None, "40"], "sex": ["male", "female", "other"], "stage": ["Stage IIB", None, "x"]},
        index=["C1", "C2", "C3"],
    )
    mutated = pd.Series([frozenset({"TP53", "KRAS"}), frozenset({"TP53"}), frozenset()], index=clinical.index)
    assert top_genes(mutated, 1) == ["TP53"] and top_genes(mutated, 5) == ["TP53", "KRAS"]
    x, groups = survival_features(
        clinical,
        mutated,
        {"age": "numeric", "sex": "categorical", "stage": "stage"},
        ["TP53", "KRAS"],
        {"sex": ["female", "male"]},  # "other" was not seen in training: all zeros
    )
    assert groups == {
        "clinical": ["age", "sex=female", "sex=male", "stage"],
        "mutations": ["mut_TP53", "mut_KRAS"],
    }
    assert x.loc["C1"].tolist() == [61.0, 0.0, 1.0, 2.0, 1.0, 1.0]
    assert np.isnan(x.loc["C2", "age"]) and np.isnan(x.loc["C2", "stage"])
    assert x.loc["C3"].fillna(-1).tolist() == [40.0, 0.0, 0.0, -1.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def survival_cohort(spark, settings, tmp_path_factory):
    """300 generated cases (TP53 raises the hazard ×2.2, KRAS ×1.5), clinical and MAFs landed and validated."""
    from lakehouse.sources.tcga import ingest_tcga
    from lakehouse.synth.tcga import generate_tcga

    made = generate_tcga(tmp_path_factory.mktemp("survival") / "cohort", cases=CASES, genes=100, seed=11)
    # The per-project MAFs as one cohort MAF (one header): one upsert instead of three, same rows.
    mafs = sorted(made.out.glob("*.somatic.maf.gz"))
    parts = [gzip.decompress(p.read_bytes()).decode().splitlines(keepends=True) for p in mafs]
    comments = [line for line in parts[0] if line.startswith("#")]
    columns = next(line for line in parts[0] if not line.startswith("#"))
    rows = [line for part in parts for line in part if not line.startswith("#") and line != columns]
    assert len(rows) == made.mutations
    cohort_maf = made.out.parent / "cohort.somatic.maf.gz"
    cohort_maf.write_bytes(gzip.compress("".join(comments + [columns] + rows).encode()))
    landed = ingest_tcga(spark, settings, [made.out / "clinical.tsv", cohort_maf], release=RELEASE)
    assert run_status(spark, landed.run_id) == "succeeded" and landed.quarantined == 0
    truth = json.loads((made.out / ".synthetic_truth.json").read_text())["cases"]
    mlflow_dir = tmp_path_factory.mktemp("mlflow-survival")
    ml = dataclasses.replace(settings, mlflow_tracking_uri=f"sqlite:///{mlflow_dir}/mlflow.db")
    return ml, truth


def test_survival_experiment_is_tracked_with_versions_ci_and_finding(spark, survival_cohort):
    import mlflow
    from mlflow import MlflowClient

    from ml.experiment import findings

    ml_settings, truth = survival_cohort
    spec = ExperimentSpec.load(SPEC)
    assert (spec.task, spec.metric, spec.model["type"], spec.baseline["features"]) == (
        "survival",
        "concordance_index",
        "cox_ph",
        ["clinical"],
    )
    # Only this test's cohort (the session warehouse may hold other TCGA cases).
    spec = dataclasses.replace(
        spec,
        data={**spec.data, "where": f"source_release = '{RELEASE}'"},
        model_name="lakehouse-test-survival",
    )
    result = run_experiment(spark, ml_settings, spec)
    stats = result.stats

    # Harrell's C of both models on held-out patients: better than chance, short of perfect.
    assert 0.55 < stats["model_value"] < 0.85 and 0.5 < stats["baseline_value"] < 0.85, stats
    assert stats["model_ci"][0] <= stats["model_value"] <= stats["model_ci"][1]
    assert stats["model_ci"][1] - stats["model_ci"][0] < 0.25
    assert stats["effect"] == pytest.approx(stats["model_value"] - stats["baseline_value"])
    assert result.outcome == outcome(stats["effect_ci"], 0.01)

    client = MlflowClient()
    run = client.get_run(result.run_id)
    metrics, params = run.data.metrics, run.data.params
    assert metrics["concordance_index"] == pytest.approx(stats["model_value"])
    assert metrics["baseline_concordance_index"] == pytest.approx(stats["baseline_value"])
    assert (metrics["concordance_index_ci_low"], metrics["concordance_index_ci_high"]) == pytest.approx(
        stats["model_ci"]
    )
    assert (
        metrics["baseline_concordance_index_ci_low"],
        metrics["baseline_concordance_index_ci_high"],
    ) == pytest.approx(stats["baseline_ci"])
    assert (metrics["effect_ci_low"], metrics["effect_ci_high"]) == pytest.approx(stats["effect_ci"])
    assert run.data.tags["lakehouse.outcome"] == result.outcome

    # Every generated case is in the cohort, split by patient; the events are the planted deaths.
    assert int(params["n_train"]) + int(params["n_test"]) == CASES
    dead = sum(c["dead"] for c in truth)
    assert int(params["n_events_train"]) + int(params["n_events_test"]) == dead
    heldout = set(mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/heldout_groups.json")["case_barcode"])
    assert len(heldout) == int(params["n_test"]) and heldout <= {c["case"] for c in truth}
    # The drivers that change the hazard are the most mutated genes; the fitted Cox model finds TP53 harmful.
    genes = params["top_genes"].split(",")
    assert {"TP53", "KRAS"} <= set(genes) and len(genes) == 10
    ratios = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/hazard_ratios.json")
    assert ratios["mut_TP53"] > 1.2 and ratios["age_at_index_years"] > 1.0

    # The run names both table versions it read, each with its passed validation and readiness score.
    current = {
        table: spark.sql(f"DESCRIBE HISTORY {table}").agg(F.max("version")).first()[0]
        for table in ("silver.tcga_clinical", "silver.tcga_mutations")
    }
    inputs = json.loads(run.data.tags["lakehouse.inputs"])
    assert [(i["table_name"], i["version"]) for i in inputs] == list(current.items())
    assert all(i["validation_id"] and 0 < i["readiness"] <= 1 for i in inputs)
    assert run.data.tags["lakehouse.validation_ids"] == ",".join(i["validation_id"] for i in inputs)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == [f"{t}@v{v}" for t, v in current.items()]

    # The registered model has a signature over clinical + mutation columns and scores its input example.
    champion = client.get_model_version_by_alias("lakehouse-test-survival", "champion")
    assert champion.run_id == result.run_id and str(champion.version) == result.model_version
    info = mlflow.models.get_model_info("models:/lakehouse-test-survival@champion")
    columns = info.signature.inputs.input_names()
    assert {"age_at_index_years", "tumor_stage", "gender=female", "mut_TP53"} <= set(columns)
    local = mlflow.artifacts.download_artifacts("models:/lakehouse-test-survival@champion")
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == columns
    risk = mlflow.pyfunc.load_model("models:/lakehouse-test-survival@champion").predict(example)
    assert len(risk) == 2 and np.isfinite(risk).all()

    # One finding, with both data versions and the effect's CI.
    row = findings(spark).filter(F.col("run_id") == result.run_id).first()
    assert row.experiment == "tcga-survival" and row.metric == "concordance_index"
    assert row.outcome == result.outcome and row.model_version == result.model_version
    assert [(d.table_name, d.version) for d in row.data_versions] == list(current.items())
    assert (row.effect_ci_low, row.effect_ci_high) == pytest.approx(stats["effect_ci"])
    print(
        f"tcga-survival: C {stats['model_value']:.3f} (95% CI {stats['model_ci'][0]:.3f}-"
        f"{stats['model_ci'][1]:.3f}) vs clinical-only {stats['baseline_value']:.3f} (95% CI "
        f"{stats['baseline_ci'][0]:.3f}-{stats['baseline_ci'][1]:.3f}); effect "
        f"{stats['effect']:+.3f} (95% CI {stats['effect_ci'][0]:+.3f} to {stats['effect_ci'][1]:+.3f}): "
        f"{result.outcome}"
    )
