"""The clinician's workflow beyond one risk, in the dashboard (AppTest, no browser): what-if suggestions
with "Apply to form", similar patients and the report on the Patient page; the Score-a-cohort page; the
audit page. The model is a logistic regression fitted on the demo cohort and put into the session as a
trained model would be (no TensorFlow: these pages score in numpy)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data import demo_cohort
from fake_models import ScaledEnsemble, logistic_model
from i18n_table import tr

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")  # these pages never need TensorFlow
    monkeypatch.delenv("HEART_RISK_AUDIT", raising=False)


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
SECTIONS = {"sensitivity": "patient.sensitivity", "whatif": "whatif.title", "similar": "similar.title",
            "report": "report_dl.title"}


def open_section(at: AppTest, section: str) -> AppTest:
    """A click on one of the sections offered under the result (only the chosen one is computed)."""
    at.segmented_control(key="pt_more").set_value(section)
    return at.run()


def test_the_sections_under_the_result_are_computed_only_when_chosen():
    at = app_with_model("zh", "pages/patient.py")
    no_exceptions(at)
    choice = at.segmented_control(key="pt_more")
    assert choice.value is None and choice.label == tr("patient.more", "zh")
    assert choice.options == [tr(k, "zh") for k in SECTIONS.values()]  # as shown, translated
    # the waterfall alone: nothing of the four sections until one is chosen
    assert len(at.get("plotly_chart")) == 1
    assert "session_cache_pt_cf" not in at.session_state and not at.get("download_button") and not at.dataframe

    open_section(at, "sensitivity")
    no_exceptions(at)
    assert len(at.get("plotly_chart")) == 2  # + the risk across one value's range

    open_section(at, "report")
    no_exceptions(at)
    assert len(at.get("plotly_chart")) == 1
    # PDF and HTML, built when clicked (core.report is tested in tests/test_report.py)
    assert [d.proto.label for d in at.get("download_button")] == [tr("report_dl.pdf", "zh"), tr("report_dl.html", "zh")]
    assert "session_cache_pt_cf" not in at.session_state  # the report's what-ifs are searched when it is built

    open_section(at, "whatif")
    assert not at.get("download_button") and "session_cache_pt_cf" in at.session_state


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_whatif_suggestions_apply_to_the_form(lang):
    at = open_section(app_with_model(lang, "pages/patient.py"), "whatif")
    no_exceptions(at)
    chosen = at.multiselect(key=f"pt_cf_features@{lang}")
    assert chosen.value == ["trestbps", "chol", "fbs"]  # the schema's modifiable features
    # a low target that the typical patient is above
    risk = percent(metric(at, tr("patient.risk", lang)).value)
    at.slider(key="pt_cf_target").set_value(max(5, int(risk) - 5)).run()
    no_exceptions(at)
    found = at.session_state["session_cache_pt_cf"][1]
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
            box = next(w for w in at.text_input if str(w.key).startswith(f"pt_{change.feature}__"))
            assert float(box.value) == change.new


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_whatif_offers_only_modifiable_features_and_marks_research(lang):
    from core.workflow import conflict_sentence, direction_conflicts
    from ui.common import markdown_text
    at = open_section(app_with_model(lang, "pages/patient.py"), "whatif")
    no_exceptions(at)
    model = at.session_state["model"]
    labels = [model.schema[n].display_label(lang) for n in ("trestbps", "chol", "fbs")]
    assert at.multiselect(key=f"pt_cf_features@{lang}").options == labels  # never age, sex or a test result
    assert at.toggle(key="pt_cf_research").value is False
    assert tr("whatif.meaning", lang) in texts(at.caption)
    for conflict in direction_conflicts(model):  # e.g. higher blood sugar lowering the estimate
        assert markdown_text(conflict_sentence(conflict, model.schema, lang)) in texts(at.warning)
    at.slider(key="pt_cf_target").set_value(5).run()
    assert not at.session_state["session_cache_pt_cf"][1].research

    at.toggle(key="pt_cf_research").set_value(True).run()
    no_exceptions(at)
    research = at.multiselect(key=f"pt_cf_features_research@{lang}")
    assert len(research.options) == len(model.preprocessor_.feature_names)
    assert tr("whatif.research_warning", lang) in texts(at.warning)
    found = at.session_state["session_cache_pt_cf"][1]
    assert found.research and found.alternatives
    shown = [m for m in texts(at.markdown) if m.startswith("1. ")]
    assert shown and shown[0].startswith("1. " + markdown_text(tr("whatif.research_mark", lang)))


def test_an_unreachable_target_is_said_in_words():
    at = open_section(app_with_model("zh", "pages/patient.py"), "whatif")
    at.multiselect(key="pt_cf_features@zh").set_value(["fbs"]).run()
    at.slider(key="pt_cf_target").set_value(5).run()
    no_exceptions(at)
    found = at.session_state["session_cache_pt_cf"][1]
    assert found.reason == "unreachable" and found.message("zh") in texts(at.info)


def test_similar_patients_come_from_the_active_cohort():
    at = open_section(app_with_model("en", "pages/patient.py"), "similar")
    no_exceptions(at)
    table = next(d.value for d in at.dataframe if tr("similar.distance") in d.value.columns)
    assert len(table) == 10
    cohort = at.session_state["cohort"]
    assert any(c.startswith("From the active cohort: ") and f"({cohort.n} patients)" in c for c in texts(at.caption))
    rate = metric(at, tr("similar.outcome_rate", k=10)).value
    outcomes = table[tr("similar.outcome")]
    assert percent(rate) == pytest.approx(100 * (outcomes == tr("fig.disease")).mean(), abs=0.5)
    # with its Wilson 95% interval under it
    from core.metrics import wilson_interval
    low, high = wilson_interval(int((outcomes == tr("fig.disease")).sum()), 10)
    assert tr("metric.interval", low=f"{float(low):.0%}", high=f"{float(high):.0%}") in texts(at.caption)


# ---- core.scoring -------------------------------------------------------------------------------
def test_score_cohort_orders_columns_counts_bands_and_reports_progress():
    from core.workflow import risk_band, score_table
    from core.workflow import filter_scored, score_cohort
    model = logistic_model()
    df = demo_cohort().iloc[:120]
    seen = []
    scored = score_cohort(model, df, with_reasons=True, progress=lambda done, total: seen.append((done, total)))
    table = scored.table
    assert seen[-1] == (120, 120)
    assert list(table.columns[:9]) == ["row", "risk", "risk_band", "risk_low", "risk_high", "missing",
                                       "reason_1", "reason_2", "reason_3"]
    assert list(table["row"]) == list(range(1, 121))
    reference = score_table(model, df)
    np.testing.assert_allclose(table["risk"], reference["risk"])
    assert list(table["reason_1"]) == list(reference["reason_1"])
    assert list(table["risk_band"]) == list(risk_band(table["risk"].to_numpy()))
    counts = scored.band_counts()
    assert sum(counts.values()) == 120 and counts["high"] == int((table["risk"] >= 0.65).sum())
    high = filter_scored(table, ["high", "intermediate"], 0.5)
    assert len(high) == int((table["risk"] >= 0.5).sum())
    assert not scored.with_interval and "ensemble_low" not in table


def test_an_ensemble_adds_its_interval():
    from core.workflow import score_cohort

    scored = score_cohort(ScaledEnsemble(logistic_model()), demo_cohort().iloc[:50], with_reasons=False)
    table = scored.table
    assert scored.with_interval and list(table.columns[:8]) == ["row", "risk", "risk_band", "risk_low", "risk_high",
                                                                "missing", "ensemble_low", "ensemble_high"]
    complete = table[table["missing"] == ""]  # (a row with an input not measured: the networks' pooled risks)
    assert (complete["ensemble_low"] <= complete["risk"] + 1e-12).all()
    assert (complete["risk"] <= complete["ensemble_high"] + 1e-12).all()
    assert table[["ensemble_low", "ensemble_high"]].notna().all().all()


def test_downloads_neutralise_formula_cells():
    from openpyxl import load_workbook

    from core.workflow import csv_bytes
    from core.workflow import excel_bytes, score_cohort
    df = demo_cohort().iloc[:20].copy()
    df.insert(0, "patient_id", ["=HYPERLINK(\"http://x\")"] + [f"P{i}" for i in range(1, 20)])
    table = score_cohort(logistic_model(), df, with_reasons=False).table
    text = csv_bytes(table).decode("utf-8-sig")
    assert "'=HYPERLINK" in text
    book = load_workbook(io.BytesIO(excel_bytes(table)))
    sheet = book.active
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["row", "risk", "risk_band"]
    ids = [row[header.index("patient_id")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert ids[0] == "'=HYPERLINK(\"http://x\")" and ids[1] == "P1"
    risks = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    np.testing.assert_allclose(risks, table["risk"])


def test_missing_columns_are_refused():
    from core.errors import PatientError
    from core.workflow import score_cohort
    with pytest.raises(PatientError, match="missing: chol, thal"):
        score_cohort(logistic_model(), demo_cohort().drop(columns=["chol", "thal"]))


# ---- the Score-a-cohort page --------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_scoring_page_scores_the_active_cohort_and_filters(lang):
    at = app_with_model(lang, "pages/scoring.py")
    no_exceptions(at)
    assert tr("scoring.title", lang) in texts(at.title)
    scored = at.session_state["sc_result"][1]
    cohort = at.session_state["cohort"]
    assert len(scored.table) == cohort.n and scored.with_reasons
    counts = scored.band_counts()
    assert metric(at, tr("band.high", lang)).value == f"{counts['high']:,}"
    shown = at.dataframe[0].value
    assert len(shown) == cohort.n and tr("scoring.reason", lang, k=1) in shown.columns
    # the demo cohort's 5 patients with an input not measured: its name and the range as text, blanks elsewhere
    unmeasured = shown[shown[tr("scoring.missing", lang)] != ""]
    assert len(unmeasured) == 5 and (unmeasured[tr("scoring.risk_range", lang)].str.contains("–")).all()
    assert (shown[shown[tr("scoring.missing", lang)] == ""][tr("scoring.risk_range", lang)] == "").all()
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("download_button")) == 2
    # only the high band, at least 70%
    at.multiselect(key=f"sc_bands@{lang}").set_value(["high"]).run()
    at.slider(key="sc_min_risk").set_value(70).run()
    no_exceptions(at)
    shown = at.dataframe[0].value
    expected = scored.table[(scored.table["risk_band"] == "high") & (scored.table["risk"] >= 0.7)]
    assert len(shown) == len(expected)
    assert tr("scoring.shown", lang, n=len(expected), total=cohort.n) in texts(at.caption)
    assert at.session_state["sc_result"][1] is scored  # filtering does not score again


def test_scoring_page_upload_names_missing_columns_and_scores_a_good_file():
    at = app_with_model("en", "pages/scoring.py")
    at.segmented_control(key="sc_source@en").set_value("upload").run()
    assert any(i.startswith(tr("scoring.upload_hint", columns="@").split("@")[0]) for i in texts(at.info))
    bad = demo_cohort().drop(columns=["chol"]).iloc[:30].to_csv(index=False).encode()
    at.file_uploader(key="sc_upload").set_value(("ward.csv", bad, "text/csv")).run()
    no_exceptions(at)
    assert any("lacks columns the model needs: chol" in e for e in texts(at.error))
    good = demo_cohort().iloc[:40].assign(mrn=[f"M{i}" for i in range(40)]).to_csv(index=False).encode()
    at.file_uploader(key="sc_upload").set_value(("ward.csv", good, "text/csv")).run()
    no_exceptions(at)
    scored = at.session_state["sc_result"][1]
    assert len(scored.table) == 40 and list(scored.table["mrn"][:2]) == ["M0", "M1"]
    assert any(c.startswith("Scoring ward.csv: 40 patients") for c in texts(at.caption))


def test_scoring_page_scores_an_excel_workbook():
    """QA: the uploader said 'CSV' and took only text files, while the cohort page and `core score` read .xlsx."""
    import io
    at = app_with_model("en", "pages/scoring.py")
    at.segmented_control(key="sc_source@en").set_value("upload").run()
    book = io.BytesIO()
    demo_cohort().iloc[:25].to_excel(book, index=False)
    mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    at.file_uploader(key="sc_upload").set_value(("ward.xlsx", book.getvalue(), mime)).run()
    no_exceptions(at)
    assert texts(at.error) == []
    scored = at.session_state["sc_result"][1]
    assert len(scored.table) == 25
    assert any(c.startswith("Scoring ward.xlsx: 25 patients") for c in texts(at.caption))


# ---- the audit trail in the dashboard ---------------------------------------------------------------
def test_without_the_audit_log_there_is_no_audit_page_and_nothing_is_written(tmp_path):
    at = app_with_model("en", "pages/patient.py")
    no_exceptions(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/audit.py")
    assert not list(tmp_path.glob("**/*.jsonl"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_with_the_audit_log_predictions_are_recorded_and_browsable(tmp_path, monkeypatch, lang):
    from core.workflow import inputs_hash, read_log
    log = tmp_path / "audit" / "predictions.jsonl"
    monkeypatch.setenv("HEART_RISK_AUDIT", str(log))
    monkeypatch.setenv("HEART_RISK_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    at = app_with_model(lang, "pages/patient.py")
    no_exceptions(at)
    at.run()  # a rerun with the same inputs is not a new prediction
    table, bad = read_log(log)
    assert bad == 0 and len(table) == 1 and table["source"].tolist() == ["patient"]
    risk = percent(metric(at, tr("patient.risk", lang)).value)
    assert table["risk"].iloc[0] * 100 == pytest.approx(risk, abs=0.05)
    assert table["model"].iloc[0] == "toy-logistic (v1)"
    assert "237.0" not in log.read_text() and "trestbps" not in log.read_text()
    values = {f: v for f, v in at.session_state["pt_history"]["key"]}
    assert table["inputs_hmac"].iloc[0] == inputs_hash(values)

    at.switch_page("pages/scoring.py").run()
    no_exceptions(at)
    cohort = at.session_state["cohort"]
    table, _ = read_log(log)
    assert len(table) == 1 + cohort.n and (table["source"] == "cohort").sum() == cohort.n

    at.switch_page("pages/audit.py").run()
    no_exceptions(at)
    assert tr("audit.title", lang) in texts(at.title)
    assert metric(at, tr("audit.entries", lang)).value == f"{1 + cohort.n:,}"
    shown = at.dataframe[0].value
    assert len(shown) == 1 + cohort.n
    assert shown[tr("audit.source", lang)].iloc[-1] == tr("audit.source_patient", lang)  # newest first
    at.multiselect(key=f"audit_sources@{lang}").set_value(["patient"]).run()
    assert len(at.dataframe[0].value) == 1
    assert tr("audit.shown", lang, n=1, total=1 + cohort.n) in texts(at.caption)
