"""The clinician's workflow beyond one risk, in the dashboard (AppTest, no browser): what-if suggestions
with "Apply to form", similar patients and the report on the Patient page; the Score-a-cohort page; the
audit page. The model is a logistic regression fitted on the demo cohort and put into the session as a
trained model would be (no TensorFlow: these pages score in numpy)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.demo import demo_cohort

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TABLE = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))


def tr(key: str, lang: str = "en", **kwargs) -> str:
    text = TABLE[key][lang]
    return text.format(**kwargs) if kwargs else text


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")  # these pages never need TensorFlow
    monkeypatch.delenv("HEART_RISK_AUDIT", raising=False)


def logistic_model():
    """A RiskModel whose network is a logistic regression fitted on the demo cohort (numpy only)."""
    from sklearn.linear_model import LogisticRegression

    from core.model import RiskModel
    from core.network import Network
    from core.preprocess import Preprocessor
    from core.schema import cleveland_schema
    df = demo_cohort()
    schema = cleveland_schema()
    pre = Preprocessor(schema).fit(df)
    y = (df["num"] > 0).astype(int).to_numpy()
    fit = LogisticRegression(max_iter=1000).fit(pre.transform(df), y)
    model = RiskModel(schema)
    model.preprocessor_ = pre
    model.networks_ = [Network([(fit.coef_.T, fit.intercept_)])]
    model.background_ = pre.encode(df.iloc[:100])
    return model


META = {"name": "toy-logistic", "created_utc": "2026-01-02T03:04:05+00:00", "data_fingerprint": "ab" * 32,
        "metrics": {"roc_auc": 0.91}}


def app_with_model(lang: str = "en", page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["lang"] = lang
    at.session_state["model"] = logistic_model()
    at.session_state["model_info"] = {"name": "toy-logistic (v1)", "created": "2026-01-02 03:04 UTC",
                                      "test_auc": 0.91, "source": "store", "path": None}
    at.session_state["model_meta"] = dict(META)
    at.session_state["model_token"] = "t1"
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def no_exceptions(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def percent(text: str) -> float:
    return float(text.rstrip("%"))


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


# ---- the patient page ---------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_whatif_suggestions_apply_to_the_form(lang):
    at = app_with_model(lang, "pages/patient.py")
    no_exceptions(at)
    assert tr("whatif.title", lang) in texts(at.subheader)
    chosen = at.multiselect(key=f"pt_cf_features@{lang}")
    assert chosen.value == ["trestbps", "chol", "fbs"]  # the schema's modifiable features
    # a low target that the typical patient is above
    risk = percent(metric(at, tr("patient.risk", lang)).value)
    at.slider(key="pt_cf_target").set_value(max(5, int(risk) - 5)).run()
    no_exceptions(at)
    found = at.session_state["pt_cf_cache"][1]
    assert found.alternatives, found.reason  # the typical demo patient can get 5 points lower
    sentences = [m for m in texts(at.markdown) if m.startswith("1. ")]
    assert sentences and ("If " in sentences[0] if lang == "en" else "如果" in sentences[0])
    alt = found.alternatives[0]
    at.button(key="pt_cf_apply_0").click().run()
    no_exceptions(at)
    after = percent(metric(at, tr("patient.risk", lang)).value)
    assert after == pytest.approx(alt.risk_after * 100, abs=0.06)
    assert percent(metric(at, tr("patient.previous", lang)).value) == pytest.approx(risk, abs=0.06)
    for change in alt.changes:
        if change.feature in ("trestbps", "chol"):  # the form shows them in mmHg and mg/dl
            box = next(w for w in at.number_input if str(w.key).startswith(f"pt_{change.feature}__"))
            assert box.value == change.new


def test_an_unreachable_target_is_said_in_words():
    at = app_with_model("zh", "pages/patient.py")
    at.multiselect(key="pt_cf_features@zh").set_value(["fbs"]).run()
    at.slider(key="pt_cf_target").set_value(5).run()
    no_exceptions(at)
    found = at.session_state["pt_cf_cache"][1]
    assert found.reason == "unreachable" and found.message("zh") in texts(at.info)


def test_similar_patients_come_from_the_active_cohort():
    at = app_with_model("en", "pages/patient.py")
    no_exceptions(at)
    table = next(d.value for d in at.dataframe if tr("similar.distance") in d.value.columns)
    assert len(table) == 10
    cohort = at.session_state["cohort"]
    assert any(c.startswith("From the active cohort: ") and f"({cohort.n} patients)" in c for c in texts(at.caption))
    rate = metric(at, tr("similar.outcome_rate", k=10)).value
    outcomes = table[tr("similar.outcome")]
    assert percent(rate) == pytest.approx(100 * (outcomes == tr("similar.yes")).mean(), abs=0.5)
