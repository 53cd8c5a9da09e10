"""The Cohort page on files with the traits of #15: the proposed mapping with its evidence, the user's
changes, the report lines, and messages (not crashes) for files that used to break a page."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import trait_files as tf
from i18n_table import tr

from pathlib import Path

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(autouse=True)
def model_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))


def new_app(lang: str = "en") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["lang"] = lang
    return at.run()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.segmented_control(key=f"cohort_source@{at.session_state['lang']}").set_value("upload").run()
    at.file_uploader(key="cohort_upload").set_value((name, data, "application/octet-stream")).run()
    return at


def no_exceptions(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []


def apply(at: AppTest) -> None:
    next(b for b in at.button if b.label == tr("schema.apply", at.session_state["lang"])).click().run()
    no_exceptions(at)


def editor_frame(at: AppTest) -> pd.DataFrame:
    return at.data_editor[0].value


def tables(at: AppTest) -> list[pd.DataFrame]:
    from tables import shown_tables
    return shown_tables(at.main)


def report(at: AppTest) -> str:
    return "\n".join(p.message for p in at.session_state["cohort"].problems)


def test_mapping_table_shows_concepts_units_and_evidence_and_the_cohort_is_converted():
    df = tf.age_in_days().assign(totChol=lambda d: (d.totChol / 38.67).round(2))
    at = upload(new_app(), "ward.csv", tf.csv_bytes(df))
    at.selectbox(key="schema_target").set_value("outcome").run()
    no_exceptions(at)
    table = editor_frame(at).set_index("name")
    assert table.loc["age", "concept"] == "Age" and table.loc["age", "file_unit"] == "days"
    assert table.loc["totChol", "concept"] == "Total cholesterol" and table.loc["totChol", "file_unit"] == "mmol/L"
    assert "fits mmol/L" in table.loc["totChol", "evidence"] and "LOINC 2093-3" in table.loc["totChol", "evidence"]
    assert table.loc["sysBP", "unit"] == "mmHg" and table.loc["sysBP", "min"] == 60
    at.text_input(key="schema_outcome_label").set_value("10-year coronary heart disease").run()
    apply(at)
    cohort = at.session_state["cohort"]
    assert cohort.name == "ward.csv" and cohort.schema.outcome_label == "10-year coronary heart disease"
    assert cohort.df["age"].between(18, 110).all() and cohort.df["totChol"].median() > 100


def test_the_user_can_change_a_mapping_and_remove_one():
    at = upload(new_app(), "ward.csv", tf.csv_bytes(tf.base()))
    at.selectbox(key="schema_target").set_value("outcome").run()
    names = list(editor_frame(at)["name"])
    # cholesterol said to be in mmol/L (wrong on purpose: the values become 38 times larger); diastolic unmapped
    at.session_state["schema_editor_outcome"] = {"edited_rows": {
        names.index("totChol"): {"file_unit": "mmol/L"}, names.index("diaBP"): {"concept": "—"}},
        "added_rows": [], "deleted_rows": []}
    at.run()
    apply(at)
    schema = at.session_state["cohort"].schema
    assert schema["totChol"].source_unit == "mmol/L"
    assert schema["diaBP"].concept is None
    assert "totChol: " in report(at) and "outside 80–700 mg/dl (converted from mmol/L)" in report(at)


def test_zeros_and_impossible_pressures_are_reported_on_the_page():
    at = upload(new_app(), "cardio.csv", tf.csv_bytes(tf.impossible_pressures()))
    at.selectbox(key="schema_target").set_value("outcome").run()
    apply(at)
    text = report(at)
    assert "ap_hi: 1 value outside 60–260 mmHg, row 4 → set to missing" in text
    assert "ap_hi, ap_lo: 1 row with diastolic at or above systolic pressure, row 9" in text


def test_record_numbers_are_kept_out_and_said_why():
    at = upload(new_app(), "ids.csv", tf.csv_bytes(tf.record_numbers()))
    at.selectbox(key="schema_target").set_value("outcome").run()
    table = editor_frame(at).set_index("name")
    assert table.loc["id", "role"] == "ignored" and table.loc["id", "note"].startswith("identifier")
    apply(at)
    assert "id" not in at.session_state["cohort"].schema.feature_names
    assert "id: identifier" in report(at)


def test_statlog_dat_loads_at_once():
    at = upload(new_app(), "heart.dat", tf.statlog_bytes())
    no_exceptions(at)
    cohort = at.session_state["cohort"]
    assert cohort.name == "heart.dat" and cohort.schema.target == "class" and cohort.schema.positive_rule == "== 2"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_xlsx_with_chinese_headers(lang):
    at = upload(new_app(lang), "ward.xlsx", tf.xlsx_bytes(tf.chinese_headers()))
    no_exceptions(at)
    assert at.selectbox(key="upload_sheet").value == "cohort"
    at.selectbox(key="schema_target").set_value("结局").run()
    table = editor_frame(at).set_index("name")
    assert table.loc["收缩压", "concept"] == ("收缩压" if lang == "zh" else "Systolic blood pressure")
    assert table.loc["总胆固醇", "file_unit"] == "mmol/L"
    apply(at)
    assert at.session_state["cohort"].schema["收缩压"].concept == "systolic_bp"


def test_an_unsupported_type_is_refused_in_a_readable_message():
    at = upload(new_app(), "scan.pdf", b"%PDF-1.4 nothing")
    no_exceptions(at)
    assert any("scan.pdf: files of type .pdf cannot be read" in e.value for e in at.error)


def test_one_column_file_says_so():
    at = upload(new_app(), "one.txt", b"value\n" + b"\n".join(str(v).encode() for v in range(30)))
    no_exceptions(at)
    assert any(tr("schema.one_column") in e.value for e in at.error)


def test_a_text_column_as_the_outcome_shows_a_message():
    df = tf.base()
    df["note"] = [f"patient note {k}" for k in range(len(df))]
    at = upload(new_app(), "notes.csv", tf.csv_bytes(df))
    at.selectbox(key="schema_target").set_value("note").run()
    no_exceptions(at)
    apply(at)
    assert any("distinct values" in e.value for e in at.error)


@pytest.mark.parametrize("page", ["pages/train.py", "pages/patient.py", "pages/explain.py", "pages/model_card.py",
                                  "pages/trust.py", "pages/scoring.py"])
def test_every_page_with_an_all_missing_column_cohort_and_a_one_feature_cohort(page):
    at = upload(new_app(), "site.csv", tf.csv_bytes(tf.all_missing_column()))
    at.selectbox(key="schema_target").set_value("outcome").run()
    apply(at)
    assert "totChol" not in at.session_state["cohort"].schema.feature_names
    assert "totChol: no value in any patient → dropped from the model's inputs" in report(at)
    at.switch_page(page).run()
    no_exceptions(at)
    at.switch_page("pages/cohort.py").run()
    one = tf.base()[["age", "outcome"]]
    upload(at, "one.csv", tf.csv_bytes(one))
    at.selectbox(key="schema_target").set_value("outcome").run()
    apply(at)
    assert at.session_state["cohort"].schema.feature_names == ["age"]
    at.switch_page(page).run()
    no_exceptions(at)


def rare_outcome() -> pd.DataFrame:
    """A 10-year outcome in about 15% of patients (Framingham-like)."""
    import numpy as np
    df = tf.base(n=400, seed=5)
    rng = np.random.default_rng(5)
    logit = (df["age"] - 55) / 6 + (df["sysBP"] - 132) / 15 - 2.4
    df["TenYearCHD"] = (rng.random(len(df)) < 1 / (1 + np.exp(-logit))).astype(int)
    return df.drop(columns=["outcome"])


def test_a_rare_outcome_gets_its_name_and_a_proposed_threshold_on_every_page():
    at = upload(new_app(), "framingham.csv", tf.csv_bytes(rare_outcome()))
    at.selectbox(key="schema_target").set_value("TenYearCHD").run()
    at.text_input(key="schema_outcome_label").set_value("10-year coronary heart disease").run()
    apply(at)
    assert at.session_state["cohort"].prevalence < 0.25
    assert "Outcome: 10-year coronary heart disease (TenYearCHD > 0)" in [c.value for c in at.caption]
    at.switch_page("pages/train.py").run()
    next(w for w in at.number_input if w.label == tr("train.epochs")).set_value(30)
    at.get("form_submit_button")[0].click().run()
    assert at.session_state["train_job"].wait(180)
    at.run()
    no_exceptions(at)
    result = at.session_state["train_result"]
    assert result.threshold_rule == "youden" and result.threshold < 0.5
    info = " ".join(i.value for i in at.info)
    assert "(Youden's index) on the training split" in info and "per 100 of the" in info
    assert at.slider(key="threshold").value == pytest.approx(result.threshold)
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    assert any(m.label == "Estimated risk of 10-year coronary heart disease" for m in at.metric)
    at.switch_page("pages/model_card.py").run()
    no_exceptions(at)
    assert any("probability of 10-year coronary heart disease" in m.value for m in at.markdown)
    at.switch_page("pages/trust.py").run()
    no_exceptions(at)
    assert any("with 10-year coronary heart disease." in c.value for c in at.caption)
    # Issue 16.10 / QA: the outcome's name in the tables, the charts and the similar patients too.
    outcome = "10-year coronary heart disease"
    assert any(c == f"With {outcome}" for df in tables(at) for c in df.columns), [list(d.columns) for d in tables(at)]
    at.switch_page("pages/train.py").run()
    confusion = next(c for c in at.get("plotly_chart") if "Confusion" in c.proto.spec or "confusion" in c.proto.spec)
    assert f"predicted no {outcome}" in confusion.proto.spec and f"no {outcome}" in confusion.proto.spec
    assert '"disease"' not in confusion.proto.spec
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    at.segmented_control(key="pt_more").set_value("similar").run()  # the section under the result
    no_exceptions(at)
    assert any(m.label == f"{outcome} among these 10" for m in at.metric), [m.label for m in at.metric]


def test_a_uci_site_file_without_any_cholesterol_trains_and_every_page_renders():
    """Was: the form pre-filled 80 mg/dl, the bundle stored 0 as its fill value and the Trust page crashed
    (IndexError in the glass box). Now cholesterol leaves the inputs with a report line."""
    from core.data import demo_cohort
    df = demo_cohort()
    df["chol"] = np.nan
    body = "\n".join(",".join("?" if v != v else f"{v:g}" for v in row) for row in df.itertuples(index=False))
    at = upload(new_app(), "processed.site.data", body.encode())
    no_exceptions(at)
    cohort = at.session_state["cohort"]
    assert "chol" not in cohort.schema.feature_names
    assert any(p.column == "chol" and p.action == "dropped from the model's inputs" for p in cohort.problems)
    at.switch_page("pages/train.py").run()
    next(w for w in at.number_input if w.label == tr("train.epochs")).set_value(5)
    at.get("form_submit_button")[0].click().run()
    assert at.session_state["train_job"].wait(180)
    at.run()
    no_exceptions(at)
    assert "chol" not in at.session_state["model"].schema.feature_names
    for page in ("pages/patient.py", "pages/trust.py", "pages/explain.py", "pages/model_card.py", "pages/scoring.py"):
        at.switch_page(page).run()
        no_exceptions(at)
    at.switch_page("pages/patient.py").run()
    assert not any("cholesterol" in w.label.lower() for w in at.number_input)


def test_a_well_known_outcome_column_is_proposed_with_its_rule_and_unit_suffixes_are_mapped():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"age_days": rng.uniform(14000, 25000, 80).round(), "totChol_mmol": rng.uniform(3.5, 7, 80).round(2),
                       "sysBP": rng.uniform(100, 180, 80).round(), "TenYearCHD": rng.integers(0, 2, 80)})
    at = upload(new_app(), "framingham_export.csv", tf.csv_bytes(df))
    no_exceptions(at)
    assert at.selectbox(key="schema_target").value == "TenYearCHD"
    assert at.text_input(key="schema_rule").value == "> 0"
    table = editor_frame(at).set_index("name")
    assert table.loc["age_days", "concept"] == "Age" and table.loc["age_days", "file_unit"] == "days"
    assert table.loc["totChol_mmol", "concept"] == "Total cholesterol"
