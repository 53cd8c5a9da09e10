"""The patient form under a hurried clinician's hands (issue 16.1-3, 18.10), page level (AppTest): what a
field shows is what the risk uses. A decimal comma is a decimal mark, a cleared field is 'not measured',
letters and out-of-range values are refused next to the field and the risk is then not shown at all."""
from __future__ import annotations

import pytest

from core.workflow import patient_risk
from i18n_table import tr
from test_scoring_page import app_with_model, isolated, metric, no_exceptions, percent, texts  # noqa: F401

from ui.common import markdown_text
from ui.numbers import NotANumber, parse_number


@pytest.mark.parametrize("typed, value", [("0,5", 0.5), ("0.5", 0.5), (" 12 ", 12.0), ("０，５", 0.5), (",5", 0.5),
                                          ("−1,25", -1.25), ("77.77", 77.77), ("", None), ("  ", None), (None, None)])
def test_a_typed_number_is_read_with_either_decimal_mark(typed, value):
    assert parse_number(typed) == value


@pytest.mark.parametrize("typed", ["abc", "1,234.5", "1.2.3", "0,5,1", "5e3", "inf", "nan", "12 mmHg", "--1"])
def test_anything_else_is_refused_never_guessed(typed):
    with pytest.raises(NotANumber):
        parse_number(typed)


def field(at, name: str):
    return next(w for w in at.text_input if str(w.key).split("__")[0] == f"pt_{name}")


def used(at) -> dict:
    """The values the shown risk was computed from (the page's key of the last risk)."""
    return dict(at.session_state["pt_history"]["key"])


def shown_risk(at) -> float:
    return percent(metric(at, tr("patient.risk")).value)


def test_decimal_comma_clearing_letters_and_range_on_the_patient_page():
    at = app_with_model("en", "pages/patient.py")
    no_exceptions(at)
    model = at.session_state["model"]

    # a decimal comma is a decimal mark: 0,5 mm is 0.5 mm, never 5
    field(at, "oldpeak").set_value("0,5").run()
    no_exceptions(at)
    assert field(at, "oldpeak").value == "0,5" and used(at)["oldpeak"] == 0.5
    assert shown_risk(at) == pytest.approx(patient_risk(model, used(at)).risk * 100, abs=0.05)

    # the value at the precision it is used: 77.77 years is scored as 77.77 and the reasons say so
    field(at, "age").set_value("77.77").run()
    assert used(at)["age"] == 77.77
    waterfall_and_reasons = " ".join(texts(at.markdown))
    result = patient_risk(model, used(at), top=len(model.preprocessor_.features))
    age_reason = next(r for r in result.reasons if r.feature == "age")
    assert age_reason.value == "77.77 years" and age_reason.text in waterfall_and_reasons

    # cleared = not measured: None goes to the risk (the missing-input handling), never the field's minimum
    field(at, "chol").set_value("").run()
    no_exceptions(at)
    assert used(at)["chol"] is None
    assert shown_risk(at) == pytest.approx(patient_risk(model, used(at)).risk * 100, abs=0.05)

    # letters: refused next to the field, and no risk is shown for values no longer on screen
    before = dict(used(at))
    field(at, "age").set_value("abc").run()
    no_exceptions(at)
    assert field(at, "age").value == "abc"
    assert any(markdown_text(tr("patient.not_a_number", text="abc")) in m for m in texts(at.markdown))
    assert not [m for m in at.metric if m.label == tr("patient.risk")]
    assert any(tr("patient.not_updated", fields="")[:20] in e for e in texts(at.error))
    assert used(at) == before  # nothing was scored with it

    # out of the plausible range: refused the same way; back in range, the risk is back and uses it
    field(at, "age").set_value("150").run()
    outside = markdown_text(tr("patient.outside", range="18–100 years"))
    assert any(outside in m for m in texts(at.markdown)), texts(at.markdown)
    assert not [m for m in at.metric if m.label == tr("patient.risk")]
    field(at, "age").set_value("64").run()
    no_exceptions(at)
    assert used(at)["age"] == 64.0 and not texts(at.error)
    assert shown_risk(at) == pytest.approx(patient_risk(model, used(at)).risk * 100, abs=0.05)


def test_chinese_units_are_translated_and_labels_stand_above_coded_fields():
    at = app_with_model("zh", "pages/patient.py")
    no_exceptions(at)
    assert field(at, "age").label == "年龄 (岁)"
    ca = next(s for s in at.selectbox if str(s.key).startswith("pt_ca@"))
    assert ca.label == "荧光透视着色的主要血管数" and ca.options == ["未测量", "0 支", "1 支", "2 支", "3 支"]  # no label inside
