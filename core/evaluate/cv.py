"""Repeated stratified cross-validation of the MLP against logistic regression on identical folds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from core.data.schema import Schema
from core.errors import CohortError
from core.metrics.discrimination import as_outcome, binary_metrics
from core.model.config import TrainConfig, stratified
from core.model.estimator import RiskModel


class LogisticBaseline:
    """Logistic regression on the same features: median / most-frequent imputation, standardised numbers
    (ordinal grades as numbers, as the MLP sees them), one-hot codes (an unseen code: all zeros)."""

    def __init__(self, schema: Schema, C: float = 1.0):
        self.schema = schema
        self.C = C
        self.numeric_ = [f.name for f in schema.model_features if f.is_measurement]
        self.coded_ = [f.name for f in schema.model_features if f.is_categorical]

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
            # keep_empty_features: a feature with no value in the training split stays a (zero) column, so the
            # design keeps one column per feature (the glass box indexes it by position).
            parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                                   StandardScaler()),
                          self.numeric_))
        if self.coded_:
            parts.append(("coded", make_pipeline(SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                                                 OneHotEncoder(handle_unknown="ignore")), self.coded_))
        self.pipeline_ = Pipeline([
            ("prepare", ColumnTransformer(parts)),
            ("logistic", LogisticRegression(C=self.C, max_iter=2000)),
        ])
        self.pipeline_.fit(self._frame(df), as_outcome(y, len(df)))
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
                   should_stop: Callable[[], bool] | None = None, baseline: bool = True,
                   run: Callable | None = None) -> CVResult:
    """Repeated stratified k-fold CV of the MLP and of logistic regression on identical folds.

    In each fold the MLP holds out a stratified ``config.val_fraction`` of the training part for early
    stopping and fits on the rest; logistic regression (which needs no early stopping) fits on the whole
    training part. Both are scored on the held-out fold. ``progress(done, total)`` after each fold;
    ``should_stop()`` returning True ends CV after the current fold (the result covers finished folds).
    ``baseline=False``: the MLP only (what a grid search needs).

    ``run``: how the folds are fitted. None: here, one after another. Else ``run(fit_fold, shared, folds)``
    must return ``[fit_fold(shared, k) for k in folds]`` (core.workflow.engine.RayMap: the folds as Ray
    tasks); each fold seeds everything it draws, so the numbers are the same. ``should_stop`` is then only
    asked once all folds are done.
    """
    config = config or TrainConfig()
    y = as_outcome(y, len(df))
    started = time.perf_counter()
    splits = _splits(y, n_splits, n_repeats, seed)
    total = len(splits)
    # What a fold needs, as built here: the cohort's table and outcomes, the fold rows, the schema and the
    # settings as JSON (a Ray worker rebuilds them; the in-process run goes through the same rebuild).
    shared = {"df": df, "y": y, "splits": splits, "schema": schema.to_json(),
              "config": config.model_dump(mode="json"), "n_splits": n_splits, "baseline": baseline}
    rows, predicted = [], []
    if run is None:
        for k in range(total):
            fold_rows, fold_predicted = fit_fold(shared, k)
            rows += fold_rows
            predicted += fold_predicted
            if progress is not None:
                progress(k + 1, total)
            if should_stop is not None and should_stop():
                break
    else:
        for fold_rows, fold_predicted in run(fit_fold, shared, range(total), progress=progress):
            rows += fold_rows
            predicted += fold_predicted
    folds = pd.DataFrame(rows)
    summary = _summarise(folds, "model", SUMMARY_METRICS)
    if not baseline:
        return CVResult(folds=folds, summary=summary, paired=pd.DataFrame(),
                        predictions=pd.concat(predicted, ignore_index=True), n_splits=n_splits, n_repeats=n_repeats,
                        seconds=time.perf_counter() - started, config=config.model_dump(mode="json"))
    wide = folds.pivot_table(index=["repeat", "fold"], columns="model", values=list(SUMMARY_METRICS))
    paired_frame = pd.DataFrame({m: wide[(m, "mlp")] - wide[(m, "logistic")] for m in SUMMARY_METRICS})
    paired_frame["comparison"] = "mlp - logistic"
    paired = _summarise(paired_frame.reset_index(drop=True), "comparison", SUMMARY_METRICS)
    return CVResult(folds=folds, summary=summary, paired=paired, predictions=pd.concat(predicted, ignore_index=True),
                    n_splits=n_splits, n_repeats=n_repeats,
                    seconds=time.perf_counter() - started, config=config.model_dump(mode="json"))


def _splits(y: np.ndarray, n_splits: int, n_repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import RepeatedStratifiedKFold

    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() < n_splits:
        raise CohortError(f"{n_splits}-fold cross-validation needs at least {n_splits} patients of each outcome; "
                          f"the smaller class has {int(counts.min())}")
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    return [(np.asarray(train), np.asarray(test)) for train, test in splitter.split(np.zeros(len(y)), y)]


def fit_fold(shared: dict, k: int) -> tuple[list[dict], list[pd.DataFrame]]:
    """Fold ``k`` (0-based over repeats x folds) of :func:`cross_validate`: the MLP (and the logistic
    baseline) fitted on its training part and scored on its test part. Runs in this process or on a Ray
    worker; everything random in it is seeded from the fold (validation split: config.seed + k)."""
    df, y, n_splits = shared["df"], shared["y"], shared["n_splits"]
    schema, config = Schema.from_json(shared["schema"]), TrainConfig(**shared["config"])
    train, test = shared["splits"][k]
    repeat, fold = divmod(k, n_splits)
    df_train, y_train = df.iloc[train], y[train]
    df_test, y_test = df.iloc[test], y[test]
    fit_rows, val_rows = stratified(np.arange(len(train)), y_train, config.val_fraction, config.seed + k,
                                     "validation")
    mlp = RiskModel(schema, config).fit(df_train.iloc[fit_rows], y_train[fit_rows],
                                        df_train.iloc[val_rows], y_train[val_rows])
    risk = mlp.predict_risk(df_test)
    predicted = [pd.DataFrame({"repeat": repeat + 1, "fold": fold + 1, "row": test, "model": "mlp",
                               "outcome": y_test, "risk": risk})]
    rows = [{"repeat": repeat + 1, "fold": fold + 1, "model": "mlp", "n_test": len(test),
             **binary_metrics(y_test, risk),
             "best_epoch": mlp.best_epoch_, "epochs": mlp.epochs_run_, "fit_seconds": mlp.fit_seconds_}]
    if not shared["baseline"]:
        return rows, predicted
    t0 = time.perf_counter()
    logistic = LogisticBaseline(schema).fit(df_train, y_train)
    fit_seconds = time.perf_counter() - t0
    risk = logistic.predict_risk(df_test)
    predicted.append(pd.DataFrame({"repeat": repeat + 1, "fold": fold + 1, "row": test, "model": "logistic",
                                   "outcome": y_test, "risk": risk}))
    rows.append({"repeat": repeat + 1, "fold": fold + 1, "model": "logistic", "n_test": len(test),
                 **binary_metrics(y_test, risk),
                 "best_epoch": math.nan, "epochs": math.nan, "fit_seconds": fit_seconds})
    return rows, predicted


# ---- nested cross-validation: what choosing the settings on the same patients costs -----------------
# The grid bench/cv_cleveland.py's search covered, cut to its two axes that mattered (L2 and learning
# rate; patience, dropout, batch size and the coding of ``ca`` made no difference there): 8 settings, so
# a nested run stays within minutes on two cores. Every other setting is TrainConfig's default.
SELECTION_GRID: tuple[dict, ...] = tuple({"l2": l2, "learning_rate": lr}
                                         for l2 in (0.001, 0.01, 0.03, 0.05) for lr in (0.003, 0.01))


@dataclass
class NestedCVResult:
    """Selected vs nested cross-validated AUC.

    ``selected_auc``: the best mean AUC of the grid, cross-validated on all patients (the number a grid
    search reports, optimistic because the same folds chose the setting). ``nested_auc``: the mean AUC on
    outer test folds of the setting an inner CV on the outer training part chose (outer test patients
    never take part in the choice). ``optimism`` = selected - nested. ``grid``: each candidate's mean AUC
    on all patients; ``outer``: per outer fold the chosen candidate, its inner AUC and its outer AUC.
    """
    selected_auc: float
    selected: dict
    nested_auc: float
    nested_sd: float
    optimism: float
    grid: pd.DataFrame
    outer: pd.DataFrame
    design: dict
    seconds: float

    def to_dict(self) -> dict:
        return {"selected_auc": self.selected_auc, "selected": self.selected, "nested_auc": self.nested_auc,
                "nested_sd": self.nested_sd, "optimism": self.optimism, "design": self.design,
                "seconds": self.seconds, "grid": self.grid.to_dict(orient="records"),
                "outer": self.outer.to_dict(orient="records")}


def _candidate_config(base: TrainConfig, candidate: dict) -> TrainConfig:
    return base.model_copy(update={**candidate, "members": 1})


def grid_search(df: pd.DataFrame, y, schema: Schema, grid=SELECTION_GRID, base: TrainConfig | None = None,
                n_splits: int = 5, n_repeats: int = 1, seed: int = 0, run: Callable | None = None) -> pd.DataFrame:
    """Mean cross-validated AUC of every candidate of ``grid`` (identical folds for all), best first.
    ``run``: as in :func:`cross_validate`; every candidate's folds go to it in one call."""
    base = base or TrainConfig()
    if run is not None:
        return _grid_search_on(run, df, y, schema, tuple(grid), base, n_splits, n_repeats, seed)
    rows = []
    for k, candidate in enumerate(grid):
        result = cross_validate(df, y, schema, _candidate_config(base, candidate), n_splits=n_splits,
                                n_repeats=n_repeats, seed=seed, baseline=False, run=run)
        rows.append({"candidate": k, **candidate, "roc_auc": result.mean("mlp", "roc_auc")})
    # Stable: on a tie the earlier candidate wins, the same way in the inner and the full search.
    return pd.DataFrame(rows).sort_values("roc_auc", ascending=False, kind="stable").reset_index(drop=True)


