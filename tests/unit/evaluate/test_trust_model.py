"""Ensemble members, recalibration folded into the networks, bundles v2, out-of-distribution checks,
external validation and the `validate` command, on the real Cleveland file and the synthetic demo cohort."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data import cohort_from_frame, load_cohort
from core.data import demo_cohort
from core.errors import BundleError, CohortError
from core.explain import explain
from core.evaluate import external_cohort, external_extra, recalibrate_intercept, validate_external
from core.model import TrainConfig, add_members, load_bundle, save_bundle
from core.workflow import train_on_cohort
from core.data import cleveland_schema
from core.evaluate import trust
from bundle_edit import write_meta

ROOT = Path(__file__).resolve().parents[3]
FAST = TrainConfig(epochs=30, patience=5)


@pytest.fixture(scope="module")
def cohort(cleveland_path):
    return load_cohort(cleveland_path)


@pytest.fixture(scope="module")
def single(cohort):
    return train_on_cohort(cohort, FAST)


@pytest.fixture(scope="module")
def ensemble(cohort):
    return train_on_cohort(cohort, FAST.model_copy(update={"members": 3}))


def test_ensemble_members_share_preprocessing_and_first_member_is_the_single_model(single, ensemble, cohort):
    m1, m3 = single.model, ensemble.model
    assert m1.n_members_ == 1 and m3.n_members_ == 3
    raw = m1.preprocessor_.encode(cohort.df.iloc[:40])
    np.testing.assert_allclose(m3.base_networks_[0].proba(m1.preprocessor_.transform_raw(raw)),
                               m1.predict_risk_raw(raw), atol=1e-6)
    members = m3.member_risks_raw(raw)
    assert members.shape == (3, 40)
    assert np.ptp(members, axis=0).max() > 1e-3  # bootstrap members differ
    risk, low, high = m3.predict_interval_raw(raw)
    np.testing.assert_allclose(risk, members.mean(axis=0))
    assert np.all(low <= high) and np.all(low >= members.min(axis=0) - 1e-12) and np.all(high <= members.max(axis=0) + 1e-12)
    r1, l1, h1 = m1.predict_interval_raw(raw)
    np.testing.assert_array_equal(l1, r1) and np.testing.assert_array_equal(h1, r1)


def test_platt_folds_into_the_networks_and_shap_stays_additive(ensemble, cohort):
    model = ensemble.model
    sp = trust.model_splits(model, cohort, cohort.fingerprint)
    calibrated = trust.recalibrate(model, cohort, sp, method="platt")
    assert calibrated.calibration_.method == "platt" and model.calibration_.method == "none"  # original untouched
    raw = model.preprocessor_.encode(cohort.df.iloc[sp.test])
    z = model.base_logits_raw(raw)
    cal = calibrated.calibration_
    expected = (1 / (1 + np.exp(-(cal.a * z + cal.b)))).mean(axis=0)
    np.testing.assert_allclose(calibrated.predict_risk_raw(raw), expected, atol=1e-10)
    expl = explain(calibrated.preprocessor_, calibrated.networks_, raw[:5], calibrated.background_)
    np.testing.assert_allclose(expl.output, expected[:5], atol=1e-9)
    np.testing.assert_allclose(expl.base_value + expl.shap_values.sum(axis=1), expected[:5], atol=1e-9)


def test_platt_improves_calibration_of_an_overconfident_model_on_the_test_split(cohort):
    # No L2 and no early stopping: risks far too extreme (slope well below 1). Platt fitted on cross-fitted
    # risks of the training split (networks of the same recipe that never saw the patient) must bring the
    # test split's slope towards 1 and lower the Brier score. (Tampering with a trained model's weights
    # cannot stand in for this any more: cross-fitting re-runs the recipe, not the tampered model.)
    over = train_on_cohort(cohort, TrainConfig(l2=0.0, early_stopping=False, epochs=200))
    sp = trust.model_splits(over.model, cohort, cohort.fingerprint)
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    fixed = trust.recalibrate(over.model, cohort, sp, method="platt")
    report = trust.calibration_report(fixed, df.iloc[sp.test], y[sp.test])
    assert report["before"]["calibration_slope"] < 0.6
    assert abs(report["after"]["calibration_slope"] - 1) < abs(report["before"]["calibration_slope"] - 1) - 0.3
    assert report["after"]["brier"] < report["before"]["brier"]


def test_model_splits_refuse_another_cohort(single, cohort):
    other = cohort_from_frame(demo_cohort(), cleveland_schema(), name="demo", synthetic=True)
    with pytest.raises(CohortError, match="not the table"):
        trust.model_splits(single.model, other, cohort.fingerprint)
    sp = trust.model_splits(single.model, cohort, cohort.fingerprint)
    np.testing.assert_array_equal(sp.test, single.test_index)


def test_ensemble_bundle_round_trip_with_calibration(ensemble, cohort, tmp_path):
    model = ensemble.model
    sp = trust.model_splits(model, cohort, cohort.fingerprint)
    calibrated = trust.recalibrate(model, cohort, sp, method="platt")
    path = save_bundle(calibrated, tmp_path / "b", metrics={}, data_fingerprint=cohort.fingerprint, name="ens")
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["version"] == 3 and meta["members"] == ["model.keras", "member_2.keras", "member_3.keras"]
    assert set(meta["files"]) >= set(meta["members"])
    loaded = load_bundle(path)
    raw = model.preprocessor_.encode(cohort.df.iloc[:30])
    np.testing.assert_allclose(loaded.predict_risk_raw(raw), calibrated.predict_risk_raw(raw), atol=1e-6)
    assert loaded.n_members_ == 3 and loaded.calibration_.method == "platt"
    assert loaded.input_reference_ is not None
    # A member file edited: refused by its hash.
    with open(path / "member_2.keras", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(BundleError, match="member_2.keras"):
        load_bundle(path)


def test_bundle_member_names_are_an_allow_list(single, tmp_path):
    path = save_bundle(single.model, tmp_path / "b", metrics={}, data_fingerprint="x", name="one")
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["version"] == 3 and meta["members"] == ["model.keras"]
    for bad in (["model.keras", "../model.keras"], ["member_2.keras"], ["model.keras", "model.keras"]):
        meta["members"] = bad
        write_meta(path, meta)  # a forger who recomputes the metadata's hash
        with pytest.raises(BundleError, match="member files"):
            load_bundle(path)
    # A version-1 bundle (written before ensembles: no members key) loads as one network.
    del meta["members"], meta["calibration"], meta["input_reference"], meta["metadata_sha256"]
    meta["version"] = 1
    (path / "metadata.json").write_text(json.dumps(meta))
    old = load_bundle(path)
    assert old.n_members_ == 1 and old.calibration_.method == "none" and old.input_reference_ is None
    result = trust.ood_check(old, old.background_[0])  # reference rebuilt from the stored background
    assert np.isfinite(result.distance2)


def test_add_members_grows_a_saved_model(single, cohort):
    import copy
    model = copy.copy(single.model)
    sp = trust.model_splits(model, cohort, cohort.fingerprint)
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    add_members(model, df.iloc[sp.train], y[sp.train], df.iloc[sp.val], y[sp.val], members=3)
    assert model.n_members_ == 3 and model.config.members == 3 and single.model.n_members_ == 1
    raw = model.preprocessor_.encode(df.iloc[sp.test])
    u = trust.patient_uncertainty(model, raw[0])
    assert u.members == 3 and u.low <= u.high
    assert u.wide == (u.high - u.low > trust.WIDE_INTERVAL)


def test_ood_flags_an_unusual_patient_and_names_the_feature(single, cohort):
    model = single.model
    pre = model.preprocessor_
    df = cohort.df.reset_index(drop=True)
    sp = trust.model_splits(model, cohort, cohort.fingerprint)
    flags = [trust.ood_check(model, pre.encode(df.iloc[[i]])[0]).unusual for i in sp.train]
    assert np.mean(flags) <= 0.05  # the threshold is set out of sample: about 1% of new patients exceed it
    raw = pre.encode(df.iloc[[int(sp.test[0])]])[0].copy()
    j = pre.feature_names.index("chol")
    raw[j] = 560.0  # plausible but far above almost every training patient
    result = trust.ood_check(model, raw)
    assert result.unusual and result.features[0] == "chol"


# ---- external validation ----------------------------------------------------------------------------
def _other_site(seed: int = 11) -> pd.DataFrame:
    """A second synthetic site from core.demo with half the patients with disease dropped: a lower
    prevalence (a shifted intercept), the same features."""
    df = demo_cohort(n=700, seed=seed)
    sick = np.flatnonzero(df["num"].to_numpy() > 0)
    drop = np.random.default_rng(seed).choice(sick, size=len(sick) // 2, replace=False)
    return df.drop(index=drop).reset_index(drop=True)


def test_external_validation_detects_the_shift_and_intercept_update_fixes_it(single, tmp_path):
    model = single.model
    path = tmp_path / "site_b.csv"
    _other_site().to_csv(path, index=False)
    ext = external_cohort(model, path)
    result = validate_external(model, ext)
    assert result.prevalence < model.prevalence_ - 0.1
    assert [m["code"] for m in result.messages][0] == "prevalence_shift"
    assert result.calibration["calibration_intercept"] < -0.4
    assert 0 <= result.auc_low <= result.metrics["roc_auc"] <= result.auc_high <= 1
    updated = recalibrate_intercept(model, result)
    after = validate_external(updated, ext)
    assert abs(after.calibration["calibration_intercept"]) < 0.05
    assert after.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"], abs=1e-9)  # ranking unchanged
    assert model.calibration_.method == "none"  # the original is not modified
    extra = external_extra({"extra": {"cohort": {"name": "x"}}}, result, recalibrated=True)
    assert extra["cohort"] == {"name": "x"} and extra["external_validations"][0]["recalibrated"]


def test_external_file_missing_a_column_is_refused_by_name(single, tmp_path):
    path = tmp_path / "site_c.csv"
    _other_site().drop(columns=["thalach"]).to_csv(path, index=False)
    with pytest.raises(CohortError, match="thalach"):
        external_cohort(single.model, path)
    path2 = tmp_path / "site_d.csv"
    _other_site().drop(columns=["num"]).to_csv(path2, index=False)
    with pytest.raises(CohortError, match="outcome column 'num'"):
        external_cohort(single.model, path2)


def _statlog_dat(df: pd.DataFrame) -> bytes:
    """The site as UCI Statlog heart.dat: no header, blank-separated, class 1 = absent, 2 = present."""
    rows = df.assign(num=np.where(df["num"] > 0, 2, 1)).fillna(0)
    return "\n".join(" ".join(f"{v:g}" for v in r) for r in rows.to_numpy(dtype=float)).encode() + b"\n"


def test_a_statlog_heart_dat_is_an_external_site_with_its_class_as_the_outcome(single):
    site = _other_site()
    ext = external_cohort(single.model, _statlog_dat(site), name="heart.dat")
    assert ext.read.layout == "uci-statlog"
    assert ext.n == len(site) and ext.y.sum() == (site["num"] > 0).sum()  # class == 2 is the outcome
    result = validate_external(single.model, ext)
    assert 0.5 < result.metrics["roc_auc"] <= 1


def test_an_external_site_with_other_names_for_the_same_concepts_takes_the_models_names(single):
    site = _other_site().rename(columns={"trestbps": "RestingBP", "thalach": "MaxHR", "num": "HeartDisease"})
    site["HeartDisease"] = (site["HeartDisease"] > 0).astype(int)
    ext = external_cohort(single.model, site.to_csv(index=False).encode(), name="site.csv")
    assert {"trestbps", "thalach"} <= set(ext.df.columns) and ext.y.sum() == site["HeartDisease"].sum()


def test_external_refusals_are_translated(single):
    from core.evaluate import ExternalFileError
    from core.i18n import tr
    site = _other_site().drop(columns=["num"])
    with pytest.raises(ExternalFileError) as caught:
        external_cohort(single.model, site.to_csv(index=False).encode(), name="site.csv")
    assert caught.value.code == "no_outcome" and str(caught.value) == tr("external.no_outcome", target="num")
    assert caught.value.text("zh") == tr("external.no_outcome", "zh", target="num") and "结局" in caught.value.text("zh")


def _cli(*args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_cli_validate(single, cohort, tmp_path):
    bundle = save_bundle(single.model, tmp_path / "bundle", metrics={}, data_fingerprint=cohort.fingerprint,
                         name="cli")
    site = tmp_path / "site.csv"
    _other_site().to_csv(site, index=False)
    store = tmp_path / "store"
    run = _cli("validate", "--model", str(bundle), "--data", str(site), "--json", "--recalibrate", "site-b",
               env_extra={"HEART_RISK_STORE": str(store)})
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["n"] == len(_other_site()) and report["calibration_intercept"] < -0.4
    # after-update figures are measured on site patients the update was not fitted on (cross-fitted)
    after = report["recalibrated"]
    assert after["evaluated_on"].startswith("held-out site patients") and after["n"] == report["n"]
    assert abs(after["calibration_intercept"]) < 0.3 < abs(report["calibration_intercept"])
    saved = load_bundle(after["bundle"])
    assert saved.calibration_.method == "platt"
    assert saved.metadata_.metrics["n"] == report["n"]  # the site's held-out metrics, not the training test split
    assert saved.metadata_.extra.site_update["evaluated_on"] == after["evaluated_on"]
    missing = tmp_path / "missing.csv"
    _other_site().drop(columns=["ca"]).to_csv(missing, index=False)
    bad = _cli("validate", "--model", str(bundle), "--data", str(missing))
    assert bad.returncode == 2 and "ca" in bad.stderr and "Traceback" not in bad.stderr
    assert _cli("validate", "--model", str(bundle), "--data", str(tmp_path / "nope.csv")).returncode == 2


def test_model_card_reports_trust_results_and_tripod_items(ensemble, cohort, tmp_path):
    from core.workflow import card_html, card_markdown
    from i18n_table import tr
    model = ensemble.model
    sp = trust.model_splits(model, cohort, cohort.fingerprint)
    calibrated = trust.recalibrate(model, cohort, sp, method="platt")
    df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
    summary = trust.trust_summary(calibrated, df.iloc[sp.test], y[sp.test])
    assert summary["n_test"] == len(sp.test) and summary["members"] == 3
    assert summary["auc_low"] <= summary["roc_auc"] <= summary["auc_high"]
    assert {g["column"] for g in summary["subgroups"]} == {"sex", "age"}
    site = tmp_path / "site.csv"
    _other_site().to_csv(site, index=False)
    result = validate_external(calibrated, external_cohort(calibrated, site))
    extra = external_extra({"extra": {"trust": summary}}, result, recalibrated=False)
    path = save_bundle(calibrated, tmp_path / "card", metrics={}, data_fingerprint=cohort.fingerprint,
                       name="carded", extra=extra)
    meta = load_bundle(path).metadata_  # through JSON: NaN -> null must still render
    md = card_markdown(meta, "en")
    for key in ("card.recalibration", "card.ensemble", "card.trust_calibration", "card.decision", "card.subgroups",
                "card.external", "card.tripod"):
        assert f"## {tr(key)}" in md, key
    assert tr("card.tripod_12f") in md and tr("card.tripod_23a") in md and tr("card.tripod_evaluation") in md
    assert "site.csv" in md and f"{summary['roc_auc']:.3f}" in md
    zh = card_html(meta, "zh")
    assert tr("card.external", "zh") in zh and tr("card.tripod", "zh") in zh
    # A card without these results has none of the new sections.
    plain = card_markdown({"name": "plain", "metrics": {}}, "en")
    assert tr("card.tripod") not in plain and tr("card.recalibration") not in plain


def test_the_ensemble_alert_is_raised_only_where_the_disagreement_can_change_the_band():
    """QA: a 'wide' warning on width alone fired for 21 of 46 test patients; a range inside one band leaves
    a band-based decision unchanged."""
    def u(low, high):
        cutoffs = (0.15, 0.65)
        return trust.Uncertainty(risk=(low + high) / 2, low=low, high=high, members=5,
                                 wide=high - low > trust.WIDE_INTERVAL,
                                 crosses_band=any(low < c <= high for c in cutoffs))
    assert u(0.30, 0.55).alert is None            # 25 points wide, all intermediate
    assert u(0.10, 0.17).alert == "info"          # narrow, across the low cut-off
    assert u(0.55, 0.80).alert == "warning"       # wide and across the high cut-off
    assert u(0.20, 0.20).alert is None
