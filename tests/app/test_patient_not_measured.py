"""The Patient page with an input left empty (issue 14.2): the estimate with its range, the sentence naming
what to measure, the input as "not measured" in the waterfall and never among the reasons."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.data import cleveland_schema, demo_cohort
from core.plots import wrap_label
from core.model import RiskModel, TrainConfig
from conftest import ROOT
from i18n_table import tr
from ui.common import NOT_MEASURED


@pytest.fixture(scope="module")
def ensemble():
    df = demo_cohort()
    return RiskModel(cleveland_schema(), TrainConfig(epochs=15, members=3)).fit(df, (df["num"] > 0).astype(int))


def patient_page(model, lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["lang"] = lang
    at.run()
    at.session_state["model"] = model
    at.session_state["model_token"] = "t"
    at.session_state["model_info"] = {"name": "test"}
    at.session_state["model_meta"] = {}
    at.switch_page("pages/patient.py").run()
    assert [e.value for e in at.exception] == []
    return at


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_empty_field_gives_a_range_and_is_never_a_reason(ensemble, lang):
    at = patient_page(ensemble, lang)
    at.selectbox(key=f"pt_ca@{lang}").set_value(NOT_MEASURED).run()
    assert [e.value for e in at.exception] == []
    label = cleveland_schema()["ca"].display_label(lang)
    markdown = [m.value for m in at.markdown]
    head = tr("patient.missing_range", lang, risk="", low="", high="", features=label).split("**")[0]
    ranged = [m for m in markdown if m.startswith(head) and label in m]
    assert ranged, markdown
    assert tr("patient.settles_one", lang, feature=label) in markdown
    reasons = [m for m in markdown if m.startswith("- ")]
    assert len(reasons) == 3 and all(label not in r for r in reasons)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = chart["data"][0]["y"]
    # apart from the reasons, under the average patient
    assert bars[1] == wrap_label(tr("fig.not_measured", lang, label=label, share="100%"))
    assert sum(label in str(b).replace("<br>", " ") for b in bars) == 1
    # the networks' range is of the same estimate
    result = at.session_state["pt_history"]["risk"]
    assert any(f"{result:.0%}" in m and "3" in m for m in markdown if "**" in m)


def test_the_risk_curve_with_an_input_not_measured(ensemble):
    at = patient_page(ensemble)
    at.selectbox(key="pt_ca@en").set_value(NOT_MEASURED).run()
    at.segmented_control(key="pt_more").set_value("sensitivity").run()
    assert [e.value for e in at.exception] == []
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    # max heart rate was measured: its "now" line; the curve is the estimate over the plausible vessels
    assert chart["layout"]["shapes"] and len(chart["data"][0]["y"]) > 10
