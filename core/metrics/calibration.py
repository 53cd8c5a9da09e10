"""Are the risks right on average and across their range: calibration tables, curves with intervals, ECE.

Calibration curves carry Wilson 95% intervals of each bin's observed rate; the expected calibration error
is sum over bins of (bin size / n) * |observed rate - mean risk| with equal-width bins.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import CohortError
from core.metrics.discrimination import as_outcome, calibration_slope_intercept
from core.metrics.intervals import wilson_interval


def calibration_table(y, p, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Observed rate of disease against mean predicted risk per bin — the same bins and numbers as
    ``sklearn.calibration.calibration_curve`` (empty bins dropped), plus each bin's patient count."""
    y = as_outcome(y)
    p = np.asarray(p, dtype=np.float64)
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError("strategy must be 'quantile' or 'uniform'")
    ids = np.searchsorted(edges[1:-1], p)
    total = np.bincount(ids, minlength=n_bins)
    sums = np.bincount(ids, weights=p, minlength=n_bins)
    hits = np.bincount(ids, weights=y, minlength=n_bins)
    keep = total > 0
    bins = np.flatnonzero(keep)
    return pd.DataFrame({
        "bin": bins + 1,
        "lower": edges[bins], "upper": edges[bins + 1],
        "mean_predicted": sums[keep] / total[keep],
        "observed_rate": hits[keep] / total[keep],
        "n": total[keep].astype(int),
    })




def calibration_curve_ci(y, p, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """core.evaluate.calibration_table (sklearn's calibration_curve bins) plus the events per bin and a
    Wilson 95% interval of each bin's observed rate (columns ``low``, ``high``)."""
    table = calibration_table(y, p, n_bins=n_bins, strategy=strategy)
    events = np.round(table["observed_rate"].to_numpy() * table["n"].to_numpy()).astype(int)
    low, high = wilson_interval(events, table["n"].to_numpy())
    return table.assign(events=events, low=low, high=high)


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum_b (n_b / n) * |observed_b - mean risk_b|."""
    y = as_outcome(y)
    p = np.asarray(p, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise CohortError(f"{p.size} risks for {y.size} outcomes")
    ids = np.minimum((p * n_bins).astype(int), n_bins - 1)  # bins [0,.1), ..., [.9, 1]
    gap = np.abs(np.bincount(ids, weights=y, minlength=n_bins) - np.bincount(ids, weights=p, minlength=n_bins))
    return float(gap.sum() / y.size)  # n_b/n * |sum_y/n_b - sum_p/n_b| = |sum_y - sum_p| / n


def calibration_summary(y, p, n_bins: int = 10) -> dict:
    """Slope, intercept (calibration-in-the-large), ECE, Brier, mean risk vs observed rate."""
    y = as_outcome(y)
    p = np.asarray(p, dtype=np.float64).ravel()
    slope, intercept = calibration_slope_intercept(y, p)
    return {"n": int(y.size), "observed_rate": float(y.mean()), "mean_risk": float(p.mean()),
            "calibration_slope": slope, "calibration_intercept": intercept,
            "ece": expected_calibration_error(y, p, n_bins), "brier": float(np.mean((p - y) ** 2))}
