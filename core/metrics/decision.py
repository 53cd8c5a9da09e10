"""Would acting on these risks do more good than harm? Decision curves and a threshold chooser.

Net benefit (Vickers & Elkin, Med Decis Making 2006) of treating the patients whose risk is at or above a
threshold probability ``pt``: ``NB = TP/n - FP/n * pt / (1 - pt)`` — true positives gained, false alarms
charged at the odds the threshold implies (at pt = 20% a clinician accepts 4 false alarms per case found).
Reference strategies: treat all (``prevalence - (1 - prevalence) * pt / (1 - pt)``) and treat none (0).
A model is useful at thresholds where its curve lies above both.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import CohortError
from core.metrics.discrimination import as_outcome

DEFAULT_THRESHOLDS = np.round(np.arange(0.01, 0.605, 0.01), 2)  # 1% .. 60%


def _pairs(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = as_outcome(np.asarray(y, dtype=np.float64).ravel())
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise CohortError(f"{p.size} risks for {y.size} outcomes")
    if y.size == 0:
        raise CohortError("no patients to evaluate")
    if np.any(np.isnan(p)):
        raise CohortError("every patient needs a risk")
    return y, p


def net_benefit(y, p, threshold: float) -> float:
    """Net benefit of treating patients with risk >= ``threshold`` (0 < threshold < 1)."""
    y, p = _pairs(y, p)
    if not 0 < threshold < 1:
        raise ValueError("the threshold probability must be between 0 and 1")
    treat = p >= threshold
    tp = np.sum(treat & (y == 1))
    fp = np.sum(treat & (y == 0))
    return float(tp / y.size - fp / y.size * threshold / (1 - threshold))


def decision_curve(y, p, thresholds=DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Net benefit of the model, treat-all and treat-none at each threshold; also the net reduction in
    interventions per 100 patients versus treat-all (the false alarms avoided at no loss of cases)."""
    y, p = _pairs(y, p)
    t = np.asarray(thresholds, dtype=np.float64)
    if np.any((t <= 0) | (t >= 1)):
        raise ValueError("threshold probabilities must be between 0 and 1")
    n = y.size
    treat = p[None, :] >= t[:, None]
    tp = (treat & (y == 1)).sum(axis=1)
    fp = (treat & (y == 0)).sum(axis=1)
    odds = t / (1 - t)
    prevalence = y.mean()
    model = tp / n - fp / n * odds
    treat_all = prevalence - (1 - prevalence) * odds
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = np.where(odds > 0, (model - treat_all) / odds * 100, np.nan)
    return pd.DataFrame({"threshold": t, "net_benefit": model, "treat_all": treat_all, "treat_none": 0.0,
                         "tp": tp, "fp": fp, "interventions_avoided_per_100": reduction})


def useful_ranges(curve: pd.DataFrame) -> list[dict]:
    """Every run of consecutive thresholds of ``curve`` where the model beats both treat-all and
    treat-none, as ``{"from", "to", "at_first", "at_last"}``; ``at_first`` / ``at_last``: the run reaches
    the first / last threshold examined, so the model may be useful beyond it too (the grid's end is not a
    boundary the data showed). Empty: useful nowhere on the grid. Several runs are reported as they are
    (a curve may cross treat-all more than once on a small test split)."""
    t = curve["threshold"].to_numpy(dtype=float)
    better = ((curve["net_benefit"] > curve["treat_all"]) & (curve["net_benefit"] > curve["treat_none"])).to_numpy()
    runs, start = [], None
    for i, ok in enumerate(better):
        if ok and start is None:
            start = i
        if start is not None and (not ok or i == len(better) - 1):
            end = i if ok else i - 1
            runs.append({"from": float(t[start]), "to": float(t[end]), "at_first": start == 0,
                         "at_last": end == len(better) - 1})
            start = None
    return runs


def grid_ends(curve: pd.DataFrame) -> tuple[float, float]:
    """The first and last threshold of ``curve`` (what "the thresholds examined" means)."""
    t = curve["threshold"].to_numpy(dtype=float)
    return float(t.min()), float(t.max())


def threshold_summary(y, p, threshold: float) -> dict:
    """What acting at ``threshold`` means: sensitivity, specificity, PPV, NPV, net benefit, and per 100
    patients the true positives, false alarms, missed cases and correctly reassured."""
    y, p = _pairs(y, p)
    if not 0 < threshold < 1:
        raise ValueError("the threshold probability must be between 0 and 1")
    pos = y == 1
    flag = p >= threshold
    tp, fp = int(np.sum(flag & pos)), int(np.sum(flag & ~pos))
    fn, tn = int(np.sum(~flag & pos)), int(np.sum(~flag & ~pos))
    n = y.size

    def ratio(a, b):
        return a / b if b else float("nan")

    return {"threshold": float(threshold), "n": n, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn),
            "flagged_per_100": 100 * (tp + fp) / n,
            "true_positives_per_100": 100 * tp / n, "false_alarms_per_100": 100 * fp / n,
            "missed_per_100": 100 * fn / n, "reassured_per_100": 100 * tn / n,
            "net_benefit": net_benefit(y, p, threshold)}


COMMON_OUTCOME = (0.3, 0.7)  # training prevalence where 0.5 stays the default threshold


def proposed_threshold(y_train, p_train) -> tuple[float, str, float]:
    """(threshold, rule, prevalence) to propose as the default on the *training* split's risks.

    For a common outcome 0.5 stays ('fixed'); for a rare (or very common) one 0.5 flags almost nobody
    (or everybody), so the threshold maximising Youden's J = sensitivity + specificity - 1 on the training
    split is proposed ('youden'), rounded to 0.01. The caller reports its effect on patients it was not
    chosen on (the test split)."""
    y, p = _pairs(y_train, p_train)
    prevalence = float(np.mean(y)) if y.size else float("nan")
    if y.size == 0 or np.unique(y).size < 2 or COMMON_OUTCOME[0] <= prevalence <= COMMON_OUTCOME[1]:
        return 0.5, "fixed", prevalence
    from sklearn.metrics import roc_curve
    fpr, tpr, thresholds = roc_curve(y, p)
    finite = np.isfinite(thresholds)
    best = int(np.argmax((tpr - fpr)[finite]))
    threshold = float(np.clip(np.round(thresholds[finite][best], 2), 0.01, 0.99))
    return threshold, "youden", prevalence


__all__ = ["DEFAULT_THRESHOLDS", "decision_curve", "grid_ends", "net_benefit", "proposed_threshold",
           "threshold_summary", "useful_ranges"]
