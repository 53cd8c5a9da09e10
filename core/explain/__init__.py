"""Exact Shapley values on the raw clinical features, and reasons in words."""

from core.explain.explanation import (
    MAX_BACKGROUND,
    Explanation,
    background_sample,
    global_importance,
    shap_frame,
)
from core.explain.background import REASON_TOLERANCE, summarise_background
from core.explain.reasons import Reason, reasons, reasons_frame
from core.explain.shapley import (
    MAX_AUTO_EXACT,
    MAX_EXACT,
    explain,
    shapley_weights,
    single_thread_blas,
)

__all__ = [
    "REASON_TOLERANCE",
    "summarise_background",
    "MAX_BACKGROUND",
    "Explanation",
    "background_sample",
    "global_importance",
    "shap_frame",
    "MAX_AUTO_EXACT",
    "MAX_EXACT",
    "explain",
    "shapley_weights",
    "single_thread_blas",
    "Reason",
    "reasons",
    "reasons_frame",
]
