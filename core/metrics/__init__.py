"""How good risks are: discrimination, calibration, decision curves, intervals. A leaf: imports only core.errors."""

from core.metrics.bootstrap import N_BOOT, bootstrap_intervals
from core.metrics.calibration import (
    calibration_curve_ci,
    calibration_summary,
    calibration_table,
    expected_calibration_error,
)
from core.metrics.decision import (
    DEFAULT_THRESHOLDS,
    decision_curve,
    grid_ends,
    net_benefit,
    proposed_threshold,
    threshold_summary,
    useful_ranges,
)
from core.metrics.discrimination import (
    EPS,
    as_outcome,
    binary_metrics,
    calibration_slope_intercept,
    logistic_fit,
    logit,
    pr_frame,
    rank_auc,
    roc_frame,
)
from core.metrics.intervals import (
    MIN_PER_CLASS,
    Z95,
    auc_interval,
    delong_auc,
    interval_fields,
    metric_intervals,
    proportion_intervals,
    wilson_interval,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EPS",
    "MIN_PER_CLASS",
    "N_BOOT",
    "Z95",
    "as_outcome",
    "auc_interval",
    "binary_metrics",
    "bootstrap_intervals",
    "calibration_curve_ci",
    "calibration_slope_intercept",
    "calibration_summary",
    "calibration_table",
    "decision_curve",
    "delong_auc",
    "expected_calibration_error",
    "grid_ends",
    "interval_fields",
    "logistic_fit",
    "logit",
    "metric_intervals",
    "net_benefit",
    "pr_frame",
    "proportion_intervals",
    "proposed_threshold",
    "rank_auc",
    "roc_frame",
    "threshold_summary",
    "useful_ranges",
    "wilson_interval",
]
