"""How good risks are: discrimination, calibration, decision curves, intervals. A leaf: imports only core.errors."""

from core.metrics.calibration import (
    calibration_curve_ci,
    calibration_summary,
    calibration_table,
    expected_calibration_error,
)
from core.metrics.decision import (
    DEFAULT_THRESHOLDS,
    decision_curve,
    net_benefit,
    threshold_summary,
    useful_range,
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
from core.metrics.intervals import Z95, auc_interval, delong_auc, wilson_interval

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
