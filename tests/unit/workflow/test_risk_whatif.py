"""What-if helpers added to core.risk: sensitivity strip, typical patient, a cohort row as a patient.

A RiskModel is assembled from a fitted Preprocessor and a random numpy Network (no TensorFlow needed:
prediction is numpy)."""
import numpy as np
import pandas as pd
import pytest

from core.data import cohort_from_frame
from core.data import demo_cohort
from core.errors import PatientError
from core.model import RiskModel, TrainConfig
from core.model import Network
from core.model import Preprocessor
from core.workflow import patient_from_row, patient_risk, sensitivity, typical_patient
from core.data import cleveland_schema


@pytest.fixture(scope="module")
def cohort():
    return cohort_from_frame(demo_cohort(n=200, seed=5), cleveland_schema(), name="demo", synthetic=True)


@pytest.fixture(scope="module")
def model(cohort):
    m = RiskModel(cohort.schema, TrainConfig())
    m.preprocessor_ = Preprocessor(cohort.schema).fit(cohort.df)
    rng = np.random.default_rng(0)
    n_in = m.preprocessor_.n_outputs_
    m.networks_ = [Network(layers=[(rng.normal(size=(n_in, 10)), rng.normal(size=10)),
                                   (rng.normal(size=(10, 5)), rng.normal(size=5)),
                                   (rng.normal(size=(5, 1)), rng.normal(size=1))])]
    m.background_ = m.preprocessor_.encode(cohort.df.iloc[:50])
    return m


def test_the_strip_spans_the_plausible_range(model, cohort):
    patient = patient_from_row(model, cohort.df, 0)
    curve = sensitivity(model, patient, "thalach", n=60)
    f = cohort.schema["thalach"]
    assert list(curve.columns) == ["value", "risk"]
    assert len(curve) == 60
    assert curve.value.iloc[0] == f.min and curve.value.iloc[-1] == f.max
    assert curve.risk.between(0, 1).all()


def test_each_point_is_the_risk_of_the_patient_with_that_value(model, cohort):
    patient = patient_from_row(model, cohort.df, 3)
    curve = sensitivity(model, patient, "trestbps", n=7)
    for value, risk in zip(curve.value, curve.risk):
        expected = patient_risk(model, {**patient, "trestbps": value}, with_reasons=False).risk
        assert risk == pytest.approx(expected, abs=1e-12)


def test_a_count_moves_in_whole_steps_and_a_code_over_its_codes(model, cohort):
    patient = typical_patient(model, cohort.df)
    assert sensitivity(model, patient, "ca").value.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert sensitivity(model, patient, "cp").value.tolist() == model.preprocessor_.categories_["cp"]


def test_the_strip_refuses_an_impossible_patient_or_feature(model, cohort):
    patient = patient_from_row(model, cohort.df, 0)
    with pytest.raises(PatientError, match="trestbps"):
        sensitivity(model, {**patient, "trestbps": 20.0}, "thalach")
    with pytest.raises(PatientError, match="not a feature"):
        sensitivity(model, patient, "num")


@pytest.mark.parametrize("low,high,message", [
    (None, 200.0, "trestbps: above the plausible maximum 200 mmHg"),
    (80.0, None, "trestbps: below the plausible minimum 80 mmHg"),
    (80.0, 200.0, "trestbps: outside the plausible range 80–200 mmHg"),
])
def test_a_range_open_on_one_side_refuses_a_value_beyond_its_bound_in_words(model, cohort, low, high, message):
    """The schema editor lets a plausible range stay open on one side: a value beyond the other bound was a
    TypeError (formatting None), now a PatientError naming the bound."""
    import copy

    from core.workflow import check_patient
    pre = copy.deepcopy(model.preprocessor_)
    f = pre.features[pre.feature_names.index("trestbps")]
    f.min, f.max = low, high
    patient = patient_from_row(model, cohort.df, 0)
    for value in (20.0, 400.0):
        if (low is not None and value < low) or (high is not None and value > high):
            with pytest.raises(PatientError) as err:
                check_patient({**patient, "trestbps": value}, model.schema, pre)
            assert str(err.value) == message
        else:
            check_patient({**patient, "trestbps": value}, model.schema, pre)  # open side: accepted


def test_a_typical_patient_is_the_median_and_the_most_frequent_code(model, cohort):
    typical = typical_patient(model, cohort.df)
    assert typical["chol"] == pytest.approx(np.round(cohort.df.chol.median()))
    assert typical["oldpeak"] == pytest.approx(round(cohort.df.oldpeak.median(), 1))
    assert typical["cp"] == cohort.df.cp.mode().iloc[0]
    assert typical["thal"] == cohort.df.thal.dropna().mode().iloc[0]
    patient_risk(model, typical)  # scoreable as is


def test_without_a_cohort_the_typical_patient_comes_from_training(model):
    typical = typical_patient(model, None)
    pre = model.preprocessor_
    for j, name in enumerate(pre.feature_names):
        assert typical[name] == pre.decode_value(j, pre.fill_[j])


def test_a_cohort_row_keeps_missing_values_missing(model, cohort):
    row = int(np.flatnonzero(cohort.df.ca.isna().to_numpy())[0])
    patient = patient_from_row(model, cohort.df, row)
    assert patient["ca"] is None
    assert patient["age"] == cohort.df.age.iloc[row]
    with pytest.raises(PatientError, match="row"):
        patient_from_row(model, cohort.df, len(cohort.df))
    with pytest.raises(PatientError, match="chol"):
        patient_from_row(model, cohort.df.drop(columns=["chol"]), 0)
    assert isinstance(pd.Series(patient).to_dict(), dict)


def test_the_risk_module_names_its_public_api_once():
    """One __all__ (it was built in three pieces and re-exported core.explain's background_sample)."""
    import core.workflow.risk as risk
    assert "background_sample" not in risk.__all__
    assert len(set(risk.__all__)) == len(risk.__all__) and all(hasattr(risk, name) for name in risk.__all__)
    assert {"check_patient", "patient_risk", "sensitivity", "typical_patient", "patient_from_row"} <= set(risk.__all__)
