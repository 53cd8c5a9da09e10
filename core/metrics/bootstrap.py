"""Bootstrap 95% intervals of the performance measures a model card reports (TRIPOD+AI 23a): calibration
slope and intercept, Brier score, and net benefit at chosen thresholds.

Percentile intervals over resamples of the patients (with replacement, the same size). A measure can be
undefined in a resample (one outcome class, or risks separating the outcomes perfectly: no slope); such
resamples are left out of that measure's interval and counted. scipy.stats.bootstrap has no way to leave
them out (one NaN makes the interval NaN), and the resampling itself is a few lines, so it is written here.
"""
from __future__ import annotations

import numpy as np

from core.metrics.decision import net_benefit
from core.metrics.discrimination import as_outcome, calibration_slope_intercept

N_BOOT = 1000


def _measures(y: np.ndarray, p: np.ndarray, thresholds) -> dict:
    slope, intercept = calibration_slope_intercept(y, p)
    out = {"calibration_slope": slope, "calibration_intercept": intercept, "brier": float(np.mean((p - y) ** 2))}
    for t in thresholds:
        out[f"net_benefit@{t:g}"] = net_benefit(y, p, t)
    return out


def bootstrap_intervals(y, p, thresholds=(0.1, 0.2, 0.3), n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """``{measure: {"value", "low", "high", "resamples"}}`` for calibration_slope, calibration_intercept,
    brier and net_benefit@<threshold>: the estimate on all patients and its 2.5th-97.5th percentile
    bootstrap interval (``resamples``: how many resamples it was defined on)."""
    y = as_outcome(y)
    p = np.asarray(p, dtype=np.float64).ravel()
    point = _measures(y, p, thresholds)
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in point}
    for _ in range(int(n_boot)):
        rows = rng.integers(0, y.size, y.size)
        for k, v in _measures(y[rows], p[rows], thresholds).items():
            draws[k].append(v)
    out = {}
    for k, value in point.items():
        values = np.asarray(draws[k], dtype=np.float64)
        values = values[np.isfinite(values)]
        low, high = (np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan))
        out[k] = {"value": float(value), "low": float(low), "high": float(high), "resamples": int(values.size)}
    return out


__all__ = ["N_BOOT", "bootstrap_intervals"]
