"""Where the model's average direction contradicts medicine, the Explain and Patient pages say so."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluate import contradiction_sentence, model_directions
from fake_models import logistic_model
from i18n_table import tr

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")  # these pages never need TensorFlow
    monkeypatch.delenv("HEART_RISK_AUDIT", raising=False)


def open_page(page: str, lang: str, model) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["lang"] = lang
    at.session_state["model"] = model
    at.session_state["model_info"] = {"name": "toy-logistic (v1)", "created": "2026-01-02 03:04 UTC",
                                      "test_auc": 0.91, "source": "store", "path": None}
    at.session_state["model_meta"] = {"name": "toy-logistic", "metrics": {"roc_auc": 0.91}}
    at.session_state["model_token"] = "t1"
    at.run()
    at.switch_page(page).run()
    assert [e.value for e in at.exception] == []
    return at


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_explain_page_names_every_contradiction(lang):
    from ui.common import markdown_text
    model = logistic_model()  # on the demo cohort: risk falls with age and with high blood sugar
    contradictions = [d for d in model_directions(model) if d.contradicts]
    assert {d.feature for d in contradictions} >= {"age"}
    at = open_page("pages/explain.py", lang, model)
    warnings = [w.value for w in at.warning]
    assert tr("direction.title", lang) in [s.value for s in at.subheader]
    for d in contradictions:
        assert markdown_text(contradiction_sentence(d, model.schema, lang)) in warnings
    assert tr("direction.method", lang) in [c.value for c in at.caption]


def test_the_patient_page_names_a_contradiction_only_among_this_patient_s_reasons():
    from ui.common import markdown_text
    model = logistic_model()
    contradictions = {d.feature: d for d in model_directions(model) if d.contradicts}
    at = open_page("pages/patient.py", "en", model)
    seen = []
    for age in ("56", "77"):  # the typical patient's reasons hold no age; at 77 age is one (lowering the risk)
        at.text_input(key="pt_age__years").set_value(age).run()
        warnings = [w.value for w in at.warning]
        shown = [m.value for m in at.markdown if m.value.startswith("- ")]
        assert shown  # the reasons
        for name, d in contradictions.items():
            among = any(s[2:].startswith(model.schema[name].display_label("en")) for s in shown)
            assert (markdown_text(contradiction_sentence(d, model.schema, "en")) in warnings) == among, (age, name)
            seen.append((age, name, among))
    assert ("77", "age", True) in seen and ("56", "age", False) in seen