def _grid_search_on(run: Callable, df, y, schema: Schema, grid: tuple, base: TrainConfig, n_splits: int,
                    n_repeats: int, seed: int) -> pd.DataFrame:
    """grid_search with every candidate's folds in one ``run`` (all of a cluster's cores busy at once, not
    one candidate's few folds at a time): the same folds, fits and mean AUC as one cross_validate each."""
    y = as_outcome(y, len(df))
    splits = _splits(y, n_splits, n_repeats, seed)
    shared = {"df": df, "y": y, "splits": splits, "schema": schema.to_json(), "n_splits": n_splits,
              "baseline": False, "configs": [_candidate_config(base, c).model_dump(mode="json") for c in grid]}
    done = run(fit_grid_fold, shared, [(c, k) for c in range(len(grid)) for k in range(len(splits))])
    rows = []
    for c, candidate in enumerate(grid):
        folds = pd.DataFrame([row for fold_rows, _ in done[c * len(splits):(c + 1) * len(splits)]
                              for row in fold_rows])
        summary = _summarise(folds, "model", SUMMARY_METRICS)  # as CVResult.mean reads it
        auc = summary[(summary["model"] == "mlp") & (summary["metric"] == "roc_auc")]["mean"].iloc[0]
        rows.append({"candidate": c, **candidate, "roc_auc": float(auc)})
    return pd.DataFrame(rows).sort_values("roc_auc", ascending=False, kind="stable").reset_index(drop=True)


