"""How well risks separate and match outcomes: the single-split metrics.

Every metric is computed from (outcome, predicted risk) pairs, so the MLP and the logistic-regression
baseline are judged by the same code on the same patients.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import CohortError, format_rows

EPS = 1e-6  # risks are clipped to [eps, 1-eps] before taking logits (a risk of exactly 0 has no logit)


def as_outcome(y, n_rows: int | None = None) -> np.ndarray:
    y = np.asarray(pd.Series(y).to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if n_rows is not None and len(y) != n_rows:
        raise CohortError(f"the outcome has {len(y)} values but the table has {n_rows} rows")
    missing = np.flatnonzero(np.isnan(y))
    if missing.size:
        raise CohortError(f"the outcome is missing in {missing.size} rows ({format_rows(missing)}); "
                          "drop or complete them before training")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise CohortError(f"the outcome must be 0 or 1; rows {format_rows(bad)} are not")
    return y



def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def logistic_fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iterations: int = 100) -> np.ndarray | None:
    """Unpenalised logistic regression y ~ X·beta + offset by Newton-Raphson (IRLS) with step halving.
    None when it does not converge (e.g. perfectly separated outcomes, where the estimate is infinite)."""
    beta = np.zeros(X.shape[1])

    def nll(b):
        eta = X @ b + offset
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    current = nll(beta)
    for _ in range(iterations):
        eta = X @ beta + offset
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # the logistic function without overflow at large |eta|
        grad = X.T @ (y - p)
        hess = (X * (p * (1 - p))[:, None]).T @ X
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(len(beta)), grad)
        except np.linalg.LinAlgError:
            return None
        scale = 1.0
        while scale > 1e-8:
            candidate = beta + scale * step
            value = nll(candidate)
            if value <= current + 1e-12:
                break
            scale /= 2
        else:
            return beta if np.all(np.isfinite(beta)) else None
        beta, previous, current = candidate, current, value
        if np.max(np.abs(scale * step)) < 1e-10 or abs(previous - current) < 1e-12:
            break
    if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e3:
        return None
    return beta


def calibration_slope_intercept(y, p) -> tuple[float, float]:
    """Logistic recalibration of the risks.

    slope: from regressing the outcome on logit(risk) (1 = the spread of risks is right; < 1 = risks are
    too extreme). intercept: calibration-in-the-large, the intercept with the slope fixed at 1
    (logit(risk) as an offset): 0 = risks are right on average; > 0 = they underestimate.
    NaN when undefined (one outcome class, or outcomes perfectly separated by the risk).
    """
    y = np.asarray(y, dtype=np.float64)
    lp = logit(p)
    if y.size == 0 or y.min() == y.max():
        return float("nan"), float("nan")
    ones = np.ones((y.size, 1))
    pos, neg = lp[y == 1], lp[y == 0]
    if pos.min() >= neg.max() or neg.min() >= pos.max():
        slope = float("nan")  # the risks separate the outcomes: the fitted slope would be infinite
    else:
        full = logistic_fit(np.column_stack([ones, lp]), y, np.zeros_like(lp))
        slope = float(full[1]) if full is not None else float("nan")
    citl = logistic_fit(ones, y, lp)
    intercept = float(citl[0]) if citl is not None else float("nan")
    return slope, intercept


def binary_metrics(y, p, threshold: float = 0.5) -> dict:
    """Discrimination, calibration and the confusion matrix at ``threshold`` (risk >= threshold = positive)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = as_outcome(y)
    p = np.asarray(p, dtype=np.float64)
    if p.shape != y.shape:
        raise CohortError(f"{len(p)} risks for {len(y)} outcomes")
    if y.size == 0:
        raise CohortError("no patients to evaluate")
    pred = p >= threshold
    pos = y == 1
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    fn = int(np.sum(~pred & pos))
    tn = int(np.sum(~pred & ~pos))

    def ratio(a, b):
        return a / b if b else float("nan")

    both = 0 < pos.sum() < y.size
    slope, intercept = calibration_slope_intercept(y, p)
    return {
        "n": int(y.size),
        "prevalence": float(pos.mean()),
        "threshold": float(threshold),
        "accuracy": (tp + tn) / y.size,
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(np.mean((p - y) ** 2)),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "tn": tn, "fp": fp, "fn": fn, "tp": tp,
    }




def roc_frame(y, p) -> pd.DataFrame:
    """ROC curve as a tidy table (threshold, fpr, tpr, specificity) for plotting."""
    from sklearn.metrics import roc_curve
    fpr, tpr, thresholds = roc_curve(as_outcome(y), np.asarray(p, dtype=np.float64))
    return pd.DataFrame({"threshold": np.minimum(thresholds, 1.0), "fpr": fpr, "tpr": tpr,
                         "specificity": 1 - fpr})


def pr_frame(y, p) -> pd.DataFrame:
    """Precision-recall curve as a tidy table (threshold NaN at the curve's recall-0 end point)."""
    from sklearn.metrics import precision_recall_curve
    precision, recall, thresholds = precision_recall_curve(as_outcome(y), np.asarray(p, dtype=np.float64))
    return pd.DataFrame({"threshold": np.append(thresholds, np.nan), "precision": precision, "recall": recall})


# ---- the logistic-regression baseline ---------------------------------------------------------------


def rank_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get their average rank): the same number as sklearn,
    in plain numpy (this runs twice an epoch)."""
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse.ravel()]
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
