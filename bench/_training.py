"""Sections 1 and 2: training time on Cleveland against the peers, and 5x5 CV on identical folds."""
from __future__ import annotations

import numpy as np

from bench import peers
from bench._util import median_seconds, timed
from core.evaluate import cross_validate
from core.metrics import binary_metrics
from core.model import RiskModel, TrainConfig, split


def _fit_default(df, schema, y, train, val, config=None):
    return RiskModel(schema, config or TrainConfig()).fit(df.iloc[train], y[train], df.iloc[val], y[val])


def training(df, schema, y, quick: bool) -> tuple[dict, RiskModel, tuple]:
    """Wall time of one fit on the 70/15/15 split: ours cold and warm, the levers one at a time, the peers."""
    import keras  # noqa: F401  -- imported (and the TF runtime started) before any clock runs,
    import tensorflow as tf  # counted for no contender
    float(tf.reduce_sum(tf.constant([1.0, 2.0])))
    tf.get_logger().setLevel("ERROR")  # the seed recipe's predict() retrace warnings are the peer's, not news

    train, val, test = split(y, TrainConfig())
    auc = lambda p: binary_metrics(y[test], p)["roc_auc"]  # noqa: E731

    # Ours. The first fit in the process builds the Keras model and traces the epoch graph (cold);
    # later fits of the same architecture reuse both (warm).
    model, cold = timed(lambda: _fit_default(df, schema, y, train, val))
    warm, warm_all = median_seconds(lambda: _fit_default(df, schema, y, train, val), 2 if quick else 3)
    ours_auc = auc(model.predict_risk(df.iloc[test]))
    # Lever: early stopping. The same in-graph loop running all 100 epochs (warm: same trainer).
    full_loop, _ = median_seconds(lambda: _fit_default(df, schema, y, train, val,
                                                       TrainConfig(early_stopping=False)), 1 if quick else 2)

    # The peers, each on preprocessing fitted on the training rows only (the default model's).
    pre = model.preprocessor_
    X_train, X_val, X_test = (pre.transform(df.iloc[rows]) for rows in (train, val, test))
    seed_runs = [peers.source_recipe(X_train, y[train], X_val, y[val]) for _ in range(1 if quick else 2)]
    seed_seconds = float(np.median([s for _, s in seed_runs]))
    seed_auc = auc(seed_runs[0][0].predict(X_test, verbose=0)[:, 0])
    # --quick skips this ablation (one more ~15-30 s Keras fit): the levers table then lacks its split.
    no_val_seconds = None if quick else peers.source_recipe_no_validation(X_train, y[train])[1]

    mlp_runs = [peers.fit_sklearn_mlp(X_train, y[train]) for _ in range(3)]
    mlp_seconds = float(np.median([s for _, s in mlp_runs]))
    mlp_auc = auc(mlp_runs[0][0].predict_proba(X_test)[:, 1])
    lr_runs = [peers.fit_logistic(df.iloc[train], y[train], schema) for _ in range(3)]
    lr_seconds = float(np.median([s for _, s in lr_runs]))
    lr_auc = auc(lr_runs[0][0].predict_risk(df.iloc[test]))

    result = {
        "train_rows": len(train), "val_rows": len(val), "test_rows": len(test),
        "train_s_default": warm, "train_s_default_cold": cold, "train_s_default_warm_runs": warm_all,
        "train_epochs_default": model.epochs_run_, "train_best_epoch_default": model.best_epoch_,
        "train_s_seed_recipe": seed_seconds, "train_s_seed_recipe_runs": [s for _, s in seed_runs],
        "train_speedup_vs_seed": seed_seconds / warm, "train_speedup_cold_vs_seed": seed_seconds / cold,
        "train_s_sklearn_mlp": mlp_seconds, "train_s_logreg": lr_seconds,
        "test_auc_default": ours_auc, "test_auc_seed_recipe": seed_auc, "test_auc_sklearn_mlp": mlp_auc,
        "test_auc_logreg": lr_auc,
        # Which lever buys which factor (each a ratio of two wall times measured here, warm unless said):
        "levers": {
            "seed_recipe_s": seed_seconds,
            "keras_fit_without_validation_s": no_val_seconds,
            "in_graph_loop_100_epochs_s": full_loop,
            "in_graph_loop_early_stopping_s": warm,
            "in_graph_loop_early_stopping_cold_s": cold,
            "no_per_epoch_keras_validation_x": seed_seconds / no_val_seconds if no_val_seconds else None,
            "in_graph_epoch_loop_x": no_val_seconds / full_loop if no_val_seconds else None,
            "in_graph_epoch_loop_and_no_keras_validation_x": seed_seconds / full_loop,
            "early_stopping_x": full_loop / warm,
            "retrace_reuse_x": cold / warm,
            "total_warm_x": seed_seconds / warm,
        },
    }
    return result, model, (train, val, test)


def cross_validation(df, schema, y, quick: bool) -> dict:
    """5x5 CV of the default model (and logistic regression, inside cross_validate) on the folds every
    peer shares; MLPClassifier on the same folds; the seed recipe on the first two repeats (5x2) of them,
    since its ~10-20 s a fold would make 5x5 take ~8 minutes. --quick: seed recipe not cross-validated,
    MLPClassifier 5x1."""
    cv = cross_validate(df, y, schema, TrainConfig(), n_splits=5, n_repeats=5, seed=0)
    mlp_folds = cv.folds[cv.folds["model"] == "mlp"]
    result = {
        "cv_5x5_s": cv.seconds,
        "cv_auc_default": cv.mean("mlp", "roc_auc"), "cv_auc_logreg": cv.mean("logistic", "roc_auc"),
        "cv_brier_default": cv.mean("mlp", "brier"), "cv_accuracy_default": cv.mean("mlp", "accuracy"),
        "cv_default_mean_fit_s": float(mlp_folds["fit_seconds"].mean()),
        "cv_default_mean_epochs": float(mlp_folds["epochs"].mean()),
    }
    sk_repeats = 1 if quick else 5
    sk = peers.sklearn_mlp_cv(df, schema, y, 5, sk_repeats, seed=0)
    result.update({"cv_auc_sklearn_mlp": sk["auc"], "cv_sklearn_mlp_design": f"5x{sk_repeats}",
                   "cv_sklearn_mlp_fit_s_total": sk["fit_seconds_total"]})
    if quick:
        result.update({"cv_auc_seed_recipe": None, "cv_seed_recipe_design": "not run (--quick)",
                       "cv_auc_default_same_folds_as_seed": None})
    else:
        seed_repeats = 2
        src = peers.source_cv(df, schema, y, 5, seed_repeats, 0, TrainConfig())
        same = mlp_folds[mlp_folds["repeat"] <= seed_repeats]["roc_auc"].mean()
        result.update({"cv_auc_seed_recipe": src["auc"], "cv_seed_recipe_design": f"5x{seed_repeats}",
                       "cv_seed_recipe_fit_s_total": src["seconds_total"],
                       "cv_auc_default_same_folds_as_seed": float(same)})
    return result
