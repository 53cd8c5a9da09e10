"""Calibration, decision curves, subgroups and the glass-box model: numbers checked against sklearn,
hand-computed tables and textbook formulas (no TensorFlow here)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.metrics import calibration_curve_ci, expected_calibration_error, wilson_interval
from core.model import Calibration, fit_calibration, fit_isotonic, fit_platt
from core.metrics import decision_curve, net_benefit, threshold_summary, useful_ranges
from core.errors import CohortError
from core.evaluate import GlassBox
from core.data import infer_schema
from core.evaluate import SMALL_GROUP, subgroup_labels, subgroup_metrics
from core.metrics import auc_interval, delong_auc


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---- calibration ------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_curve_matches_sklearn(strategy):
    from sklearn.calibration import calibration_curve
    rng = np.random.default_rng(3)
    p = rng.beta(2, 3, 400)
    y = (rng.random(400) < p ** 1.3).astype(float)
    ours = calibration_curve_ci(y, p, n_bins=8, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(ours["observed_rate"], prob_true, atol=1e-12)
    np.testing.assert_allclose(ours["mean_predicted"], prob_pred, atol=1e-12)
    assert (ours["low"] <= ours["observed_rate"]).all() and (ours["observed_rate"] <= ours["high"]).all()
    assert ours["events"].sum() == y.sum()


def test_wilson_known_answers():
    low, high = wilson_interval([5, 0, 10], [10, 10, 10])
    # Textbook values: 5/10 -> 0.2366-0.7634; 0/10 -> 0-0.2775; 10/10 -> 0.7225-1
    np.testing.assert_allclose(low, [0.2366, 0.0, 0.7225], atol=5e-5)
    np.testing.assert_allclose(high, [0.7634, 0.2775, 1.0], atol=5e-5)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_ece_hand_computed():
    # bins [0,.1): one patient, |0 - .05|; [.1,.2): two, |1 - .30|; [.9,1]: one, |1 - .95| -> (.05+.7+.05)/4
    assert expected_calibration_error([0, 1, 0, 1], [0.05, 0.15, 0.15, 0.95]) == pytest.approx(0.2)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == pytest.approx(0.0)


def test_platt_recovers_known_map_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < _sigmoid(0.5 * z - 0.7)).astype(float)
    cal = fit_platt(z, y)
    assert cal.a == pytest.approx(0.5, abs=0.03) and cal.b == pytest.approx(-0.7, abs=0.05)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=5000).fit(z[:, None], y)
    assert cal.a == pytest.approx(ref.coef_[0, 0], abs=1e-4) and cal.b == pytest.approx(ref.intercept_[0], abs=1e-4)
    np.testing.assert_allclose(cal.apply_logits(z), _sigmoid(cal.a * z + cal.b))
    np.testing.assert_allclose(cal.apply_risk(_sigmoid(z)), _sigmoid(cal.a * z + cal.b), atol=1e-9)


def test_platt_for_an_ensemble_fits_the_mean_of_members():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 2, 3000)
    members = np.stack([base + rng.normal(0, 0.5, base.size) for _ in range(4)])
    y = (rng.random(base.size) < _sigmoid(0.6 * base + 0.4)).astype(float)
    cal = fit_platt(members, y)

    def nll(a, b):
        p = _sigmoid(a * members + b).mean(axis=0)
        return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))

    best = nll(cal.a, cal.b)
    for da, db in [(0.02, 0), (-0.02, 0), (0, 0.02), (0, -0.02)]:
        assert best <= nll(cal.a + da, cal.b + db)


def test_auto_picks_lowest_cross_validated_brier_and_recalibrates_a_miscalibrated_model():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 150)
    y = (rng.random(z.size) < _sigmoid(0.4 * z - 1.0)).astype(float)  # risks far too extreme and too high
    cal = fit_calibration(z, y, method="auto")
    assert set(cal.cv_brier) == {"none", "platt"}  # 150 < 200 patients: isotonic not tried
    assert cal.method == min(cal.cv_brier, key=cal.cv_brier.get) == "platt"
    assert cal.chosen_by.startswith("validation brier")


def test_isotonic_is_monotone_and_round_trips():
    rng = np.random.default_rng(4)
    p = rng.random(300)
    y = (rng.random(300) < p ** 2).astype(float)
    cal = fit_isotonic(p, y)
    grid = np.linspace(0, 1, 101)
    out = cal.apply_risk(grid)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1
    again = Calibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(again.apply_risk(grid), out)
    assert not again.folds_into_networks
    bad = cal.to_dict()
    bad["y"] = bad["y"][::-1]
    with pytest.raises(ValueError):
        Calibration.from_dict(bad)
    with pytest.raises(ValueError):
        Calibration.from_dict({"method": "platt", "a": float("nan"), "b": 0})


def test_calibration_refuses_one_outcome_class():
    with pytest.raises(CohortError):
        fit_platt(np.zeros(10), np.zeros(10))


# ---- decision curves --------------------------------------------------------------------------------
def test_net_benefit_hand_computed_table():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.35, 0.1, 0.2])
    # pt = 0.3: treated = risks .9, .4, .35 -> TP 2, FP 1; NB = 2/5 - 1/5 * .3/.7
    assert net_benefit(y, p, 0.3) == pytest.approx(0.4 - 0.2 * 3 / 7)
    curve = decision_curve(y, p, thresholds=[0.3, 0.5])
    assert curve["net_benefit"].tolist() == pytest.approx([0.4 - 0.2 * 3 / 7, 0.2])
    # treat all: prevalence .6 - .4 * odds
    assert curve["treat_all"].tolist() == pytest.approx([0.6 - 0.4 * 3 / 7, 0.6 - 0.4])
    assert (curve["treat_none"] == 0).all()
    assert curve[["tp", "fp"]].values.tolist() == [[2, 1], [1, 0]]


def test_decision_curve_perfect_model_and_useful_range():
    y = np.array([0] * 60 + [1] * 40, dtype=float)
    p = np.where(y == 1, 0.9, 0.0)
    curve = decision_curve(y, p)
    # a perfect model's NB is the prevalence at every threshold below its positive risk
    assert np.allclose(curve["net_benefit"], 0.4)
    assert useful_ranges(curve) == [{"from": pytest.approx(0.01), "to": pytest.approx(0.6), "at_first": True,
                                     "at_last": True}]
    useless = decision_curve(y, np.full(100, 0.4))
    assert useful_ranges(useless) == []


def test_threshold_summary_per_100():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.35, 0.1, 0.2])
    s = threshold_summary(y, p, 0.3)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (2, 1, 1, 1)
    assert s["sensitivity"] == pytest.approx(2 / 3) and s["specificity"] == pytest.approx(0.5)
    assert s["ppv"] == pytest.approx(2 / 3) and s["npv"] == pytest.approx(0.5)
    assert (s["true_positives_per_100"], s["false_alarms_per_100"], s["missed_per_100"]) == (40, 20, 20)
    with pytest.raises(ValueError):
        threshold_summary(y, p, 1.0)


# ---- subgroups --------------------------------------------------------------------------------------
def _delong_brute(y, p):
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


def test_delong_matches_brute_force_and_sklearn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(5)
    y = (rng.random(120) < 0.4).astype(float)
    p = np.round(rng.random(120) * 0.6 + 0.3 * y, 2)  # rounded: ties included
    auc, se = delong_auc(y, p)
    brute_auc, brute_se = _delong_brute(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p)) == pytest.approx(brute_auc)
    assert se == pytest.approx(brute_se)
    _, low, high = auc_interval(y, p)  # on the logit scale
    half = 1.959964 * se / (auc * (1 - auc))
    assert math.log(low / (1 - low)) == pytest.approx(math.log(auc / (1 - auc)) - half, abs=1e-6)
    assert math.log(high / (1 - high)) == pytest.approx(math.log(auc / (1 - auc)) + half, abs=1e-6)
    assert all(math.isnan(v) for v in delong_auc(np.ones(5), np.random.default_rng(0).random(5)))


def test_subgroups_flag_small_groups_and_keep_them():
    df = pd.DataFrame({"sex": [1.0] * 50 + [0.0] * 10 + [np.nan] * 2, "age": np.linspace(30, 80, 62)})
    rng = np.random.default_rng(6)
    y = (rng.random(62) < 0.5).astype(float)
    y[:2], y[50:52] = [0, 1], [0, 1]
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.1, 62), 0.01, 0.99)
    schema = infer_schema(df.assign(num=y), target="num")
    labels = subgroup_labels(df, "age", schema)
    assert list(labels.cat.categories[:4]) == ["< 45", "45–<55", "55–<65", "≥ 65"]
    table = subgroup_metrics(y, p, subgroup_labels(df, "sex", schema))
    assert table["n"].sum() == 62
    small = table.set_index("group")["small"]
    assert small.sum() == 2 and not small[table.loc[table["n"] == 50, "group"].iloc[0]]
    assert (table["n"] < SMALL_GROUP).tolist() == table["small"].tolist()
    assert "missing" in table["group"].tolist()


# ---- glass box --------------------------------------------------------------------------------------
def test_glassbox_odds_ratio_of_a_2x2_table_is_woolf():
    # exposed: 30 with / 20 without the outcome; unexposed: 15 with / 35 without
    x = np.array([1] * 50 + [0] * 50, dtype=float)
    y = np.array([1] * 30 + [0] * 20 + [1] * 15 + [0] * 35, dtype=float)
    df = pd.DataFrame({"exposed": x, "num": y})
    schema = infer_schema(df, target="num")
    assert schema["exposed"].kind == "binary"
    glass = GlassBox(schema).fit(df[["exposed"]], y)
    row = glass.odds_ratios().iloc[0]
    a, b, c, d = 30, 20, 15, 35
    assert row["odds_ratio"] == pytest.approx(a * d / (b * c), rel=1e-6)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert row["low"] == pytest.approx(math.exp(math.log(a * d / (b * c)) - 1.959964 * se), rel=1e-5)
    assert row["high"] == pytest.approx(math.exp(math.log(a * d / (b * c)) + 1.959964 * se), rel=1e-5)
    np.testing.assert_allclose(glass.predict_risk(df[["exposed"]])[[0, 99]], [0.6, 0.3], atol=1e-6)


def test_glassbox_matches_unpenalised_sklearn(cleveland_path):
    from sklearn.linear_model import LogisticRegression
    from core.data import load_cohort
    cohort = load_cohort(cleveland_path)
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    glass = GlassBox(cohort.schema).fit(df, y)
    assert not glass.penalised_
    ref = LogisticRegression(C=np.inf, max_iter=5000, tol=1e-10).fit(glass._design(df), y)
    np.testing.assert_allclose(glass.coef_, ref.coef_[0], atol=2e-3)
    contrib = glass.contributions(df.iloc[:5])
    eta = glass.intercept_ + glass.mean_ @ glass.coef_ + contrib.sum(axis=1).to_numpy()
    np.testing.assert_allclose(_sigmoid(eta), glass.predict_risk(df.iloc[:5]), atol=1e-12)
    ors = glass.odds_ratios()
    assert ((ors["low"] < ors["odds_ratio"]) & (ors["odds_ratio"] < ors["high"])).all()
    assert ors.loc[ors["feature"] == "sex", "term"].iloc[0] == "male vs female"


def test_a_missing_odds_ratio_interval_says_why():
    """Issue 16.8: with separated outcomes every interval cell showed "—–—"; the table now says why."""
    rng = np.random.default_rng(3)
    n = 60
    exposed = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    age = rng.normal(55, 8, n)
    # Age and exposure together separate the outcome perfectly (neither alone does, so neither is set aside
    # as a leak): the unpenalised estimate is infinite.
    y = (age + 12 * exposed > 60).astype(float)
    df = pd.DataFrame({"exposed": exposed, "age": age, "y": y})
    schema = infer_schema(df, target="y", positive_rule="== 1")
    glass = GlassBox(schema).fit(df[["exposed", "age"]], y)
    assert glass.penalised_
    ors = glass.odds_ratios()
    assert ors["low"].isna().all() and (ors["no_interval"] == "separated").all()
    fine = GlassBox(schema).fit(df[["exposed", "age"]], rng.integers(0, 2, n).astype(float))
    assert (fine.odds_ratios()["no_interval"] == "").all()


def test_an_odds_ratio_against_clinical_knowledge_is_named_and_none_otherwise():
    """QA: the logistic second opinion showed age's odds ratio below 1 (older = lower risk) without a word;
    the network's own contradictions are said, so the second opinion's must be too."""
    from core.data import cleveland_schema, demo_cohort
    from core.evaluate import odds_ratio_contradictions
    schema = cleveland_schema()
    df = demo_cohort(n=400, seed=3)
    features = [f.name for f in schema.model_features]
    honest = GlassBox(schema).fit(df[features], (df["num"] > 0).astype(float).to_numpy())
    assert not odds_ratio_contradictions(honest, honest.odds_ratios())["certain"].any()
    rng = np.random.default_rng(0)
    # A selected sample where the older patients were the healthier ones: age "protects", sex as usual.
    z = -(df["age"] - 55) / 4 + 1.5 * df["sex"] - 0.8
    y = (rng.random(len(df)) < _sigmoid(z.to_numpy())).astype(float)
    flipped = GlassBox(schema).fit(df[features], y)
    ors = flipped.odds_ratios()
    named = odds_ratio_contradictions(flipped, ors)
    sure = named[named["certain"]]
    assert sure["feature"].tolist() == ["age"] and (sure["high"] < 1).all()
    assert "sex" not in named["feature"].tolist()
    unsure = named[~named["certain"]]  # on the wrong side by its point estimate only: its interval holds 1
    assert ((unsure["low"] < 1) & (1 < unsure["high"])).all()


def test_cleveland_age_odds_ratio_below_one_is_flagged_as_no_evidence(cleveland_path):
    """On Cleveland the adjusted age odds ratio is 0.87 (0.56-1.35): not a contradiction, but below 1."""
    from core.data import load_cohort
    from core.evaluate import odds_ratio_contradictions
    cohort = load_cohort(cleveland_path)
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    glass = GlassBox(cohort.schema).fit(df, y)
    named = odds_ratio_contradictions(glass, glass.odds_ratios())
    age = named[named["feature"] == "age"]
    assert len(age) == 1 and not age["certain"].iloc[0] and age["odds_ratio"].iloc[0] < 1 < age["high"].iloc[0]
    assert not named["certain"].any()