def fit_grid_fold(shared: dict, item: tuple[int, int]) -> tuple[list[dict], list[pd.DataFrame]]:
    """Fold k of candidate c of a grid search (``item`` = (c, k)): :func:`fit_fold` with that candidate's
    settings."""
    c, k = item
    return fit_fold({**shared, "config": shared["configs"][c]}, k)


def nested_cross_validate(df: pd.DataFrame, y, schema: Schema, grid=SELECTION_GRID, base: TrainConfig | None = None,
                          outer_splits: int = 5, outer_repeats: int = 1, inner_splits: int = 5,
                          inner_repeats: int = 1, seed: int = 0,
                          progress: Callable[[int, int], None] | None = None,
                          seen: list | None = None, run: Callable | None = None) -> NestedCVResult:
    """Nested CV of the whole recipe "choose the setting from ``grid`` by CV AUC, then train it".

    The selected figure is a grid search on all patients with the inner design (``inner_splits`` x
    ``inner_repeats``), so selected and nested differ only in whether the scored patients took part in the
    choice. ``seen``: a list to which the row positions each inner search used are appended (for tests).
    ``run``: as in :func:`cross_validate`, for every grid search's folds (the outer fits stay here).
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    base = base or TrainConfig()
    grid = tuple(grid)
    if not grid:
        raise CohortError("nested cross-validation needs at least one candidate setting")
    y = as_outcome(y, len(df))
    df = df.reset_index(drop=True)
    started = time.perf_counter()
    total = outer_splits * outer_repeats + 1
    everyone = grid_search(df, y, schema, grid, base, inner_splits, inner_repeats, seed, run=run)
    if progress is not None:
        progress(1, total)
    rows = []
    splitter = RepeatedStratifiedKFold(n_splits=outer_splits, n_repeats=outer_repeats, random_state=seed + 1)
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        if seen is not None:
            seen.append(np.asarray(train))
        inner = grid_search(df.iloc[train], y[train], schema, grid, base, inner_splits, inner_repeats, seed + 2 + k,
                            run=run)
        chosen = grid[int(inner["candidate"].iloc[0])]
        config = _candidate_config(base, chosen)
        fit_rows, val_rows = stratified(np.arange(len(train)), y[train], config.val_fraction, config.seed + k,
                                         "validation")
        model = RiskModel(schema, config).fit(df.iloc[train[fit_rows]], y[train[fit_rows]],
                                              df.iloc[train[val_rows]], y[train[val_rows]])
        auc = binary_metrics(y[test], model.predict_risk(df.iloc[test]))["roc_auc"]
        rows.append({"repeat": k // outer_splits + 1, "fold": k % outer_splits + 1,
                     "candidate": int(inner["candidate"].iloc[0]),
                     **chosen, "inner_auc": float(inner["roc_auc"].iloc[0]), "outer_auc": float(auc),
                     "n_test": len(test)})
        if progress is not None:
            progress(k + 2, total)
    outer = pd.DataFrame(rows)
    selected_auc = float(everyone["roc_auc"].iloc[0])
    nested_auc = float(outer["outer_auc"].mean())
    design = {"grid": [dict(c) for c in grid], "outer": f"{outer_splits}x{outer_repeats}",
              "inner": f"{inner_splits}x{inner_repeats}", "selection": "highest mean ROC AUC", "seed": seed,
              "base": base.model_dump(mode="json")}
    return NestedCVResult(selected_auc=selected_auc, selected=dict(grid[int(everyone["candidate"].iloc[0])]),
                          nested_auc=nested_auc,
                          nested_sd=float(outer["outer_auc"].std(ddof=1)) if len(outer) > 1 else float("nan"),
                          optimism=selected_auc - nested_auc, grid=everyone, outer=outer, design=design,
                          seconds=time.perf_counter() - started)
