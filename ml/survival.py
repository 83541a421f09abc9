"""Survival experiments: overall survival of TCGA cases from clinical and somatic-mutation features.

The data part of a survival spec names the clinical table (one row per case: the cohort, the outcome and
the clinical features) and the mutation table, each pinned to a version or "latest_validated"::

    data:
      table: silver.tcga_clinical
      version: latest_validated
      group: case_barcode            # the held-out split is by patient
      time: overall_survival_days
      event: death_event
      clinical: {age_at_index_years: numeric, gender: categorical, tumor_stage: stage}
      mutations: {table: silver.tcga_mutations, version: latest_validated, top_genes: 10, exclude: [Silent]}
      where: "project_id != 'TCGA-LAML'"   # optional cohort filter (SQL on the clinical table)

The cohort is the cases with a known time and event that appear in the mutation table version (a case
absent from every MAF was not sequenced: its genes are unknown, not wild-type). Mutation features are
0/1 flags for the `top_genes` genes mutated in the most *training* cases (variant classes in `exclude`
left out), so the held-out patients do not choose the features. Models: Cox proportional hazards
(`cox_ph`, ridge-penalised) and gradient-boosted Cox (`gradient_boosted`), from scikit-survival; `features`
in a model's config picks the column groups it sees (`clinical`, `mutations`), so a clinical-only baseline
and a clinical + mutation model are fitted on the same patients and compared on the same held-out ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lakehouse.errors import ConfigError

SURVIVAL_MODELS = ("cox_ph", "gradient_boosted")
ENCODINGS = ("numeric", "categorical", "stage")
# skops refuses to load types it was not told to trust; these are the ones a fitted model holds.
SKOPS_TRUSTED = [
    "sksurv.functions.StepFunction",
    "sksurv.linear_model.coxph.BreslowEstimator",
    "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
    "sksurv.ensemble.boosting.GradientBoostingSurvivalAnalysis",
    "sksurv.ensemble.survival_loss.CoxPH",
    "sklearn.tree._tree.Tree",
]
_STAGE = re.compile(r"^\s*stage\s+(0|iv|iii|ii|i)", re.IGNORECASE)
_STAGE_NUMBER = {"0": 0.0, "i": 1.0, "ii": 2.0, "iii": 3.0, "iv": 4.0}


@dataclass
class SurvivalData:
    """One row per case of the cohort: clinical columns, outcome, and the genes each case has mutated."""

    clinical: pd.DataFrame  # index: case; columns: the spec's clinical columns
    time: np.ndarray
    event: np.ndarray
    mutated: pd.Series  # index: case; value: frozenset of gene symbols (non-excluded classes)
    data_versions: list[dict]

    @property
    def y(self) -> np.ndarray:
        return survival_target(self.event, self.time)


def survival_target(event, time) -> np.ndarray:
    """The structured (event, time) array scikit-survival and ml.stats.concordance_index take."""
    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    return y


def stage_number(stage: str | None) -> float:
    """AJCC stage as 0–4 ("Stage IIIA" → 3); NaN when absent or not staged ("Stage X", "Not Reported")."""
    found = _STAGE.match(stage) if isinstance(stage, str) else None
    return _STAGE_NUMBER[found.group(1).lower()] if found else float("nan")


def options_of(data: dict) -> dict:
    """Check the survival part of a spec's `data` and fill its defaults."""
    missing = [k for k in ("time", "event", "clinical", "mutations") if k not in data]
    if missing:
        raise ConfigError(f"a survival spec's data needs {missing} (see ml/survival.py)")
    clinical = data["clinical"]
    if isinstance(clinical, list):
        clinical = {column: "numeric" for column in clinical}
    unknown = {c: e for c, e in clinical.items() if e not in ENCODINGS}
    if unknown:
        raise ConfigError(f"unknown clinical encodings {unknown}; known: {list(ENCODINGS)}")
    mutations = {"version": "latest_validated", "top_genes": 10, "exclude": [], **data["mutations"]}
    if "table" not in mutations:
        raise ConfigError("data.mutations needs a table (e.g. silver.tcga_mutations)")
    return {
        "time": data["time"],
        "event": data["event"],
        "clinical": clinical,
        "mutations": mutations,
        "where": data.get("where"),
    }


