"""The synthetic demo cohort: reproducible, inside the clinic's schema, and Cleveland-like in what matters
for the dashboard (marginals, correlations, prevalence, a learnable outcome that transfers to real patients)."""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conftest import ROOT
from core.data import DEMO_NAME, demo_cohort, demo_params, normal_score_corr
from core.data import CLEVELAND_COLUMNS, cleveland_schema

REAL_PREVALENCE = 139 / 303  # disease (num > 0) in the real Cleveland file


@pytest.fixture(scope="module")
def params() -> dict:
    return demo_params()


@pytest.fixture(scope="module")
def cohort_3000() -> pd.DataFrame:
    return demo_cohort(3000, seed=11)


@pytest.fixture(scope="module")
def cohort_20000() -> pd.DataFrame:
    return demo_cohort(20_000, seed=5)


def read_real(path) -> pd.DataFrame:
    return pd.read_csv(path, header=None, names=CLEVELAND_COLUMNS, na_values="?")


def risk_pipeline(params: dict):
    """The plain clinical baseline: median imputation + scaling for measurements, one-hot codes, logistic."""
    numeric, coded = list(params["numeric"]), list(params["coded"])
    columns = ColumnTransformer([
        ("measurements", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("codes", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore")), coded),
    ])
    return make_pipeline(columns, LogisticRegression(max_iter=2000)), numeric + coded


# ---- reproducibility and layout ----------------------------------------------------------------
def test_same_seed_gives_the_same_cohort():
    pd.testing.assert_frame_equal(demo_cohort(500, seed=3), demo_cohort(500, seed=3))
    pd.testing.assert_frame_equal(demo_cohort(), demo_cohort(303, 7))


def test_another_seed_gives_another_cohort():
    a, b = demo_cohort(500, seed=3), demo_cohort(500, seed=4)
    assert not a.equals(b)
    # Not a shuffle or a shift: most patients differ in age.
    assert (a["age"].to_numpy() != b["age"].to_numpy()).mean() > 0.5


def test_layout_is_the_cleveland_file():
    df = demo_cohort(400, seed=2)
    assert list(df.columns) == CLEVELAND_COLUMNS
    assert len(df) == 400
    assert all(dtype == np.float64 for dtype in df.dtypes)
    empty = demo_cohort(0)
    assert list(empty.columns) == CLEVELAND_COLUMNS and len(empty) == 0


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_a_bad_size_is_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        demo_cohort(bad)


def test_params_copy_cannot_corrupt_the_cohort(params):
    before = demo_cohort(200, seed=9)
    mutated = demo_params()
    mutated["outcome"]["intercept"] = 50.0
    mutated["numeric"]["age"]["quantiles"] = [0.0] * len(mutated["quantile_probs"])
    pd.testing.assert_frame_equal(before, demo_cohort(200, seed=9))


# ---- inside the schema -------------------------------------------------------------------------
def test_values_are_plausible_codes_and_resolution(cohort_20000, params):
    schema = cleveland_schema()
    df = cohort_20000
    for feature in schema.features:
        col = df[feature.name].dropna().to_numpy()
        assert col.size > 0.9 * len(df), feature.name
        if feature.codes:
            allowed = np.array([float(v) for v in feature.code_values()])
            assert np.isin(col, allowed).all(), feature.name
        if feature.min is not None:
            assert col.min() >= feature.min, feature.name
        if feature.max is not None:
            assert col.max() <= feature.max, feature.name
    for name, spec in params["numeric"].items():
        col = df[name].to_numpy() * 10 ** spec["decimals"]
        assert np.allclose(col, np.round(col)), f"{name} is not recorded at the clinic's resolution"
    # Measurements vary like measurements, not a handful of values.
    assert df["chol"].nunique() > 100 and df["oldpeak"].nunique() > 20


def test_missing_only_where_the_real_file_has_it(cohort_20000, params):
    rates = params["missing_rate"]
    n = len(cohort_20000)
    for name in CLEVELAND_COLUMNS:
        observed = cohort_20000[name].isna().mean()
        if rates[name] == 0:
            assert observed == 0, name
        else:
            se = math.sqrt(rates[name] * (1 - rates[name]) / n)
            assert abs(observed - rates[name]) <= 5 * se, name
    assert rates["ca"] > 0 and rates["thal"] > 0


# ---- Cleveland-like ----------------------------------------------------------------------------
def test_prevalence_is_close_to_the_real_one(cohort_3000):
    prevalence = (cohort_3000["num"] > 0).mean()
    assert abs(prevalence - REAL_PREVALENCE) <= 0.06


def test_marginals_match_the_stored_statistics(cohort_3000, params):
    for name, spec in params["numeric"].items():
        col = cohort_3000[name]
        assert abs(col.mean() - spec["mean"]) <= 0.1 * spec["sd"], name
        assert 0.85 <= col.std() / spec["sd"] <= 1.15, name
    for name, spec in params["coded"].items():
        col = cohort_3000[name].dropna()
        for code, freq in zip(spec["codes"], spec["freq"]):
            assert abs((col == code).mean() - freq) <= 0.03, (name, code)


def test_correlations_follow_the_copula(cohort_20000, params):
    names = params["copula"]["features"]
    target = np.array(params["copula"]["normal_score_corr"])
    synthetic = normal_score_corr(cohort_20000, names)
    assert np.abs(synthetic - target).max() <= 0.05
    # The clinically obvious one: older patients reach lower peak heart rates.
    assert synthetic[names.index("age"), names.index("thalach")] < -0.3


def test_severity_mix_among_the_diseased(cohort_20000, params):
    sick = cohort_20000.loc[cohort_20000["num"] > 0, "num"]
    for code, freq in zip(params["severity"]["codes"], params["severity"]["freq"]):
        assert abs((sick == code).mean() - freq) <= 0.03, code
    assert set(cohort_20000["num"].unique()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_outcome_is_learnable_like_the_real_data(cohort_3000, params):
    model, columns = risk_pipeline(params)
    y = (cohort_3000["num"] > 0).astype(int)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    auc = cross_val_score(model, cohort_3000[columns], y, cv=folds, scoring="roc_auc").mean()
    assert 0.80 <= auc <= 0.97, auc


# ---- the stored statistics -----------------------------------------------------------------------
def test_params_hold_summaries_not_patients(params):
    assert params["provenance"] == "derived from summary statistics of UCI Cleveland (CC BY 4.0); no patient rows"
    assert params["name"] == DEMO_NAME
    longest = len(params["quantile_probs"])

    def walk(node, where="params"):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            assert len(node) <= longest, f"{where} has {len(node)} entries: looks like row-level data"
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(params)


# ---- against the real file ---------------------------------------------------------------------
def test_stored_statistics_describe_the_real_file(cleveland_path, params):
    real = read_real(cleveland_path)
    for name, spec in params["numeric"].items():
        assert spec["mean"] == pytest.approx(real[name].mean(), abs=1e-3), name
        assert spec["quantiles"][0] == real[name].min() and spec["quantiles"][-1] == real[name].max(), name
    for name in CLEVELAND_COLUMNS:
        assert params["missing_rate"][name] == pytest.approx(real[name].isna().mean(), abs=1e-4), name
    assert params["outcome"]["prevalence"] == pytest.approx((real["num"] > 0).mean(), abs=1e-4)


def test_model_trained_on_synthetic_patients_works_on_real_ones(cleveland_path, cohort_3000, params):
    real = read_real(cleveland_path)
    model, columns = risk_pipeline(params)
    model.fit(cohort_3000[columns], (cohort_3000["num"] > 0).astype(int))
    auc = roc_auc_score((real["num"] > 0).astype(int), model.predict_proba(real[columns])[:, 1])
    assert auc >= 0.80, auc


def test_script_reproduces_the_committed_params(cleveland_path, tmp_path):
    spec = importlib.util.spec_from_file_location("make_demo_params", ROOT / "scripts" / "make_demo_params.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "demo_cohort.json"
    assert script.main(["--data", str(cleveland_path), "--out", str(out)]) == 0
    fresh = json.loads(out.read_text(encoding="utf-8"))
    committed = json.loads((ROOT / "assets" / "demo_cohort.json").read_text(encoding="utf-8"))

    def same(a, b, where="params"):
        if isinstance(a, dict):
            assert set(a) == set(b), where
            for key in a:
                same(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                same(x, y, f"{where}[{i}]")
        elif isinstance(a, float) or isinstance(b, float):
            assert a == pytest.approx(b, abs=2e-3), where  # rounding may flip a last digit across BLAS builds
        elif where != "params.source.scikit_learn":
            assert a == b, where

    same(fresh, committed)
