"""Issue 14.2: a missing input is never turned into a best-case value and shown as a reason.

On the real Cleveland file (6 patients lack `ca` or `thal`): the risk is the mean over the conditional
imputations with a range, the missing feature is never among the reasons, the range holds the risk at
every plausible value with more than a small weight, and the SHAP values shown still add up to the risk.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.data import load_cohort  # noqa: E402
from core.model import load_bundle, save_bundle  # noqa: E402
from core.model.imputation import ConditionalImputer, DonorGroups, weighted_range  # noqa: E402
from core.workflow import patient_from_row, patient_risk, score_table, train_on_cohort  # noqa: E402
from core.workflow.risk import RANGE_ALPHA, conditional_imputer, missing_ranges  # noqa: E402


@pytest.fixture(scope="module")
def cleveland(cleveland_path):
    return load_cohort(cleveland_path)


@pytest.fixture(scope="module")
def model(cleveland):
    return train_on_cohort(cleveland).model


@pytest.fixture(scope="module")
def missing_rows(cleveland):
    df = cleveland.df.reset_index(drop=True)
    rows = [i for i in range(len(df)) if pd.isna(df.loc[i, "ca"]) or pd.isna(df.loc[i, "thal"])]
    assert len(rows) == 6  # 4 without ca, 2 without thal: the file as published
    return rows


def test_missing_ca_or_thal_is_never_a_reason(model, cleveland, missing_rows):
    df = cleveland.df.reset_index(drop=True)
    every = len(model.preprocessor_.features)
    for i in missing_rows:
        values = patient_from_row(model, df, i)
        lacking = {n for n in ("ca", "thal") if values[n] is None}
        result = patient_risk(model, values, top=every)
        assert lacking.isdisjoint(r.feature for r in result.reasons)
        assert {n.feature for n in result.not_measured} == lacking
        assert result.missing.features == sorted(lacking, key=model.preprocessor_.feature_names.index)
    # the table, as the CLI and the scoring page write it
    table = score_table(model, df.iloc[missing_rows])
    labels = {name: model.schema[name].display_label("en") for name in ("ca", "thal")}
    for _, row in table.iterrows():
        for name in row["missing"].split(", "):
            assert all(labels[name] not in str(row[f"reason_{k}"]) for k in (1, 2, 3))
        assert row["risk_low"] <= row["risk"] <= row["risk_high"]


def test_range_holds_the_risk_at_every_plausible_value(model, cleveland, missing_rows):
    df = cleveland.df.reset_index(drop=True)
    for i in missing_rows:
        values = patient_from_row(model, df, i)
        result = patient_risk(model, values, with_reasons=False)
        info = result.missing
        assert info.low <= result.risk <= info.high
        assert info.high > info.low  # an unmeasured test that matters: never a zero-width range
        for name in info.features:
            for value, weight in info.values[name]:
                if weight <= RANGE_ALPHA:
                    continue
                # the risk with that value measured, scored as a complete patient
                at_value = patient_risk(model, {**values, name: value}, with_reasons=False).risk
                assert info.low - 1e-9 <= at_value <= info.high + 1e-9, (i, name, value, weight)
        assert abs(sum(w for _, w in info.values[info.features[0]]) - 1) < 1e-9
        assert info.settles_most in info.features and abs(sum(info.share.values()) - 1) < 1e-9


def test_shap_values_shown_add_up_to_the_risk(model, cleveland, missing_rows):
    df = cleveland.df.reset_index(drop=True)
    every = len(model.preprocessor_.features)
    for i in missing_rows:
        result = patient_risk(model, patient_from_row(model, df, i), top=every)
        shown = sum(r.shap for r in result.reasons) + sum(n.shap for n in result.not_measured)
        assert abs(result.explanation.base_value + shown - result.risk) < 1e-9
        # the estimate is the weighted mean of the imputations' risks
        assert abs(result.missing.weights @ result.missing.risks - result.risk) < 1e-9


def test_complete_patients_are_scored_as_before(model, cleveland, missing_rows):
    df = cleveland.df.reset_index(drop=True)
    complete = [i for i in range(40) if i not in missing_rows]
    table = score_table(model, df.iloc[complete], with_reasons=False)
    assert np.allclose(table["risk"], model.predict_risk(df.iloc[complete]))
    assert table["risk_low"].isna().all() and table["risk_high"].isna().all() and (table["missing"] == "").all()
    result = patient_risk(model, patient_from_row(model, df, complete[0]))
    assert result.missing is None and result.not_measured == [] and result.risk_low is None


def test_score_table_with_and_without_reasons_agree(model, cleveland, missing_rows):
    df = cleveland.df.reset_index(drop=True).iloc[sorted(missing_rows + [0, 1, 2])]
    fast, full = score_table(model, df, with_reasons=False), score_table(model, df)
    assert np.allclose(fast["risk"], full["risk"], atol=1e-6)
    assert np.allclose(fast["risk_low"].fillna(-1), full["risk_low"].fillna(-1))
    for pos, i in enumerate(df.index):
        one = patient_risk(model, patient_from_row(model, df, pos), top=3)
        assert abs(one.risk - full["risk"].iloc[pos]) < 1e-9
        assert [r.text for r in one.reasons] == [full[f"reason_{k}"].iloc[pos] for k in (1, 2, 3)]


@pytest.mark.parametrize("with_reasons", [False, True])
def test_score_table_imputes_each_row_once_with_the_same_risk_and_range(model, cleveland, missing_rows,
                                                                        monkeypatch, with_reasons):
    """The table's risk and its range come from one imputation of the rows (they were imputed twice)."""
    df = cleveland.df.reset_index(drop=True).iloc[sorted(missing_rows + [0, 1, 2])]
    raw = model.preprocessor_.encode(df)
    low, high = missing_ranges(model, raw)  # the range as computed on its own
    expected = [patient_risk(model, patient_from_row(model, df, pos), with_reasons=False).risk
                for pos in range(len(df))]
    calls = []
    impute = ConditionalImputer.impute
    monkeypatch.setattr(ConditionalImputer, "impute", lambda self, *a, **k: calls.append(1) or impute(self, *a, **k))
    table = score_table(model, df, with_reasons=with_reasons)
    assert len(calls) == 1
    np.testing.assert_allclose(table["risk_low"], low, atol=1e-9)
    np.testing.assert_allclose(table["risk_high"], high, atol=1e-9)
    np.testing.assert_allclose(table["risk"], expected, atol=1e-6)
    assert table["risk_low"].notna().sum() == len(missing_rows)


