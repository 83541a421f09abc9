"""Metrics with confidence intervals (bootstrap over held-out samples), and the outcome of a criterion."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

METRICS = {
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "macro_f1": lambda y, p: skm.f1_score(y, p, average="macro"),
}


def metric(name: str, y_true, y_pred) -> float:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    return float(METRICS[name](y_true, y_pred))


def paired_bootstrap(name: str, y_true, model_pred, baseline_pred, rounds: int = 1000, seed: int = 0) -> dict:
    """Metric of model and baseline, their difference, and 95% percentile CIs from the same resamples."""
    y_true, model_pred, baseline_pred = map(np.asarray, (y_true, model_pred, baseline_pred))
    rng = np.random.default_rng(seed)
    n = len(y_true)
    model_values, effects = [], []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        m = metric(name, y_true[idx], model_pred[idx])
        model_values.append(m)
        effects.append(m - metric(name, y_true[idx], baseline_pred[idx]))
    model_value = metric(name, y_true, model_pred)
    baseline_value = metric(name, y_true, baseline_pred)
    return {
        "model_value": model_value,
        "model_ci": tuple(np.percentile(model_values, [2.5, 97.5]).tolist()),
        "baseline_value": baseline_value,
        "effect": model_value - baseline_value,
        "effect_ci": tuple(np.percentile(effects, [2.5, 97.5]).tolist()),
    }


def outcome(effect_ci: tuple[float, float], min_effect: float) -> str:
    """supported: the whole CI clears the minimum effect; refuted: the whole CI falls short; else inconclusive."""
    low, high = effect_ci
    if low > min_effect:
        return "supported"
    if high < min_effect:
        return "refuted"
    return "inconclusive"