def load_survival(spark, settings, spec) -> SurvivalData:
    """The cohort at the pinned (validated) versions of the clinical and the mutation tables."""
    from pyspark.sql import functions as F

    from ml.experiment import readiness_of, resolve_version

    options = options_of(spec.data)
    mutations = options["mutations"]
    versions = []
    for table, pinned in ((spec.table, spec.version), (mutations["table"], mutations["version"])):
        version, validation_id = resolve_version(spark, settings, table, pinned)
        versions.append(
            {
                "table_name": table,
                "version": version,
                "validation_id": validation_id,
                "readiness": readiness_of(spark, settings, table, version),
            }
        )
    case, time, event = spec.group, options["time"], options["event"]
    clinical = spark.read.option("versionAsOf", versions[0]["version"]).table(spec.table)
    if options["where"]:
        clinical = clinical.filter(options["where"])
    clinical = clinical.filter(F.col(time).isNotNull() & (F.col(time) >= 0) & F.col(event).isNotNull())
    variants = spark.read.option("versionAsOf", versions[1]["version"]).table(mutations["table"])
    sequenced = variants.select(case).distinct()
    genes = (
        variants.filter(~F.col("variant_classification").isin(*mutations["exclude"]))
        .filter(F.col("hugo_symbol").isNotNull())
        .groupBy(case)
        .agg(F.array_sort(F.collect_set("hugo_symbol")).alias("genes"))
    )
    cohort = (
        clinical.join(sequenced, on=case, how="inner")
        .join(genes, on=case, how="left")
        .select(case, time, event, "genes", *options["clinical"])
        .orderBy(case)
        .toPandas()
        .set_index(case)
    )
    if cohort.empty:
        raise ConfigError(
            f"no case of {spec.table}@v{versions[0]['version']} has a survival time, an event and rows in "
            f"{mutations['table']}@v{versions[1]['version']}"
            + (f" (where {options['where']})" if options["where"] else "")
        )
    mutated = cohort["genes"].map(lambda g: frozenset() if g is None else frozenset(g))
    return SurvivalData(
        clinical=cohort[list(options["clinical"])],
        time=cohort[time].to_numpy(dtype=float),
        event=cohort[event].to_numpy(dtype=int).astype(bool),
        mutated=mutated,
        data_versions=versions,
    )


def top_genes(mutated: pd.Series, n: int) -> list[str]:
    """The n genes mutated in the most cases (ties by symbol, so the choice is reproducible)."""
    counts = pd.Series([g for genes in mutated for g in genes], dtype=object).value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [gene for gene, _ in ranked[:n]]


def survival_features(
    clinical: pd.DataFrame,
    mutated: pd.Series,
    encodings: dict[str, str],
    genes: list[str],
    categories: dict[str, list[str]],
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The numeric feature matrix (missing values stay NaN, the model imputes) and its column groups.

    `categories` are the levels seen in training, one 0/1 column each; an unseen level is all zeros.
    """
    columns: dict[str, pd.Series] = {}
    clinical_columns = []
    for column, encoding in encodings.items():
        values = clinical[column]
        if encoding == "numeric":
            columns[column] = pd.to_numeric(values, errors="coerce").astype(float)
            clinical_columns.append(column)
        elif encoding == "stage":
            columns[column] = values.map(stage_number).astype(float)
            clinical_columns.append(column)
        else:
            for level in categories[column]:
                name = f"{column}={level}"
                columns[name] = (values == level).astype(float)
                clinical_columns.append(name)
    mutation_columns = [f"mut_{gene}" for gene in genes]
    for gene, name in zip(genes, mutation_columns, strict=True):
        columns[name] = mutated.map(lambda found, gene=gene: float(gene in found))
    frame = pd.DataFrame(columns, index=clinical.index)
    return frame, {"clinical": clinical_columns, "mutations": mutation_columns}


def prepare(data: SurvivalData, spec, train: np.ndarray) -> tuple[pd.DataFrame, dict[str, list[str]], dict]:
    """Features fitted on the training cases only: category levels and the most-mutated genes."""
    options = options_of(spec.data)
    encodings = options["clinical"]
    train_clinical = data.clinical.iloc[train]
    categories = {
        column: sorted(str(v) for v in train_clinical[column].dropna().unique())
        for column, encoding in encodings.items()
        if encoding == "categorical"
    }
    genes = top_genes(data.mutated.iloc[train], int(options["mutations"]["top_genes"]))
    x, groups = survival_features(data.clinical, data.mutated, encodings, genes, categories)
    params = {
        "time": options["time"],
        "event": options["event"],
        "where": options["where"] or "",
        "mutations_table": options["mutations"]["table"],
        "mutations_table_version": data.data_versions[1]["version"],
        "mutations_exclude": ",".join(options["mutations"]["exclude"]),
        "top_genes": ",".join(genes),
        "n_events_train": int(data.event[train].sum()),
    }
    return x, groups, params


def build_survival_model(config: dict, seed: int):
    """A scikit-learn pipeline ending in a scikit-survival estimator; `predict` gives a risk score."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    kind = config.get("type")
    impute = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    if kind == "cox_ph":
        return make_pipeline(
            impute, StandardScaler(), CoxPHSurvivalAnalysis(alpha=float(config.get("alpha", 1.0)))
        )
    if kind == "gradient_boosted":
        return make_pipeline(
            impute,
            GradientBoostingSurvivalAnalysis(
                n_estimators=int(config.get("n_estimators", 100)),
                learning_rate=float(config.get("learning_rate", 0.1)),
                max_depth=int(config.get("max_depth", 2)),
                subsample=float(config.get("subsample", 0.8)),
                random_state=seed,
            ),
        )
    raise ConfigError(f"unknown survival model type {kind!r}: one of {list(SURVIVAL_MODELS)}")


def hazard_ratios(model) -> dict[str, float] | None:
    """A fitted Cox pipeline's hazard ratio per standard deviation of each input feature (None for others)."""
    estimator = model[-1]
    if not hasattr(estimator, "coef_"):
        return None
    names = model[:-1].get_feature_names_out(list(model.feature_names_in_))
    return {str(n): float(np.exp(c)) for n, c in zip(names, estimator.coef_, strict=True)}
