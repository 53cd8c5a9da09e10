"""A bundle does not disclose individual patients (issue 18, item 11): the SHAP background is weighted
cluster centres of at least 5 patients each, training ranges are rounded percentiles, and the model card
says what the bundle reveals."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.data import DEMO_NAME, cleveland_schema, cohort_from_frame, demo_cohort
from core.explain import REASON_TOLERANCE, explain
from core.model import TrainConfig, load_bundle, save_bundle
from core.model.privacy import cluster_background, donor_groups, training_range
from core.workflow import card_markdown, cohort_summary, train_on_cohort, training_metadata


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    frame = demo_cohort()
    frame.loc[frame["age"].idxmax(), "age"] = 77.77  # a typed value that must not reappear in the file
    frame.loc[frame["chol"].idxmax(), "chol"] = 432.1 if frame["chol"].max() < 432.1 else frame["chol"].max()
    cohort = cohort_from_frame(frame, cleveland_schema(), name=DEMO_NAME, synthetic=True)
    result = train_on_cohort(cohort, TrainConfig(epochs=20))
    path = tmp_path_factory.mktemp("privacy") / "b"
    save_bundle(result.model, path, meta=training_metadata(result.model, result.metrics, name="p",
                                                          cohort=cohort_summary(cohort), sizes=result.sizes))
    return cohort, result, path


def test_no_training_row_and_no_exact_extreme_is_in_the_bundle(saved):
    cohort, result, path = saved
    model = result.model
    assert "77.77" not in (path / "metadata.json").read_text(encoding="utf-8")
    raw = model.preprocessor_.encode(cohort.df)
    meta = json.loads((path / "metadata.json").read_text())
    centres = np.array([[np.nan if v is None else v for v in row] for row in meta["background"]])
    numeric = [j for j, f in enumerate(model.preprocessor_.features) if f.kind == "numeric"]
    # No centre equals a patient on all measurements.
    same = (np.abs(raw[:, None, numeric] - centres[None, :, numeric]) < 1e-9).all(axis=2)
    assert not same.any()
    weights = np.array(meta["background_weights"])
    assert weights.sum() == pytest.approx(1) and (weights * meta["disclosure"]["rows"]).min() >= 5 - 1e-9
    pre = json.loads((path / "preprocess.json").read_text())["preprocessor"]
    age = model.preprocessor_.feature_names.index("age")
    # (fitted on the training split only) a whole number of years, at most the typed maximum rounded up
    assert 77.77 not in pre["raw_max"] and pre["raw_max"][age] == round(pre["raw_max"][age]) <= 78


def test_the_summary_keeps_reasons_within_the_stated_tolerance(saved):
    cohort, result, path = saved
    disclosure = result.model.disclosure_
    assert disclosure["max_reason_change"] <= REASON_TOLERANCE
    assert disclosure["centres"] < disclosure["rows"]


def test_reasons_in_the_session_and_after_loading_are_the_same(saved):
    cohort, result, path = saved
    model, loaded = result.model, load_bundle(path)
    raw = model.preprocessor_.encode(cohort.df.iloc[:5])
    a = explain(model.preprocessor_, model.networks_, raw, model.background_, background_weights=model.background_weights_)
    b = explain(loaded.preprocessor_, loaded.networks_, raw, loaded.background_,
                background_weights=loaded.background_weights_)
    np.testing.assert_allclose(a.shap_values, b.shap_values, atol=1e-12)


def test_the_model_card_says_what_the_bundle_reveals(saved):
    _, _, path = saved
    card = card_markdown(load_bundle(path).metadata_)
    assert "## What this model file reveals about its training patients" in card
    assert "weighted cluster centres of 200 training patients" in card
    assert "percentiles 1 and 99" in card
    imputer = load_bundle(path).preprocessor_.imputer_
    assert "holds no individual patient's record" in card and "complete rows" not in card
    assert (f"{len(imputer.weights)} groups of {int(imputer.weights.sum())} complete training patients, "
            f"at least {int(imputer.weights.min())} in each") in card
    assert "how many of the group's patients have each value" in card
    assert "anyone who knows that a person was in that group learns that value" in card


def test_imputation_donors_are_group_summaries_and_no_training_row(saved):
    """Issue 18.11: preprocess.json's donors for inputs not measured are no patient's row: per group of >= 5
    patients its size, each measurement's rounded mean and SD, and per coded feature the count of each code."""
    cohort, result, path = saved
    pre = result.model.preprocessor_
    text = (path / "preprocess.json").read_text()
    saved_imputation = json.loads(text)["preprocessor"]["conditional_imputation"]
    assert "donors" not in saved_imputation and "donor_weights" not in saved_imputation
    groups = saved_imputation["donor_groups"]
    sizes = np.array(groups["sizes"])
    raw = pre.encode(cohort.df)
    assert sizes.min() >= 5 and sizes.sum() <= len(raw)
    for item in groups["coded"]:
        counts = np.array(item["counts"])
        assert (counts.sum(axis=1) == sizes).all() and counts.dtype.kind == "i"
        j = item["feature"]
        assert set(item["codes"]) <= set(raw[~np.isnan(raw[:, j]), j])  # codes some patient has, never 1.4
    for item in groups["numeric"]:  # rounded to the precision the measurement is recorded at
        col = raw[:, item["feature"]][~np.isnan(raw[:, item["feature"]])]
        decimals = next(d for d in range(4) if np.allclose(col, np.round(col, d)))
        assert np.allclose(item["means"], np.round(item["means"], decimals)) and min(item["sds"]) >= 0
    assert "77.77" not in text and "432.1" not in text


