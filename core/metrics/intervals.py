"""Confidence intervals shared by the metrics: normal quantile, Wilson for proportions, DeLong for AUC
(on the logit scale, with Newcombe's score interval where DeLong's standard error is zero).
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(successes, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (arrays allowed); (nan, nan) where n == 0."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / n
        denom = 1 + z ** 2 / n
        centre = (phat + z ** 2 / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z ** 2 / (4 * n ** 2)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def delong_auc(y, p) -> tuple[float, float]:
    """ROC AUC and its DeLong standard error (NaN, NaN with one outcome class; se NaN with one patient
    in a class)."""
    from scipy.stats import rankdata
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    pos, neg = p[y == 1], p[y == 0]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return float("nan"), float("nan")
    both = rankdata(np.concatenate([pos, neg]))  # midranks: ties count one half
    # V10_i: share of negatives below positive i (+ half the ties); V01_j: share of positives above negative j
    v10 = (both[:m] - rankdata(pos)) / n
    v01 = 1.0 - (both[m:] - rankdata(neg)) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, float("nan")
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return auc, se


def auc_interval(y, p) -> tuple[float, float, float]:
    """(AUC, lower, upper), a 95% interval that keeps its width at small n.

    DeLong's standard error on the logit scale (logit(AUC) +- z se / (AUC (1 - AUC)), back-transformed;
    Pepe 2003, 5.2): it stays inside (0, 1) without clipping, where the plain Wald interval of a small
    group collapsed onto 1.000-1.000. Where DeLong's standard error is zero (an AUC of 0 or 1, i.e. the
    risks separate the outcomes perfectly, or every risk tied), Newcombe's score interval (method 5 of
    Newcombe, Stat Med 2006;25:559), which has a width there too. NaN bounds with fewer than 2 patients
    in a class."""
    auc, se = delong_auc(y, p)
    if not math.isfinite(se):
        return auc, float("nan"), float("nan")
    if se > 0 and 0 < auc < 1:
        centre, half = math.log(auc / (1 - auc)), Z95 * se / (auc * (1 - auc))
        return auc, 1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half)))
    y = np.asarray(y, dtype=np.float64).ravel()
    low, high = newcombe_auc_interval(auc, int(np.sum(y == 1)), int(np.sum(y == 0)))
    return auc, low, high


def newcombe_auc_interval(auc: float, m: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's (2006, method 5) score interval of an AUC from ``m`` patients with and ``n`` without the
    outcome: the thetas where (theta - AUC)^2 = z^2 V(theta), with Hanley & McNeil's variance evaluated at
    theta and N* = (m + n) / 2 - 1 in place of each class size. Written here because no maintained
    Python library has it (R's pROC and the author's spreadsheet do)."""
    from scipy.optimize import brentq
    big = (m + n) / 2 - 1

    def gap(theta):
        var = theta * (1 - theta) / (m * n) * (1 + (big - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))
        return (theta - auc) ** 2 - z * z * var

    inner_low, inner_high = max(auc - 1e-9, 0.0), min(auc + 1e-9, 1.0)
    low = 0.0 if auc <= 0 or gap(0.0) <= 0 else brentq(gap, 0.0, inner_low, xtol=1e-12)
    high = 1.0 if auc >= 1 or gap(1.0) <= 0 else brentq(gap, inner_high, 1.0, xtol=1e-12)
    return float(low), float(high)


# Fewer patients than this in a measure's denominator (for the test set as a whole: with, or without, the
# outcome): "too few patients" instead of a number. Shared by the subgroup table (core.evaluate.subgroups)
# and the test metrics. At 5 and 5 the widest possible AUC interval still excludes nothing.
MIN_PER_CLASS = 5

# measure -> which counts of the confusion matrix are its numerator and denominator
_PROPORTIONS = {
    "accuracy": (("tp", "tn"), ("tp", "tn", "fp", "fn")),
    "sensitivity": (("tp",), ("tp", "fn")),
    "specificity": (("tn",), ("tn", "fp")),
    "ppv": (("tp",), ("tp", "fp")),
    "npv": (("tn",), ("tn", "fn")),
}


