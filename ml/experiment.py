"""Hypotheses as first-class experiments: `lakehouse experiment run SPEC.yaml`.

A spec names a hypothesis, the data (a gold long table, pinned to a version or "latest_validated"), a model,
a baseline, a metric and the minimum effect that would support the hypothesis::

    name: tcga-cancer-type
    hypothesis: Gene expression predicts the cancer type (TCGA project) of a held-out patient's sample
    data: {table: gold.tcga_gene_expression, version: latest_validated, label: project, group: case_id}
    model: {type: logistic_regression, C: 1.0, n_features: 500}
    baseline: {type: majority}
    metric: balanced_accuracy
    min_effect: 0.1

The matrix comes from the table's Zarr export (lakehouse/matrix), so large cohorts are read as arrays, not
collected from Spark. Samples are split into train and held-out sets by `group` (a patient never appears in
both). The effect (model − baseline on the held-out set) gets a paired-bootstrap 95% CI; the outcome is
`supported` when the CI clears `min_effect`, `refuted` when it falls short, else `inconclusive` — and every
outcome is kept: tagged on the MLflow run and written to `knowledge.findings`.

`task: survival` specs (ml/survival.py) read a clinical and a mutation table instead of a matrix, fit
survival models and compare them by Harrell's C (`metric: concordance_index`); the rest is the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lakehouse.errors import ConfigError, LakehouseError
from lakehouse.settings import Settings

FINDINGS_TABLE = "knowledge.findings"
SKOPS_TRUSTED = ["numpy.dtype"]


TASKS = ("classification", "survival")


@dataclass
class ExperimentSpec:
    name: str
    hypothesis: str
    table: str
    group: str
    label: str | None = None
    version: int | str = "latest_validated"
    task: str = "classification"
    data: dict = field(default_factory=dict)  # the spec's whole `data` mapping (survival: ml/survival.py)
    model: dict = field(default_factory=lambda: {"type": "logistic_regression"})
    baseline: dict = field(default_factory=lambda: {"type": "majority"})
    metric: str = "balanced_accuracy"
    min_effect: float = 0.0
    test_size: float = 0.3
    seed: int = 7
    model_name: str | None = None
    register: bool = True

    @classmethod
    def load(cls, path: str | Path) -> ExperimentSpec:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
            data = raw.pop("data")
            task = raw.get("task", "classification")
            spec = cls(
                table=data["table"],
                label=data["label"] if task == "classification" else data.get("label"),
                group=data["group"],
                version=data.get("version", "latest_validated"),
                data=data,
                **raw,
            )
            if spec.task not in TASKS:
                raise ConfigError(f"{path}: unknown task {spec.task!r}; known: {list(TASKS)}")
            if spec.task == "survival":
                from ml.survival import options_of

                options_of(spec.data)
            return spec
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}: invalid experiment spec ({exc}); see ml/experiment.py for its shape"
            ) from exc
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from exc

    @property
    def registered_name(self) -> str:
        return self.model_name or f"lakehouse-{self.name}"


@dataclass
class Prepared:
    """What an experiment trains and tests on: features, target, the split and the data it came from."""

    x: pd.DataFrame
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    data_versions: list[dict]
    columns: dict[str, list[str]]  # column groups a model's `features` can pick; "all" is every column
    params: dict
    groups: np.ndarray  # the patient of each row: logged with the split, which is by patient


@dataclass
class ExperimentResult:
    run_id: str
    outcome: str
    stats: dict
    data_versions: list[dict]
    model_version: str | None
    promoted: bool


def resolve_version(spark, settings: Settings, table: str, version) -> tuple[int, str]:
    """The pinned version and the id of its passed validation (the gate applies to training data too)."""
    from lakehouse.quality.validate import latest_passed_version, require_passed

    if version == "latest_validated":
        version = latest_passed_version(spark, table)
        if version is None:
            raise LakehouseError(
                f"{table} has no version that passed validation; run `lakehouse validate {table}`"
            )
    return int(version), require_passed(spark, settings, table, int(version))


def readiness_of(spark, settings: Settings, table: str, version: int) -> float:
    """The version's readiness score, scoring it first if it never was."""
    from lakehouse.quality.readiness import latest_readiness, score_table

    stored = latest_readiness(spark, table, version)
    return stored if stored is not None else float(score_table(spark, settings, table, version).overall)


