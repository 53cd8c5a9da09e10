"""How good are the risks: discrimination, calibration, and cross-validation against logistic regression.

Every metric is computed from (outcome, predicted risk) pairs, so the MLP and the logistic-regression
baseline are judged by the same code on the same patients.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from core.errors import CohortError
from core.model import RiskModel, TrainConfig, _as_outcome, _stratified
from core.schema import Schema

_EPS = 1e-6  # risks are clipped to [eps, 1-eps] before taking logits (a risk of exactly 0 has no logit)


# ---- single-split metrics ---------------------------------------------------------------------------
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _logistic_fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iterations: int = 100) -> np.ndarray | None:
    """Unpenalised logistic regression y ~ X·beta + offset by Newton-Raphson (IRLS) with step halving.
    None when it does not converge (e.g. perfectly separated outcomes, where the estimate is infinite)."""
    beta = np.zeros(X.shape[1])

    def nll(b):
        eta = X @ b + offset
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    current = nll(beta)
    for _ in range(iterations):
        eta = X @ beta + offset
        p = 1.0 / (1.0 + np.exp(-eta))
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
    lp = _logit(p)
    if y.size == 0 or y.min() == y.max():
        return float("nan"), float("nan")
    ones = np.ones((y.size, 1))
    pos, neg = lp[y == 1], lp[y == 0]
    if pos.min() >= neg.max() or neg.min() >= pos.max():
        slope = float("nan")  # the risks separate the outcomes: the fitted slope would be infinite
    else:
        full = _logistic_fit(np.column_stack([ones, lp]), y, np.zeros_like(lp))
        slope = float(full[1]) if full is not None else float("nan")
    citl = _logistic_fit(ones, y, lp)
    intercept = float(citl[0]) if citl is not None else float("nan")
    return slope, intercept


def binary_metrics(y, p, threshold: float = 0.5) -> dict:
    """Discrimination, calibration and the confusion matrix at ``threshold`` (risk >= threshold = positive)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = _as_outcome(y)
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


def calibration_table(y, p, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Observed rate of disease against mean predicted risk per bin — the same bins and numbers as
    ``sklearn.calibration.calibration_curve`` (empty bins dropped), plus each bin's patient count."""
    y = _as_outcome(y)
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


def roc_frame(y, p) -> pd.DataFrame:
    """ROC curve as a tidy table (threshold, fpr, tpr, specificity) for plotting."""
    from sklearn.metrics import roc_curve
    fpr, tpr, thresholds = roc_curve(_as_outcome(y), np.asarray(p, dtype=np.float64))
    return pd.DataFrame({"threshold": np.minimum(thresholds, 1.0), "fpr": fpr, "tpr": tpr,
                         "specificity": 1 - fpr})


def pr_frame(y, p) -> pd.DataFrame:
    """Precision-recall curve as a tidy table (threshold NaN at the curve's recall-0 end point)."""
    from sklearn.metrics import precision_recall_curve
    precision, recall, thresholds = precision_recall_curve(_as_outcome(y), np.asarray(p, dtype=np.float64))
    return pd.DataFrame({"threshold": np.append(thresholds, np.nan), "precision": precision, "recall": recall})


# ---- the logistic-regression baseline ---------------------------------------------------------------
class LogisticBaseline:
    """Logistic regression on the same features: median / most-frequent imputation, standardised numbers
    (ordinal grades as numbers, as the MLP sees them), one-hot codes (an unseen code: all zeros)."""

    def __init__(self, schema: Schema, C: float = 1.0):
        self.schema = schema
        self.C = C
        self.numeric_ = [f.name for f in schema.model_features if f.kind in ("numeric", "ordinal")]
        self.coded_ = [f.name for f in schema.model_features if f.kind in ("binary", "categorical")]

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.numeric_ + self.coded_ if c not in df.columns]
        if missing:
            raise CohortError(f"columns the baseline needs are missing: {missing}")
        out = {}
        for c in self.numeric_:
            out[c] = pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy()
        for c in self.coded_:
            col = df[c]
            # Codes as text so 1 and 1.0 (or "1") are one category; missing stays NaN for the imputer.
            out[c] = np.array([np.nan if pd.isna(v) else _code_text(v) for v in col], dtype=object)
        return pd.DataFrame(out, index=df.index)

    def fit(self, df: pd.DataFrame, y) -> "LogisticBaseline":
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline, make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        parts = []
        if self.numeric_:
            parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                          self.numeric_))
        if self.coded_:
            parts.append(("coded", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                 OneHotEncoder(handle_unknown="ignore")), self.coded_))
        self.pipeline_ = Pipeline([
            ("prepare", ColumnTransformer(parts)),
            ("logistic", LogisticRegression(C=self.C, max_iter=2000)),
        ])
        self.pipeline_.fit(self._frame(df), _as_outcome(y, len(df)))
        return self

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(self._frame(df))[:, 1]


def _code_text(v) -> str:
    try:
        number = float(v)
    except (TypeError, ValueError):
        return str(v).strip()
    return str(int(number)) if number.is_integer() else str(number)


# ---- cross-validation -------------------------------------------------------------------------------
SUMMARY_METRICS = ("roc_auc", "accuracy", "brier", "sensitivity", "specificity", "pr_auc",
                   "calibration_slope", "calibration_intercept")


