"""Metrics with confidence intervals (bootstrap over held-out samples), and the outcome of a criterion."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def concordance_index(y_true, risk) -> float:
    """Harrell's C: of the comparable pairs (the earlier time is an event), the share where the earlier
    one has the higher predicted risk (ties in risk count one half). `y_true` is a structured array with
    fields `event` (bool) and `time`; NaN when no pair is comparable (a resample without events)."""
    from sksurv.exceptions import NoComparablePairException
    from sksurv.metrics import concordance_index_censored

    if not np.asarray(y_true["event"]).any():
        return float("nan")
    try:
        return concordance_index_censored(y_true["event"], y_true["time"], risk)[0]
    except NoComparablePairException:
        return float("nan")


METRICS = {
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "macro_f1": lambda y, p: skm.f1_score(y, p, average="macro"),
    "concordance_index": concordance_index,
}


def metric(name: str, y_true, y_pred) -> float:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    return float(METRICS[name](y_true, y_pred))


def paired_bootstrap(name: str, y_true, model_pred, baseline_pred, rounds: int = 1000, seed: int = 0) -> dict:
    """Metric of model and baseline, their difference, and 95% percentile CIs from the same resamples.

    Resamples where the metric is undefined (NaN: e.g. no comparable pair for a C-index) are left out."""
    y_true, model_pred, baseline_pred = map(np.asarray, (y_true, model_pred, baseline_pred))
    rng = np.random.default_rng(seed)
    n = len(y_true)
    model_values, baseline_values = [], []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        model_values.append(metric(name, y_true[idx], model_pred[idx]))
        baseline_values.append(metric(name, y_true[idx], baseline_pred[idx]))
    effects = np.subtract(model_values, baseline_values)
    model_value = metric(name, y_true, model_pred)
    baseline_value = metric(name, y_true, baseline_pred)
    return {
        "model_value": model_value,
        "model_ci": tuple(np.nanpercentile(model_values, [2.5, 97.5]).tolist()),
        "baseline_value": baseline_value,
        "baseline_ci": tuple(np.nanpercentile(baseline_values, [2.5, 97.5]).tolist()),
        "effect": model_value - baseline_value,
        "effect_ci": tuple(np.nanpercentile(effects, [2.5, 97.5]).tolist()),
    }


def outcome(effect_ci: tuple[float, float], min_effect: float) -> str:
    """supported: the whole CI clears the minimum effect; refuted: the whole CI falls short; else inconclusive."""
    low, high = effect_ci
    if low > min_effect:
        return "supported"
    if high < min_effect:
        return "refuted"
    return "inconclusive"