def load_matrix(spark, settings: Settings, table: str, version: int, columns: list[str]):
    """X (samples × features) and the requested obs columns, read from the table version's Zarr export."""
    import zarr

    from lakehouse.matrix.export import export_matrix

    store = settings.home / "matrices" / f"{table}_v{version}.zarr"
    export_matrix(spark, settings, table, store, version)
    root = zarr.open_group(str(store), mode="r")
    obs = pd.DataFrame({c: root["obs"][c][:] for c in columns}, index=root["obs"]["_index"][:])
    features = [str(v) for v in root["var"]["_index"][:]]
    return pd.DataFrame(np.asarray(root["X"][:]), index=obs.index, columns=features), obs


def build_model(config: dict, seed: int):
    from ml.survival import SURVIVAL_MODELS, build_survival_model

    if config.get("type") in SURVIVAL_MODELS:
        return build_survival_model(config, seed)
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    kind = config.get("type")
    if kind == "majority":
        return DummyClassifier(strategy="most_frequent")
    if kind == "stratified":
        return DummyClassifier(strategy="stratified", random_state=seed)
    if kind == "logistic_regression":
        steps = [SimpleImputer(strategy="constant", fill_value=0.0), FunctionTransformer(np.log1p)]
        if config.get("n_features"):
            steps.append(SelectKBest(f_classif, k=int(config["n_features"])))
        steps += [StandardScaler(), LogisticRegression(C=float(config.get("C", 1.0)), max_iter=2000)]
        return make_pipeline(*steps)
    raise ConfigError(
        f"unknown model type {kind!r}: majority, stratified, logistic_regression, cox_ph or gradient_boosted"
    )


