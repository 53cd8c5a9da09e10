"""Unit conversion in the what-if form: the model must see mg/dl whatever the clinician types."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data import Feature, cleveland_schema
from core.data import CHOLESTEROL_MG_DL_PER_MMOL_L, conversion, from_model, input_range, to_model, unit_options

SCHEMA = cleveland_schema()
CHOL = SCHEMA["chol"]


def test_cholesterol_offers_both_units_model_unit_first():
    assert unit_options(CHOL) == ["mg/dl", "mmol/L"]


def test_other_measurements_keep_their_own_unit_only():
    assert unit_options(SCHEMA["trestbps"]) == ["mmHg"]
    assert unit_options(SCHEMA["sex"]) == []
    with pytest.raises(ValueError, match="trestbps"):
        to_model(120.0, SCHEMA["trestbps"], "kPa")


def test_mmol_per_litre_becomes_mg_per_dl_with_the_cholesterol_factor():
    assert CHOLESTEROL_MG_DL_PER_MMOL_L == 38.67
    assert to_model(5.0, CHOL, "mmol/L") == pytest.approx(193.35)
    assert from_model(193.35, CHOL, "mmol/L") == pytest.approx(5.0)
    assert to_model(233.0, CHOL, "mg/dl") == 233.0


def test_a_glucose_in_mg_per_dl_is_not_converted_with_the_cholesterol_factor():
    glucose = Feature(name="glucose", label="Fasting glucose", unit="mg/dl", min=40, max=600)
    assert unit_options(glucose) == ["mg/dl"]


def test_missing_stays_missing():
    assert to_model(None, CHOL, "mmol/L") is None
    assert math.isnan(from_model(float("nan"), CHOL, "mmol/L"))


def test_the_input_range_in_mmol_per_litre_stays_inside_the_plausible_range():
    lo, hi, step = input_range(CHOL, "mmol/L")
    assert step == pytest.approx(0.01)
    assert to_model(lo, CHOL, "mmol/L") >= CHOL.min
    assert to_model(hi, CHOL, "mmol/L") <= CHOL.max
    # tight: one step further would leave the range
    assert to_model(round(lo - step, 2), CHOL, "mmol/L") < CHOL.min
    assert to_model(round(hi + step, 2), CHOL, "mmol/L") > CHOL.max


def test_the_input_range_in_the_model_unit_is_the_schema_range():
    assert input_range(CHOL, "mg/dl") == (CHOL.min, CHOL.max, 1.0)
    assert input_range(SCHEMA["oldpeak"], "mm") == (SCHEMA["oldpeak"].min, SCHEMA["oldpeak"].max, 0.1)


@given(st.integers(min_value=207, max_value=1810))
def test_typed_mmol_values_survive_a_round_trip(hundredths):
    typed = hundredths / 100
    assert from_model(to_model(typed, CHOL, "mmol/L"), CHOL, "mmol/L") == pytest.approx(typed)


@given(st.integers(min_value=80, max_value=700))
def test_switching_units_moves_a_mg_value_by_at_most_half_a_hundredth_mmol(mg):
    shown = from_model(float(mg), CHOL, "mmol/L")
    assert abs(to_model(shown, CHOL, "mmol/L") - mg) <= 0.005 * CHOLESTEROL_MG_DL_PER_MMOL_L + 1e-9
    assert conversion(CHOL, "mmol/L").decimals == 2