@dataclass
class CVResult:
    """Per-fold scores and their summary.

    ``folds``: one row per (repeat, fold, model) with the metrics of binary_metrics, n_test, and for the
    MLP the best epoch and fit seconds. ``summary``: per model and metric the mean, sd, and an interval
    that is the 2.5th-97.5th percentile of the fold values (the spread a single held-out fold shows;
    repeated-CV folds overlap, so a t-interval of the mean would claim more precision than there is).
    ``paired``: MLP minus logistic regression per fold (identical folds), summarised the same way.
    ``predictions``: every out-of-fold risk (repeat, fold, row = position in the cohort, model, outcome,
    risk) — one per patient, model and repeat — for pooled calibration plots and metrics.
    """
    folds: pd.DataFrame
    summary: pd.DataFrame
    paired: pd.DataFrame
    predictions: pd.DataFrame
    n_splits: int
    n_repeats: int
    seconds: float
    interval: str = "2.5th-97.5th percentile of fold values"
    config: dict = field(default_factory=dict)

    def mean(self, model: str, metric: str) -> float:
        row = self.summary[(self.summary["model"] == model) & (self.summary["metric"] == metric)]
        return float(row["mean"].iloc[0])

    def pooled(self, model: str) -> dict:
        """binary_metrics of all out-of-fold risks of one repeat pooled (one risk per patient), averaged
        over repeats: steadier calibration estimates than per-fold ones from ~60 patients."""
        per_repeat = [binary_metrics(g["outcome"].to_numpy(), g["risk"].to_numpy())
                      for _, g in self.predictions[self.predictions["model"] == model].groupby("repeat")]
        return {k: float(np.mean([m[k] for m in per_repeat])) for k in per_repeat[0]}

    def to_dict(self) -> dict:
        """JSON-ready summary, paired differences and per-fold scores (not the per-patient risks)."""
        return {
            "n_splits": self.n_splits, "n_repeats": self.n_repeats, "seconds": self.seconds,
            "interval": self.interval, "config": self.config,
            "summary": self.summary.to_dict(orient="records"),
            "paired": self.paired.to_dict(orient="records"),
            "folds": self.folds.to_dict(orient="records"),
        }


def _summarise(frame: pd.DataFrame, by: str, metrics) -> pd.DataFrame:
    rows = []
    for key, group in frame.groupby(by, sort=False):
        for metric in metrics:
            values = group[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            rows.append({by: key, "metric": metric, "mean": float(values.mean()),
                         "sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                         "low": float(np.percentile(values, 2.5)), "high": float(np.percentile(values, 97.5)),
                         "k": int(values.size)})
    return pd.DataFrame(rows)


def cross_validate(df: pd.DataFrame, y, schema: Schema, config: TrainConfig | None = None,
                   n_splits: int = 5, n_repeats: int = 5, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> CVResult:
    """Repeated stratified k-fold CV of the MLP and of logistic regression on identical folds.

    In each fold the MLP holds out a stratified ``config.val_fraction`` of the training part for early
    stopping and fits on the rest; logistic regression (which needs no early stopping) fits on the whole
    training part. Both are scored on the held-out fold. ``progress(done, total)`` after each fold;
    ``should_stop()`` returning True ends CV after the current fold (the result covers finished folds).
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    config = config or TrainConfig()
    y = _as_outcome(y, len(df))
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() < n_splits:
        raise CohortError(f"{n_splits}-fold cross-validation needs at least {n_splits} patients of each outcome; "
                          f"the smaller class has {int(counts.min())}")
    started = time.perf_counter()
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    total = n_splits * n_repeats
    rows, predicted = [], []
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        repeat, fold = divmod(k, n_splits)
        df_train, y_train = df.iloc[train], y[train]
        df_test, y_test = df.iloc[test], y[test]
        fit_rows, val_rows = _stratified(np.arange(len(train)), y_train, config.val_fraction, config.seed + k,
                                         "validation")
        mlp = RiskModel(schema, config).fit(df_train.iloc[fit_rows], y_train[fit_rows],
                                            df_train.iloc[val_rows], y_train[val_rows])
        risk = mlp.predict_risk(df_test)
        predicted.append(pd.DataFrame({"repeat": repeat + 1, "fold": fold + 1, "row": test, "model": "mlp",
                                       "outcome": y_test, "risk": risk}))
        scores = binary_metrics(y_test, risk)
        rows.append({"repeat": repeat + 1, "fold": fold + 1, "model": "mlp", "n_test": len(test), **scores,
                     "best_epoch": mlp.best_epoch_, "epochs": mlp.epochs_run_, "fit_seconds": mlp.fit_seconds_})
        t0 = time.perf_counter()
        baseline = LogisticBaseline(schema).fit(df_train, y_train)
        fit_seconds = time.perf_counter() - t0
        risk = baseline.predict_risk(df_test)
        predicted.append(pd.DataFrame({"repeat": repeat + 1, "fold": fold + 1, "row": test, "model": "logistic",
                                       "outcome": y_test, "risk": risk}))
        scores = binary_metrics(y_test, risk)
        rows.append({"repeat": repeat + 1, "fold": fold + 1, "model": "logistic", "n_test": len(test), **scores,
                     "best_epoch": math.nan, "epochs": math.nan, "fit_seconds": fit_seconds})
        if progress is not None:
            progress(k + 1, total)
        if should_stop is not None and should_stop():
            break
    folds = pd.DataFrame(rows)
    summary = _summarise(folds, "model", SUMMARY_METRICS)
    wide = folds.pivot_table(index=["repeat", "fold"], columns="model", values=list(SUMMARY_METRICS))
    paired_frame = pd.DataFrame({m: wide[(m, "mlp")] - wide[(m, "logistic")] for m in SUMMARY_METRICS})
    paired_frame["comparison"] = "mlp - logistic"
    paired = _summarise(paired_frame.reset_index(drop=True), "comparison", SUMMARY_METRICS)
    return CVResult(folds=folds, summary=summary, paired=paired, predictions=pd.concat(predicted, ignore_index=True),
                    n_splits=n_splits, n_repeats=n_repeats,
                    seconds=time.perf_counter() - started, config=config.model_dump(mode="json"))