def test_imputation_travels_in_the_bundle_as_json(model, cleveland, missing_rows, tmp_path):
    save_bundle(model, tmp_path / "b", metrics={}, data_fingerprint="x", name="t")
    saved = json.loads((tmp_path / "b" / "preprocess.json").read_text())["preprocessor"]["conditional_imputation"]
    assert saved["k"] == model.preprocessor_.imputer_.k and "donors" not in saved
    sizes = saved["donor_groups"]["sizes"]
    assert 0 < sum(sizes) <= model.n_train_ and min(sizes) >= 5
    loaded = load_bundle(tmp_path / "b")
    df = cleveland.df.reset_index(drop=True)
    for i in missing_rows:
        a = patient_risk(model, patient_from_row(model, df, i), with_reasons=False)
        b = patient_risk(loaded, patient_from_row(loaded, df, i), with_reasons=False)
        assert abs(a.risk - b.risk) < 1e-6 and abs(a.risk_high - b.risk_high) < 1e-6


def test_no_training_row_is_among_the_saved_donors(model, cleveland, tmp_path):
    """Issue 18.11: a bundle's imputation donors disclose no training patient (they were raw rows)."""
    save_bundle(model, tmp_path / "b", metrics={}, data_fingerprint="x", name="t")
    saved = json.loads((tmp_path / "b" / "preprocess.json").read_text())["preprocessor"]["conditional_imputation"]
    assert "donors" not in saved
    raw = model.preprocessor_.encode(cleveland.df)
    numeric = [j for j, f in enumerate(model.preprocessor_.features) if f.kind == "numeric"]
    means = np.full((len(saved["donor_groups"]["sizes"]), raw.shape[1]), np.nan)
    for item in saved["donor_groups"]["numeric"]:
        means[:, item["feature"]] = item["means"]
    # no group's measurements are one patient's
    assert not (np.abs(raw[:, None, numeric] - means[None, :, numeric]) < 1e-9).all(axis=2).any()


