"""The peers the engine is measured against, run in the same process on the same data and folds.

- the source document's recipe: Keras Sequential 10-5-1 relu, Adam, binary cross-entropy, ``fit`` for
  100 epochs, batch 32, ``validation_data`` every epoch, verbose 0 (``bench.cv_cleveland.source_recipe``);
  and the same without ``validation_data`` (to price the per-epoch Keras validation pass on its own);
- scikit-learn ``MLPClassifier(hidden_layer_sizes=(10, 5))`` with its defaults (Adam, 200 iterations);
- logistic regression (``core.evaluate.LogisticBaseline``: the baseline cross_validate reports);
- ``shap.KernelExplainer`` on the same model function and background rows as our exact explainer.

Every peer gets preprocessing fitted on its training rows only (``core.preprocess.Preprocessor``).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from bench.cv_cleveland import source_cv, source_recipe  # noqa: F401  (re-exported: one home for peers)
from core.evaluate import LogisticBaseline
from core.metrics import binary_metrics
from core.model import Preprocessor


def source_recipe_no_validation(X_train, y_train, seed: int = 42):
    """The source recipe minus ``validation_data``: what Keras' per-epoch validation pass costs."""
    return source_recipe(X_train, y_train, seed=seed)


def sklearn_mlp(seed: int = 42):
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(hidden_layer_sizes=(10, 5), random_state=seed)


def fit_sklearn_mlp(X_train, y_train, seed: int = 42):
    """Fit with scikit-learn's defaults (it stops at max_iter=200 without converging: that is the peer)."""
    from sklearn.exceptions import ConvergenceWarning
    model = sklearn_mlp(seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    return model, time.perf_counter() - started


def fit_logistic(df_train, y_train, schema):
    started = time.perf_counter()
    model = LogisticBaseline(schema).fit(df_train, y_train)
    return model, time.perf_counter() - started


def folds(y, n_splits: int, n_repeats: int, seed: int = 0):
    """The folds core.evaluate.cross_validate uses (same splitter and seed): identical for every peer.
    RepeatedStratifiedKFold draws repeat r the same whatever n_repeats is, so a 5x2 run is the first
    two repeats of the 5x5."""
    from sklearn.model_selection import RepeatedStratifiedKFold
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def sklearn_mlp_cv(df, schema, y, n_splits: int, n_repeats: int, seed: int = 0) -> dict:
    """MLPClassifier on the cross_validate folds, fitted on each whole training part (it has no early
    stopping by default, so it needs no validation rows)."""
    aucs, seconds = [], []
    for train, test in folds(y, n_splits, n_repeats, seed):
        pre = Preprocessor(schema).fit(df.iloc[train])
        model, sec = fit_sklearn_mlp(pre.transform(df.iloc[train]), y[train])
        aucs.append(binary_metrics(y[test], model.predict_proba(pre.transform(df.iloc[test]))[:, 1])["roc_auc"])
        seconds.append(sec)
    return {"auc": float(np.mean(aucs)), "fold_aucs": aucs, "fit_seconds_total": float(np.sum(seconds)),
            "folds": len(aucs)}


def kernel_explainer(model, rows_raw: np.ndarray, background_raw: np.ndarray) -> dict:
    """shap.KernelExplainer (default nsamples: 2*13 + 2048 coalitions a row) on the model's risk over the
    same raw clinical matrix and background our exact explainer uses."""
    import shap
    explainer = shap.KernelExplainer(model.predict_risk_raw, background_raw)
    started = time.perf_counter()
    values = np.asarray(explainer.shap_values(rows_raw, silent=True))
    seconds = time.perf_counter() - started
    output = model.predict_risk_raw(rows_raw)
    additivity = float(np.max(np.abs(explainer.expected_value + values.sum(axis=1) - output)))
    return {"rows": len(rows_raw), "seconds": seconds, "rows_per_s": len(rows_raw) / seconds,
            "shap_values": values, "additivity_max_error": additivity,
            "background_rows": len(background_raw)}
