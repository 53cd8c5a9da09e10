"""Similar patients: nearest cohort rows on the model's scaled features, with outcomes and risks."""
from __future__ import annotations

import numpy as np
import pytest

from core.data import demo_cohort
from core.errors import PatientError
from core.model import RiskModel
from core.model import Network
from core.model import Preprocessor
from core.workflow import patient_from_row
from core.data import cleveland_schema
from core.workflow import similar_patients


@pytest.fixture(scope="module")
def model_and_cohort():
    df = demo_cohort()
    schema = cleveland_schema()
    pre = Preprocessor(schema).fit(df)
    rng = np.random.default_rng(2)
    n = pre.n_outputs_
    model = RiskModel(schema)
    model.preprocessor_ = pre
    model.networks_ = [Network([(rng.normal(size=(n, 8)) * 0.4, np.zeros(8)), (rng.normal(size=(8, 1)), [0.0])])]
    y = (df["num"] > 0).astype(float).to_numpy()
    return model, df, y


def test_a_cohort_patient_is_its_own_nearest_neighbour(model_and_cohort):
    model, df, y = model_and_cohort
    values = patient_from_row(model, df, 41)
    found = similar_patients(model, values, df, y, k=10)
    table = found.table
    assert len(table) == 10 and found.k == 10
    assert table["row"].iloc[0] == 42 and table["distance"].iloc[0] == pytest.approx(0, abs=1e-6)
    assert list(table["distance"]) == sorted(table["distance"])
    assert found.outcome_rate == pytest.approx(y[table["row"].to_numpy() - 1].mean())
    assert found.mean_risk == pytest.approx(table["risk"].mean())
    assert found.patient_risk == pytest.approx(table["risk"].iloc[0])
    assert list(table.columns) == ["row", "distance", *model.preprocessor_.feature_names, "outcome", "risk"]


def test_distances_are_those_of_the_model_inputs(model_and_cohort):
    model, df, y = model_and_cohort
    pre = model.preprocessor_
    values = dict(patient_from_row(model, df, 7), chol=400.0, cp=1.0)
    found = similar_patients(model, values, df, None, k=5)
    X = pre.transform(df).astype(float)
    x = pre.transform_raw(np.array([[pre.encode_value(j, values[f.name]) for j, f in enumerate(pre.features)]]))
    brute = np.sqrt(((X - x) ** 2).sum(axis=1))
    expected = np.argsort(brute, kind="stable")[:5] + 1
    assert list(found.table["row"]) == list(expected)
    np.testing.assert_allclose(found.table["distance"], np.sort(brute)[:5], rtol=1e-5)
    np.testing.assert_allclose(found.table["risk"], model.predict_risk(df.iloc[expected - 1]))
    assert np.isnan(found.outcome_rate) and "outcome" not in found.table


def test_ties_go_to_the_earlier_row_and_k_is_capped(model_and_cohort):
    model, df, y = model_and_cohort
    small = df.iloc[[3, 3, 5]].reset_index(drop=True)  # rows 1 and 2 identical
    found = similar_patients(model, patient_from_row(model, small, 0), small, y[[3, 3, 5]], k=10)
    assert list(found.table["row"])[:2] == [1, 2] and found.k == 3


def test_refusals(model_and_cohort):
    model, df, y = model_and_cohort
    values = patient_from_row(model, df, 0)
    with pytest.raises(PatientError, match="lacks columns the model needs: chol"):
        similar_patients(model, values, df.drop(columns=["chol"]), y)
    with pytest.raises(PatientError, match="at least 1"):
        similar_patients(model, values, df, y, k=0)
    with pytest.raises(PatientError, match="trestbps: outside the plausible range"):
        similar_patients(model, dict(values, trestbps=999.0), df, y)


def test_the_disease_rate_has_a_wilson_interval_or_too_few(model_and_cohort):
    import math
    from core.metrics import MIN_PER_CLASS, Z95
    model, df, y = model_and_cohort
    values = patient_from_row(model, df, 41)
    found = similar_patients(model, values, df, y, k=10)
    k_ill, n, z = found.table["outcome"].sum(), 10, Z95
    phat = k_ill / n  # Wilson by its formula
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    assert not found.outcome_too_few
    assert (found.outcome_low, found.outcome_high) == pytest.approx((centre - half, centre + half))
    assert found.outcome_low <= found.outcome_rate <= found.outcome_high and found.outcome_high - found.outcome_low > 0.2
    few = similar_patients(model, values, df, y, k=MIN_PER_CLASS - 1)
    assert few.outcome_too_few and math.isnan(few.outcome_low)
    # every neighbour ill still has an interval of width (Wilson's upper bound 1, lower below it)
    all_ill = similar_patients(model, values, df, np.ones(len(df)), k=10)
    assert all_ill.outcome_rate == 1.0 and all_ill.outcome_low < 0.75
    assert all_ill.outcome_high == pytest.approx(1.0)