def test_an_old_bundle_with_raw_donors_loads_and_is_saved_grouped(model, cleveland, missing_rows, tmp_path):
    """A bundle saved before 18.11 keeps complete training rows as donors: it still loads and imputes with
    them; saved again, its donors are grouped."""
    save_bundle(model, tmp_path / "b", metrics={}, data_fingerprint="x", name="t")
    rows = model.preprocessor_.encode(cleveland.df.dropna())[:150]
    old = ConditionalImputer.from_dict({"k": 20, "donors": rows.tolist()}, rows.shape[1])
    assert not old.grouped and len(old.donors) == 150 and old.k == 20
    loaded = load_bundle(tmp_path / "b")
    loaded.preprocessor_.imputer_ = old
    df = cleveland.df.reset_index(drop=True)
    result = patient_risk(loaded, patient_from_row(loaded, df, missing_rows[0]), with_reasons=False)
    assert result.missing.low < result.missing.high
    saved = loaded.preprocessor_.to_dict()["conditional_imputation"]
    assert "donors" not in saved and sum(saved["donor_groups"]["sizes"]) == 150


def test_no_zero_width_range_when_ca_or_thal_is_not_measured(model, cleveland):
    """Each complete Cleveland patient with ca, then thal, removed (594 incomplete patients): every range has
    width. Raw donors (the 20 nearest patients) gave 2 + 6 zero-width ranges; groups' most frequent code more."""
    df = cleveland.df.dropna(subset=["ca", "thal"]).reset_index(drop=True)
    for name in ("ca", "thal"):
        table = score_table(model, df.assign(**{name: np.nan}), with_reasons=False)
        assert (table["risk_high"] - table["risk_low"] > 1e-6).all(), name
        assert ((table["risk_low"] <= table["risk"]) & (table["risk"] <= table["risk_high"])).all()


def test_many_inputs_missing_at_once_are_imputed_from_the_groups_members(model, cleveland):
    """Past MAX_COMBINATIONS (here 3^5 measurements x 4 vessels x 3 thallium): each nearest group's members
    rebuilt from its summaries; the weights still add up to 1 and every code is one the training patients had."""
    values = patient_from_row(model, cleveland.df.reset_index(drop=True), 0)
    gone = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca", "thal"]
    pre = model.preprocessor_
    raw = np.array([[pre.encode_value(j, None if f.name in gone else values[f.name])
                     for j, f in enumerate(pre.features)]])
    imp = model.preprocessor_.imputer_.impute(pre, raw)
    assert abs(imp.weight.sum() - 1) < 1e-9 and not np.isnan(imp.raw).any()
    ca, thal = pre.feature_names.index("ca"), pre.feature_names.index("thal")
    assert set(imp.raw[:, ca]) <= {0.0, 1.0, 2.0, 3.0} and len(set(imp.raw[:, thal])) > 1
    result = patient_risk(model, {**values, **{n: None for n in gone}}, with_reasons=False)
    assert result.missing.low < result.risk < result.missing.high