def _interval(value, low, high, too_few: bool, method: str) -> dict:
    value, low, high = (float(v) for v in (value, low, high))
    if too_few or not (math.isfinite(low) and math.isfinite(high)):
        return {"value": value, "low": float("nan"), "high": float("nan"), "too_few": True, "method": method}
    return {"value": value, "low": low, "high": high, "too_few": False, "method": method}


def _class_sizes(y) -> tuple[np.ndarray, int, int]:
    y = np.asarray(y, dtype=np.float64).ravel()
    events = int(np.sum(y == 1))
    return y, events, int(y.size - events)


def proportion_intervals(y, p, threshold: float = 0.5) -> dict:
    """Wilson 95% intervals of accuracy, sensitivity, specificity, PPV and NPV at ``threshold`` (risk >=
    threshold = positive): ``{measure: {"value", "low", "high", "too_few", "method"}}``. ``too_few`` (and
    NaN bounds) where the measure's denominator, or the patients with or without the outcome, number
    fewer than MIN_PER_CLASS."""
    y, events, non_events = _class_sizes(y)
    pred = np.asarray(p, dtype=np.float64).ravel() >= threshold
    pos = y == 1
    counts = {"tp": int(np.sum(pred & pos)), "fp": int(np.sum(pred & ~pos)),
              "fn": int(np.sum(~pred & pos)), "tn": int(np.sum(~pred & ~pos))}
    few_classes = min(events, non_events) < MIN_PER_CLASS
    out = {}
    for name, (num, den) in _PROPORTIONS.items():
        k, n = sum(counts[c] for c in num), sum(counts[c] for c in den)
        low, high = wilson_interval(k, n)
        out[name] = _interval(k / n if n else float("nan"), low, high, few_classes or n < MIN_PER_CLASS, "wilson")
    return out


def metric_intervals(y, p, threshold: float = 0.5, n_boot: int | None = None, seed: int = 0) -> dict:
    """95% intervals of the test metrics, each valid at small n and never of zero width:
    Wilson for the proportions (proportion_intervals), DeLong on the logit scale for the ROC AUC
    (auc_interval), and a seeded percentile bootstrap (core.metrics.bootstrap, N_BOOT resamples) for the
    Brier score and the calibration slope and intercept. ``{measure: {"value", "low", "high", "too_few",
    "method"}}``; ``too_few`` with fewer than MIN_PER_CLASS patients with, or without, the outcome."""
    from core.metrics.bootstrap import N_BOOT, bootstrap_intervals  # bootstrap imports discrimination

    out = proportion_intervals(y, p, threshold)
    y, events, non_events = _class_sizes(y)
    few_classes = min(events, non_events) < MIN_PER_CLASS
    auc, low, high = auc_interval(y, p)
    out["roc_auc"] = _interval(auc, low, high, few_classes, "delong_logit")
    boot = bootstrap_intervals(y, p, thresholds=(), n_boot=N_BOOT if n_boot is None else n_boot, seed=seed)
    # the same resamples give the calibration slope and intercept theirs (the model card's TRIPOD 23a ones)
    for name in ("brier", "calibration_slope", "calibration_intercept"):
        b = boot[name]
        out[name] = _interval(b["value"], b["low"], b["high"], few_classes or not b["high"] > b["low"], "bootstrap")
    return out


def interval_fields(intervals: dict) -> dict:
    """The intervals as flat metric fields to store with a model's metrics: ``<measure>_low`` and
    ``<measure>_high`` (None where too few patients), ``<measure>_too_few``."""
    out = {}
    for name, iv in intervals.items():
        out[f"{name}_low"] = None if iv["too_few"] else iv["low"]
        out[f"{name}_high"] = None if iv["too_few"] else iv["high"]
        out[f"{name}_too_few"] = bool(iv["too_few"])
    return out