def test_every_cluster_has_at_least_five_patients_and_coded_values_are_codes():
    rng = np.random.default_rng(0)
    raw = np.column_stack([rng.normal(50, 10, 37), rng.integers(0, 3, 37).astype(float)])
    raw[3, 0] = np.nan
    centres, weights = cluster_background(raw, ["numeric", "categorical"], 20)
    assert (weights * 37).min() >= 5 - 1e-9 and weights.sum() == pytest.approx(1)
    assert set(centres[:, 1]) <= {0.0, 1.0, 2.0} and not np.isnan(centres[:, 0]).any()


def test_donor_groups_are_five_patients_or_more_with_per_code_counts():
    """core.model.privacy.donor_groups: each group stands for >= 5 patients; a coded feature is only the count
    of each code in the group (a code one patient has keeps its count of 1); measurements are rounded."""
    rng = np.random.default_rng(1)
    raw = np.column_stack([rng.integers(30, 80, 60).astype(float), rng.integers(0, 2, 60).astype(float),
                           rng.integers(0, 4, 60).astype(float), np.round(rng.uniform(0, 6, 60), 1)])
    raw[7, 2] = 7.0  # a code one patient has
    sizes, means, sds, codes, counts = donor_groups(raw, ["numeric", "binary", "ordinal", "numeric"])
    assert sizes.min() >= 5 and sizes.sum() == 60 and sorted(codes) == [1, 2]
    assert codes[2].tolist() == [0, 1, 2, 3, 7] and counts[2][:, -1].sum() == 1
    for j in (1, 2):
        assert (counts[j].sum(axis=1) == sizes).all()
        assert counts[j].sum(axis=0).tolist() == [np.count_nonzero(raw[:, j] == c) for c in codes[j]]
    assert np.isnan(means[:, [1, 2]]).all() and np.isnan(sds[:, [1, 2]]).all()
    assert np.array_equal(means[:, 0], np.round(means[:, 0])) and np.allclose(means[:, 3], np.round(means[:, 3], 1))


def test_training_ranges_are_rounded_outwards():
    values = np.array([29.0, 34, 40, 45, 50, 55, 60, 65, 70, 77.77])
    lo, hi = training_range(values)
    assert lo <= np.percentile(values, 1) and hi >= np.percentile(values, 99) and (lo, hi) == (29.0, 78.0)
    assert training_range(np.array([0.0, 0.5, 1.2, 3.1, 6.2])) == (0.0, 6.1)  # 99th percentile 6.076, up