def split_by_group(groups: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices with no group (patient) on both sides."""
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(groups)), groups=groups))
    if set(groups[train]) & set(groups[test]):
        raise LakehouseError(
            "held-out split leaks patients between train and test"
        )  # guards the splitter's contract
    return train, test


def prepare_classification(spark, settings: Settings, spec: ExperimentSpec) -> Prepared:
    version, validation_id = resolve_version(spark, settings, spec.table, spec.version)
    data_versions = [
        {
            "table_name": spec.table,
            "version": version,
            "validation_id": validation_id,
            "readiness": readiness_of(spark, settings, spec.table, version),
        }
    ]
    x, obs = load_matrix(spark, settings, spec.table, version, [spec.label, spec.group])
    y, groups = obs[spec.label].astype(str).to_numpy(), obs[spec.group].astype(str).to_numpy()
    train, test = split_by_group(groups, spec.test_size, spec.seed)
    return Prepared(x, y, train, test, data_versions, {"all": list(x.columns)}, {"label": spec.label}, groups)


def prepare_survival(spark, settings: Settings, spec: ExperimentSpec) -> Prepared:
    from ml.survival import load_survival, prepare

    data = load_survival(spark, settings, spec)
    groups = data.clinical.index.to_numpy(dtype=str)
    train, test = split_by_group(groups, spec.test_size, spec.seed)
    x, columns, params = prepare(data, spec, train)
    params["n_events_test"] = int(data.event[test].sum())
    columns = {"all": list(x.columns), **columns}
    return Prepared(x, data.y, train, test, data.data_versions, columns, params, groups)


def features_of(config: dict, prepared: Prepared) -> list[str]:
    """The columns a model sees: the union of the column groups its `features` names (default: all)."""
    wanted = config.get("features", ["all"])
    unknown = set(wanted) - set(prepared.columns)
    if unknown:
        raise ConfigError(f"unknown feature groups {sorted(unknown)}; known: {sorted(prepared.columns)}")
    return [c for c in prepared.x.columns if any(c in prepared.columns[group] for group in wanted)]


# What a logged model needs to be loaded and to predict. Declared, not inferred: MLflow's inference imports
# the model in a subprocess (about 4 s a model, most of the experiments stage's MLflow time) and lists
# whatever that process had imported (pytest, rich, dask).
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")
TASK_PACKAGES = {"survival": ("scikit-survival",)}


def model_requirements(task: str) -> list[str]:
    """The model's packages pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in (*MODEL_PACKAGES, *TASK_PACKAGES.get(task, ()))]


def run_experiment(spark, settings: Settings, spec: ExperimentSpec) -> ExperimentResult:
    import mlflow
    from mlflow.models import infer_signature

    from lakehouse.runs import code_version
    from ml.stats import outcome, paired_bootstrap
    from ml.tracking import configure, log_environment, log_inputs, tracked_run

    if spec.task not in TASKS:
        raise ConfigError(f"unknown task {spec.task!r}; known: {list(TASKS)}")
    prepare = prepare_survival if spec.task == "survival" else prepare_classification
    prepared = prepare(spark, settings, spec)
    x, y, train, test, data_versions = (
        prepared.x,
        prepared.y,
        prepared.train,
        prepared.test,
        prepared.data_versions,
    )
    version = data_versions[0]["version"]
    model_x, baseline_x = x[features_of(spec.model, prepared)], x[features_of(spec.baseline, prepared)]
    model = build_model(spec.model, spec.seed).fit(model_x.iloc[train], y[train])
    baseline = build_model(spec.baseline, spec.seed).fit(baseline_x.iloc[train], y[train])
    stats = paired_bootstrap(
        spec.metric,
        y[test],
        model.predict(model_x.iloc[test]),
        baseline.predict(baseline_x.iloc[test]),
        seed=spec.seed,
    )
    decided = outcome(stats["effect_ci"], spec.min_effect)
    code = code_version()

    experiment_id = configure(settings, spec.name)
    # A run the tracking server cannot be told about ends as one clear error and is marked FAILED later.
    with tracked_run(settings, f"{spec.name}@{spec.table}v{version}", experiment_id) as run:
        log_inputs(spark, [{**d, "context": "training"} for d in data_versions])
        log_environment(spark, code)
        mlflow.log_params(
            {
                "task": spec.task,
                "table": spec.table,
                "table_version": version,
                "group": spec.group,
                **prepared.params,
                "metric": spec.metric,
                "min_effect": spec.min_effect,
                "test_size": spec.test_size,
                "seed": spec.seed,
                "n_train": len(train),
                "n_test": len(test),
                "n_features": model_x.shape[1],
                "n_baseline_features": baseline_x.shape[1],
                **{f"model.{k}": v for k, v in spec.model.items()},
                **{f"baseline.{k}": v for k, v in spec.baseline.items()},
            }
        )
        mlflow.log_metrics(
            {
                spec.metric: stats["model_value"],
                f"{spec.metric}_ci_low": stats["model_ci"][0],
                f"{spec.metric}_ci_high": stats["model_ci"][1],
                f"baseline_{spec.metric}": stats["baseline_value"],
                f"baseline_{spec.metric}_ci_low": stats["baseline_ci"][0],
                f"baseline_{spec.metric}_ci_high": stats["baseline_ci"][1],
                "effect": stats["effect"],
                "effect_ci_low": stats["effect_ci"][0],
                "effect_ci_high": stats["effect_ci"][1],
            }
        )
        mlflow.set_tags(
            {
                "lakehouse.hypothesis": spec.hypothesis,
                "lakehouse.outcome": decided,
                "lakehouse.validation_ids": ",".join(d["validation_id"] for d in data_versions),
            }
        )
        # The held-out patients, so a later model can be compared on exactly the same ones.
        mlflow.log_dict({spec.group: sorted(set(prepared.groups[test].tolist()))}, "heldout_groups.json")
        if spec.task == "survival":
            from ml.survival import hazard_ratios

            ratios = hazard_ratios(model)
            if ratios is not None:
                mlflow.log_dict(ratios, "hazard_ratios.json")
        model_version, promoted = None, False
        if spec.register:
            from ml.survival import SKOPS_TRUSTED as SURVIVAL_TRUSTED

            example = model_x.iloc[train[:2]]
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=spec.registered_name,
                input_example=example,
                signature=infer_signature(example, model.predict(example)),
                # MLflow 3 stores sklearn models with skops, which needs the log1p step's dtype and
                # scikit-survival's classes declared safe.
                skops_trusted_types=SKOPS_TRUSTED + (SURVIVAL_TRUSTED if spec.task == "survival" else []),
                pip_requirements=model_requirements(spec.task),
            )
            model_version = str(info.registered_model_version)
            promoted = promote(spec, model_version, model, model_x.iloc[test], y[test])
            mlflow.set_tag("lakehouse.promoted", str(promoted).lower())
    record_finding(spark, settings, spec, run.info.run_id, data_versions, model_version, stats, decided, code)
    return ExperimentResult(run.info.run_id, decided, stats, data_versions, model_version, promoted)


