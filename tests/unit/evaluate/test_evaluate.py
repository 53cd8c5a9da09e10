"""Evaluation metrics against scikit-learn, calibration, and cross-validation on identical folds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, average_precision_score, brier_score_loss, confusion_matrix,
                             precision_score, recall_score, roc_auc_score)

from core.evaluate import cv as evaluate
from core.errors import CohortError
from core.evaluate import LogisticBaseline, cross_validate
from core.metrics import binary_metrics, calibration_slope_intercept, calibration_table, pr_frame, roc_frame
from core.model import RiskModel, TrainConfig
from core.data import infer_schema

# A hand table: 10 patients, outcome and predicted risk (one tie across classes at 0.6).
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], dtype=float)
P = np.array([0.9, 0.8, 0.6, 0.3, 0.6, 0.2, 0.1, 0.4, 0.55, 0.45])


def test_binary_metrics_match_sklearn():
    m = binary_metrics(Y, P, threshold=0.5)
    pred = (P >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(Y, pred))
    assert m["sensitivity"] == pytest.approx(recall_score(Y, pred))
    assert m["specificity"] == pytest.approx(recall_score(Y, pred, pos_label=0))
    assert m["ppv"] == pytest.approx(precision_score(Y, pred))
    assert m["npv"] == pytest.approx(precision_score(Y, pred, pos_label=0))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y, P))
    assert m["pr_auc"] == pytest.approx(average_precision_score(Y, P))
    assert m["brier"] == pytest.approx(brier_score_loss(Y, P))
    tn, fp, fn, tp = confusion_matrix(Y, pred).ravel()
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)
    assert m["n"] == 10 and m["prevalence"] == pytest.approx(0.5)


def test_threshold_moves_the_confusion_matrix():
    low, high = binary_metrics(Y, P, threshold=0.25), binary_metrics(Y, P, threshold=0.85)
    assert low["sensitivity"] == 1.0 and low["specificity"] < high["specificity"]
    assert high["tp"] == 1 and high["fp"] == 0
    # No patient predicted positive: PPV is undefined, not a division error.
    assert np.isnan(binary_metrics(Y, P, threshold=0.99)["ppv"])


def test_one_outcome_class_gives_nan_auc_not_an_error():
    m = binary_metrics(np.zeros(5), np.linspace(0.1, 0.4, 5))
    assert np.isnan(m["roc_auc"]) and np.isnan(m["calibration_slope"]) and np.isnan(m["sensitivity"])
    assert m["specificity"] == pytest.approx(1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(CohortError):
        binary_metrics([0, 1, np.nan], [0.2, 0.3, 0.4])
    with pytest.raises(CohortError):
        binary_metrics([0, 1], [0.2, 0.3, 0.4])


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_table_matches_sklearn(strategy):
    rng = np.random.default_rng(1)
    p = rng.beta(2, 3, size=500)
    y = (rng.random(500) < p).astype(float)
    table = calibration_table(y, p, n_bins=8, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(table["observed_rate"], prob_true)
    np.testing.assert_allclose(table["mean_predicted"], prob_pred)
    assert table["n"].sum() == 500
    assert np.all(table["lower"] <= table["mean_predicted"]) and np.all(table["mean_predicted"] <= table["upper"])


def test_perfect_calibration_has_slope_one_intercept_zero():
    rng = np.random.default_rng(2)
    p = 1 / (1 + np.exp(-rng.normal(0, 1.5, size=40_000)))
    y = (rng.random(p.size) < p).astype(float)
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(1.0, abs=0.05)
    assert intercept == pytest.approx(0.0, abs=0.05)
    # Risks pushed to the extremes (logit doubled) need a slope of about 1/2 to be right again.
    logit = np.log(p / (1 - p))
    too_extreme = 1 / (1 + np.exp(-2 * logit))
    assert calibration_slope_intercept(y, too_extreme)[0] == pytest.approx(0.5, abs=0.03)
    # Risks that are too low on average have a positive calibration-in-the-large.
    too_low = 1 / (1 + np.exp(-(logit - 0.7)))
    assert calibration_slope_intercept(y, too_low)[1] == pytest.approx(0.7, abs=0.05)


def test_calibration_slope_matches_unpenalised_logistic_regression():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, size=300)
    y = (rng.random(300) < p ** 1.5).astype(float)
    slope, _ = calibration_slope_intercept(y, p)
    logit = np.log(p / (1 - p))[:, None]
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(logit, y)
    assert slope == pytest.approx(reference.coef_[0, 0], rel=1e-4)


def test_separated_outcomes_give_nan_slope():
    slope, intercept = calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert np.isnan(slope)
    assert np.isfinite(intercept)


def test_curve_frames_for_plotting():
    roc = roc_frame(Y, P)
    assert list(roc.columns) == ["threshold", "fpr", "tpr", "specificity"]
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc_auc_score(Y, P))
    pr = pr_frame(Y, P)
    assert list(pr.columns) == ["threshold", "precision", "recall"]
    assert pr["recall"].iloc[-1] == 0 and np.isnan(pr["threshold"].iloc[-1])


# ---- baseline and cross-validation ----------------------------------------------------------------
def _synthetic(n=120, seed=0):
    rng = np.random.default_rng(seed)
    smoker = rng.choice(["Yes", "No"], size=n)
    grade = rng.integers(1, 4, size=n).astype(float)
    bp = rng.normal(130, 15, size=n)
    logit = 1.2 * (smoker == "Yes") + 0.05 * (bp - 130) + 0.4 * (grade - 2) - 0.5
    outcome = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    df = pd.DataFrame({"bp": bp, "smoker": smoker, "grade": grade, "outcome": outcome})
    df.loc[[2, 5], "bp"] = np.nan
    df.loc[7, "smoker"] = np.nan
    schema = infer_schema(df, target="outcome", positive_rule="> 0")
    return df, schema, schema.outcome(df).to_numpy()


def test_logistic_baseline_handles_text_codes_missing_and_unseen_codes():
    df, schema, y = _synthetic()
    baseline = LogisticBaseline(schema).fit(df, y)
    risk = baseline.predict_risk(df)
    assert np.all((risk > 0) & (risk < 1))
    assert roc_auc_score(y, risk) > 0.7
    unseen = df.iloc[:3].assign(smoker="Sometimes")
    assert np.all(np.isfinite(baseline.predict_risk(unseen)))


def test_cross_validation_scores_both_models_on_identical_folds(monkeypatch):
    df, schema, y = _synthetic()
    seen: dict[str, list] = {"mlp": [], "logistic": []}
    real_mlp, real_lr = RiskModel.predict_risk, LogisticBaseline.predict_risk

    def mlp_predict(self, frame):
        seen["mlp"].append(sorted(frame.index))
        return real_mlp(self, frame)

    def lr_predict(self, frame):
        seen["logistic"].append(sorted(frame.index))
        return real_lr(self, frame)

    monkeypatch.setattr(RiskModel, "predict_risk", mlp_predict)
    monkeypatch.setattr(LogisticBaseline, "predict_risk", lr_predict)
    progress = []
    result = cross_validate(df, y, schema, TrainConfig(epochs=8, patience=3), n_splits=2, n_repeats=2, seed=0,
                            progress=lambda done, total: progress.append((done, total)))
    assert seen["mlp"] == seen["logistic"] and len(seen["mlp"]) == 4
    # Each repeat's two folds partition the patients.
    for r in (0, 2):
        assert sorted(seen["mlp"][r] + seen["mlp"][r + 1]) == list(df.index)
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    folds = result.folds
    assert len(folds) == 8 and set(folds["model"]) == {"mlp", "logistic"}
    assert folds.groupby("model").size().to_dict() == {"logistic": 4, "mlp": 4}
    assert set(zip(folds["repeat"], folds["fold"])) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    lr_auc = folds.loc[folds["model"] == "logistic", "roc_auc"]
    assert result.mean("logistic", "roc_auc") == pytest.approx(lr_auc.mean())
    row = result.summary[(result.summary["model"] == "logistic") & (result.summary["metric"] == "roc_auc")].iloc[0]
    assert row["low"] == pytest.approx(np.percentile(lr_auc, 2.5))
    assert row["high"] == pytest.approx(np.percentile(lr_auc, 97.5))
    diff = result.paired[result.paired["metric"] == "roc_auc"]["mean"].iloc[0]
    assert diff == pytest.approx(result.mean("mlp", "roc_auc") - result.mean("logistic", "roc_auc"))
    assert result.to_dict()["n_splits"] == 2
    # Out-of-fold risks: each patient once per repeat and model, with its own outcome.
    pred = result.predictions
    assert len(pred) == 2 * 2 * len(df)
    assert (pred.groupby(["model", "repeat"])["row"].apply(lambda r: sorted(r) == list(range(len(df))))).all()
    np.testing.assert_array_equal(pred["outcome"].to_numpy(), y[pred["row"].to_numpy()])
    pooled = result.pooled("logistic")
    lr_pred = pred[pred["model"] == "logistic"]
    expected = np.mean([roc_auc_score(g["outcome"], g["risk"]) for _, g in lr_pred.groupby("repeat")])
    assert pooled["roc_auc"] == pytest.approx(expected)


def test_cross_validation_refuses_too_few_patients_per_class():
    df, schema, y = _synthetic(n=30)
    keep = np.flatnonzero(y == 0).tolist() + np.flatnonzero(y == 1)[:3].tolist()
    small = df.iloc[keep]
    with pytest.raises(CohortError, match="5-fold"):
        cross_validate(small, y[keep], schema, n_splits=5, n_repeats=1)


def test_should_stop_ends_cross_validation_early():
    df, schema, y = _synthetic()
    result = cross_validate(df, y, schema, TrainConfig(epochs=3), n_splits=2, n_repeats=2,
                            should_stop=lambda: True)
    assert len(result.folds) == 2  # one fold, two models
    assert evaluate.SUMMARY_METRICS[0] == "roc_auc"
