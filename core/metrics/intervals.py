"""Confidence intervals shared by the metrics: normal quantile, Wilson for proportions, DeLong for AUC.
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
    """(AUC, lower, upper): the DeLong 95% Wald interval clipped to [0, 1]."""
    auc, se = delong_auc(y, p)
    if not math.isfinite(se):
        return auc, float("nan"), float("nan")
    return auc, max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)