def promote(spec: ExperimentSpec, version: str, model, x_test, y_test) -> bool:
    """Alias the new version `challenger`; make it `champion` only if it beats the champion on this held-out set."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ml.stats import metric

    client = MlflowClient()
    client.set_registered_model_alias(spec.registered_name, "challenger", version)
    try:
        champion_version = client.get_model_version_by_alias(spec.registered_name, "champion")
    except MlflowException:
        champion_version = None
    if champion_version is not None:
        champion = mlflow.sklearn.load_model(f"models:/{spec.registered_name}@champion")
        expected = list(getattr(champion, "feature_names_in_", x_test.columns))
        champion_score = metric(
            spec.metric, y_test, champion.predict(x_test.reindex(columns=expected, fill_value=0.0))
        )
        challenger_score = metric(spec.metric, y_test, model.predict(x_test))
        mlflow.log_metrics({f"champion_{spec.metric}": champion_score})
        if challenger_score <= champion_score:
            return False
    client.set_registered_model_alias(spec.registered_name, "champion", version)
    return True


def record_finding(
    spark,
    settings: Settings,
    spec: ExperimentSpec,
    run_id: str,
    data_versions: list[dict],
    model_version: str | None,
    stats: dict,
    decided: str,
    code: str,
) -> None:
    import pyarrow as pa

    from lakehouse.landing import Target, land_rows
    from lakehouse.runs import IngestRun
    from lakehouse.schemas import declaration

    decl = declaration(FINDINGS_TABLE, settings.schemas_dir)
    row = {
        "finding_id": run_id,
        "experiment": spec.name,
        "hypothesis": spec.hypothesis,
        "data_versions": data_versions,
        "run_id": run_id,
        "model_name": spec.registered_name if model_version else None,
        "model_version": model_version,
        "metric": spec.metric,
        "model_value": stats["model_value"],
        "baseline_value": stats["baseline_value"],
        "effect": stats["effect"],
        "effect_ci_low": stats["effect_ci"][0],
        "effect_ci_high": stats["effect_ci"][1],
        "min_effect": float(spec.min_effect),
        "outcome": decided,
        "code_version": code,
        "recorded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
    with IngestRun(spark, settings, job=f"experiment {spec.name}") as run:
        target = Target.of(spark, decl, settings.schemas_dir)
        land_rows(target, pa.Table.from_pylist([row], target.schema), run)


def findings(spark, negative: bool = False):
    from pyspark.sql import functions as F

    frame = spark.table(FINDINGS_TABLE)
    if negative:
        frame = frame.filter(F.col("outcome") != "supported")
    return frame.orderBy(F.col("recorded_at").desc())
