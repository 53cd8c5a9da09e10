"""How good risks are: discrimination, calibration, decision curves, intervals. A leaf: imports only core.errors."""

from core.metrics.intervals import Z95, wilson_interval, delong_auc, auc_interval
from core.metrics.discrimination import (
    EPS,
    as_outcome,
    logit,
    logistic_fit,
    calibration_slope_intercept,
    binary_metrics,
    roc_frame,
    pr_frame,
    rank_auc,
)
from core.metrics.calibration import (
    calibration_table,
    calibration_curve_ci,
    expected_calibration_error,
    calibration_summary,
)
from core.metrics.decision import DEFAULT_THRESHOLDS, net_benefit, decision_curve, useful_range, threshold_summary

__all__ = [
    "Z95",
    "wilson_interval",
    "delong_auc",
    "auc_interval",
    "EPS",
    "as_outcome",
    "logit",
    "logistic_fit",
    "calibration_slope_intercept",
    "binary_metrics",
    "roc_frame",
    "pr_frame",
    "rank_auc",
    "calibration_table",
    "calibration_curve_ci",
    "expected_calibration_error",
    "calibration_summary",
    "DEFAULT_THRESHOLDS",
    "net_benefit",
    "decision_curve",
    "useful_range",
    "threshold_summary",
]