def test_minority_codes_keep_their_weight():
    """A group of 6 patients, 5 with code 0 and 1 with code 2 of a coded input: a patient missing it gets both
    codes (5/6 and 1/6 of that group's weight), never only the most frequent one."""
    class Pre:  # one measurement (standardised as it is) and one categorical input with codes 0, 1, 2
        n_outputs_ = 4
        slices_ = [slice(0, 1), slice(1, 4)]
        raw_min_, raw_max_ = [0.0, 0.0], [100.0, 2.0]

        @staticmethod
        def transform_raw(raw):
            raw = np.atleast_2d(raw)
            out = np.zeros((len(raw), 4))
            out[:, 0] = np.nan_to_num(raw[:, 0])
            for i, c in enumerate(raw[:, 1]):
                if not np.isnan(c):
                    out[i, 1 + int(c)] = 1.0
            return out

        @staticmethod
        def encode_feature_values(j, values):
            values = np.asarray(values, dtype=float)
            return values[:, None] if j == 0 else np.eye(3)[values.astype(int)]

    groups = DonorGroups(sizes=np.array([6.0, 5.0]), means=np.array([[10.0, np.nan], [90.0, np.nan]]),
                         sds=np.array([[0.0, np.nan], [0.0, np.nan]]), codes={1: np.array([0.0, 1.0, 2.0])},
                         counts={1: np.array([[5.0, 0.0, 1.0], [0.0, 5.0, 0.0]])})
    imputer = ConditionalImputer(k=6, groups=groups)
    imp = imputer.impute(Pre, np.array([[11.0, np.nan]]))
    assert imp.raw[:, 1].tolist() == [0.0, 2.0] and np.allclose(imp.weight, [5 / 6, 1 / 6])
    # a measurement not measured: the group's mean and mean -/+ sqrt(3) SD, clipped to the training range
    groups.sds[0, 0] = 4.0
    imp = imputer.impute(Pre, np.array([[np.nan, 0.0]]))
    assert np.allclose(sorted(imp.raw[:, 0]), [10 - 4 * 3 ** 0.5, 10, 10 + 4 * 3 ** 0.5])
    assert np.allclose(sorted(imp.weight), [1 / 6, 1 / 6, 2 / 3])
    back = ConditionalImputer.from_dict(json.loads(json.dumps(imputer.to_dict())), 2)
    assert back.grouped and np.array_equal(back.groups.counts[1], groups.counts[1])


def test_old_bundle_without_donors_uses_the_background(model, cleveland, missing_rows):
    class Old:  # a model as a bundle saved before conditional imputation loads
        pass
    old = Old()
    old.__dict__.update(model.__dict__)
    old.preprocessor_ = type(model.preprocessor_).from_dict(
        model.schema, {k: v for k, v in model.preprocessor_.to_dict().items() if k != "conditional_imputation"})
    assert old.preprocessor_.imputer_ is None
    imputer = conditional_imputer(old)
    assert imputer is not None and len(imputer.donors) > 0
    assert not np.isnan(imputer.donors).any()


def test_imputations_follow_the_observed_features():
    """Donors' second feature equals their first: a patient missing it gets the values of donors near its first."""
    class Pre:  # two numeric features, standardised as they are
        n_outputs_ = 2
        slices_ = [slice(0, 1), slice(1, 2)]

        @staticmethod
        def transform_raw(raw):
            return np.where(np.isnan(raw), 0.0, raw)

    donors = np.array([[x, x] for x in np.arange(100.0)])
    imp = ConditionalImputer(donors, k=5).impute(Pre, np.array([[10.0, np.nan], [80.0, 3.0]]))
    assert imp.row.tolist() == [0] * 5  # the complete patient gets no imputation
    assert sorted(imp.raw[:, 1]) == [8.0, 9.0, 10.0, 11.0, 12.0] and np.allclose(imp.weight, 0.2)


def test_nearest_donors_stand_for_k_patients():
    """Weighted donors (groups of patients): the nearest until they stand for k patients, the last partly;
    an old bundle's donors (no weights) are one patient each."""
    class Pre:
        n_outputs_ = 2
        slices_ = [slice(0, 1), slice(1, 2)]

        @staticmethod
        def transform_raw(raw):
            return np.where(np.isnan(raw), 0.0, raw)

    donors = np.array([[10.0, 1.0], [11.0, 2.0], [13.0, 3.0], [50.0, 4.0]])
    imp = ConditionalImputer(donors, k=12, weights=[5, 6, 8, 9]).impute(Pre, np.array([[10.0, np.nan]]))
    assert imp.raw[:, 1].tolist() == [1.0, 2.0, 3.0] and np.allclose(imp.weight, [5 / 12, 6 / 12, 1 / 12])
    old = ConditionalImputer.from_dict({"k": 2, "donors": donors.tolist()}, 2)
    assert old.weights.tolist() == [1, 1, 1, 1] and old.to_dict()["donor_weights"] == [1, 1, 1, 1]
    assert np.allclose(old.impute(Pre, np.array([[10.0, np.nan]])).weight, 0.5)


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 20)), min_size=1, max_size=30))
def test_weighted_range_holds_every_value_above_the_threshold(pairs):
    values = np.array([v for v, _ in pairs])
    weights = np.array([w for _, w in pairs], dtype=float)
    low, high = weighted_range(values, weights, 0.05)
    share = weights / weights.sum()
    assert low <= high
    for v, w in zip(values, share):
        if w > 0.05 + 1e-9:
            assert low <= v <= high
    assert (high > low) == (values.max() > values.min())  # zero width only when every value is the same


def test_a_code_shared_by_19_of_20_similar_patients_still_gives_a_range_with_width():
    """A binary input not measured (exercise angina) where 19 of 20 similar patients had 'no': the 5th-95th
    percentile of the risks was one value, a zero-width range; the range is then that of every plausible value."""
    from core.workflow import percent_range
    risks, weights = np.array([0.31, 0.52]), np.array([19 / 20, 1 / 20])
    assert weighted_range(risks, weights, 0.05) == (0.31, 0.52)
    assert weighted_range(np.array([0.4, 0.4]), np.array([0.5, 0.5]), 0.05) == (0.4, 0.4)
    assert percent_range(0.31, 0.52) == ("31%", "52%")
    assert percent_range(0.312, 0.314) == ("31.2%", "31.4%")  # not "31%–31%"
    assert percent_range(0.4, 0.4) is None  # said in words, not as an interval


def test_cli_predict_and_explain_name_what_was_not_measured(model, cleveland, missing_rows, tmp_path, capsys):
    from core.cli import main
    save_bundle(model, tmp_path / "b", metrics={}, data_fingerprint="x", name="t")
    df = cleveland.df.reset_index(drop=True)
    features = model.preprocessor_.feature_names
    patients = df.iloc[[0] + missing_rows][features]
    patients.to_csv(tmp_path / "p.csv", index=False, na_rep="?")
    assert main(["predict", "--model", str(tmp_path / "b"), "--input", str(tmp_path / "p.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["missing"].tolist() == [""] + [", ".join(n for n in ("ca", "thal") if pd.isna(df.loc[i, n]))
                                              for i in missing_rows]
    assert out["risk_low"].iloc[0] == "" and out["risk_high"].iloc[0] == ""
    ranged = out.iloc[1:]
    assert (ranged["risk_low"].astype(float) <= ranged["risk"].astype(float)).all()
    assert (ranged["risk"].astype(float) <= ranged["risk_high"].astype(float)).all()
    capsys.readouterr()
    assert main(["explain", "--model", str(tmp_path / "b"), "--input", str(tmp_path / "p.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for patient, row in zip(report["patients"], out.itertuples()):
        assert ", ".join(patient["missing"]) == row.missing
        assert abs(report["base_value"] + sum(patient["shap_values"].values()) - patient["risk"]) < 1e-9
        assert abs(patient["risk"] - float(row.risk)) < 1e-6
        assert (patient["risk_low"] is None) == (row.missing == "")


def test_the_risk_curve_averages_over_what_was_not_measured(model, cleveland, missing_rows):
    from core.workflow import sensitivity
    df = cleveland.df.reset_index(drop=True)
    values = patient_from_row(model, df, missing_rows[1])  # vessels not measured
    assert values["ca"] is None
    curve = sensitivity(model, values, "thalach")
    at_own = patient_risk(model, {**values, "thalach": float(curve["value"].iloc[10])}, with_reasons=False)
    assert abs(curve["risk"].iloc[10] - at_own.risk) < 1e-9  # the curve is the patient's estimate at each value
    filled = sensitivity(model, {**values, "ca": 0.0}, "thalach")  # what the median fill used to draw
    assert (curve["risk"] - filled["risk"]).abs().max() > 0.01


def test_a_risk_curve_of_a_value_not_measured_marks_no_value():
    from core.plots import sensitivity_strip
    curve = pd.DataFrame({"value": [100.0, 150.0], "risk": [0.3, 0.2]})
    assert sensitivity_strip(curve, 120.0, "Max heart rate").layout.shapes
    assert not sensitivity_strip(curve, None, "Max heart rate").layout.shapes  # no "now" at a filled-in value


def test_similar_patients_show_the_same_estimate(model, cleveland, missing_rows):
    from core.workflow import similar_patients
    df = cleveland.df.reset_index(drop=True)
    values = patient_from_row(model, df, missing_rows[1])
    similar = similar_patients(model, values, df, cleveland.y, k=5)
    assert abs(similar.patient_risk - patient_risk(model, values, with_reasons=False).risk) < 1e-9
