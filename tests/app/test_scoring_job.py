"""Issue 17.6: the Score page scores a large cohort (with reasons) as a background job through the CLI's
batch code (core.workflow.batch.score): progress on screen, the numbers of score_cohort, a reload back on
the job, bad rows listed with row and rule, cancel. The threshold is lowered by HEART_RISK_BACKGROUND_ROWS
so that the demo cohort counts as large. The model is a real (small) trained network: the job loads it
from its bundle, verified, as the CLI does."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data import cleveland_schema, cohort_from_frame, demo_cohort
from core.model import list_drafts
from i18n_table import tr
from test_pages import APP, no_exceptions, texts


@pytest.fixture(scope="module")
def trained():
    from core.model import TrainConfig
    from core.workflow import train_on_cohort
    cohort = cohort_from_frame(demo_cohort(), cleveland_schema(), name="demo", synthetic=True)
    return train_on_cohort(cohort, TrainConfig(epochs=3))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_BACKGROUND_ROWS", "100")
    monkeypatch.delenv("HEART_RISK_AUDIT", raising=False)
    return tmp_path / "store"


def scoring_page(trained, lang: str = "en", cohort=None) -> AppTest:
    """The Score page with the trained model in the session, unsaved (no draft yet), as the Trust page
    leaves a changed model."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["lang"] = lang
    if cohort is not None:
        at.session_state["cohort"] = cohort
    at.session_state["model"] = trained.model
    at.session_state["model_info"] = {"name": None, "created": "—", "test_auc": None, "source": "trained",
                                      "path": None}
    at.session_state["model_meta"] = trained.model.metadata_ if hasattr(trained.model, "metadata_") else None
    at.session_state["model_token"] = "t-job"
    at.run()
    at.switch_page("pages/scoring.py").run()
    no_exceptions(at)
    return at


def finish(at: AppTest, timeout: float = 150) -> AppTest:
    job = at.session_state["score_job"]
    assert job.wait(timeout), "the scoring job did not finish"
    at.run()
    no_exceptions(at)
    return at


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_large_cohort_is_a_background_job_with_score_cohorts_numbers(trained, isolated, lang):
    from core.workflow import score_cohort
    at = scoring_page(trained, lang)
    n = len(demo_cohort())
    assert at.checkbox(key="sc_reasons").value is True  # reasons on by default at any size
    assert any(tr("scoring.job_offer", lang, n=f"{n:,}", threshold="100") == m for m in texts(at.info))
    assert "sc_result" not in at.session_state  # nothing scored in the page's own run
    at.button(key="sc_job_start").click().run()
    no_exceptions(at)
    job = at.session_state["score_job"]
    token = at.session_state["resume_token"]
    # The unsaved model became this session's draft: the job loaded it from there, verified.
    drafts = list_drafts(isolated, token=token)
    assert len(drafts) == 1 and at.session_state["model_info"]["draft_path"] == str(drafts[0]["path"])
    assert tr("scoring.job_which", lang, name=tr("cohort.demo_name", lang), n=f"{n:,}") in texts(at.caption)

    finish(at)
    assert job.status == "done", job.error
    scored = job.scored.table
    expected = score_cohort(trained.model, demo_cohort(), with_reasons=True, lang=lang).table
    assert list(scored["row"]) == list(expected["row"])
    np.testing.assert_allclose(scored["risk"], expected["risk"], rtol=0, atol=1e-12)
    assert list(scored["risk_band"]) == list(expected["risk_band"])
    assert list(scored["reason_1"]) == list(expected["reason_1"])
    assert list(scored.columns[:9]) == list(expected.columns[:9])
    # On screen as the small-cohort path shows it: counts per band, the table, the histogram, downloads.
    assert texts(at.metric)[0] == f"{n:,}"
    assert at.get("plotly_chart") and len(at.get("download_button")) == 2
    assert [d.proto.label for d in at.get("download_button")] == [
        tr("scoring.download_csv", lang, n=n), tr("scoring.download_xlsx", lang, n=n)]
    snap = job.snapshot()
    assert snap["rows_done"] == n and snap["rows_per_s"] > 0
    # In the other language the result stays (no new job) and says which language its reasons are in.
    other = "zh" if lang == "en" else "en"
    at.selectbox(key="lang_choice").set_value(other).run()
    no_exceptions(at)
    assert at.session_state["score_job"] is job
    # the language's name in the page's language ("原因以英文表述", not "原因以 English 表述")
    assert tr("scoring.job_reasons_lang", other, language=tr(f"language.{lang}", other)) in texts(at.caption)


def test_a_reload_comes_back_to_the_running_job_and_cancel_stops_it(trained):
    big = demo_cohort(n=20_000, seed=3)
    cohort = cohort_from_frame(big, cleveland_schema(), name="big", synthetic=False)
    at = scoring_page(trained, cohort=cohort)
    assert tr("scoring.which", name="big", n="20,000") in texts(at.caption)  # as everywhere else ("20000" was shown)
    at.button(key="sc_job_start").click().run()
    no_exceptions(at)
    job = at.session_state["score_job"]
    token = at.session_state["resume_token"]
    deadline = time.monotonic() + 120
    while job.snapshot()["rows_done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not job.finished and job.snapshot()["rows_done"] > 0

    # A new browser session with the same address (a reload): the same job, its progress on screen.
    again = AppTest.from_file(APP, default_timeout=180)
    again.query_params["session"] = token
    again.run()
    again.switch_page("pages/scoring.py").run()
    no_exceptions(again)
    assert again.session_state["score_job"] is job
    bars = again.get("progress")
    assert bars and " of 20,000 patients · " in bars[0].proto.text and "patients/s" in bars[0].proto.text
    assert again.button(key="sc_job_cancel")
    assert any(c.startswith(tr("sidebar.scoring", progress="")) for c in texts(again.sidebar.caption))

    again.button(key="sc_job_cancel").click().run()
    no_exceptions(again)
    assert job.wait(60)
    again.run()
    no_exceptions(again)
    assert job.status == "cancelled" and job.rows_done < 20_000
    assert tr("scoring.job_cancelled", done=f"{job.rows_done:,}", total="20,000") in texts(again.info)
    again.button(key="sc_job_new").click().run()
    no_exceptions(again)
    assert "score_job" not in again.session_state
    assert again.button(key="sc_job_start")  # ready for another


def test_bad_rows_of_an_uploaded_file_are_listed_with_row_and_rule_and_the_rest_scored(trained, tmp_path, monkeypatch):
    from core.workflow import read_log
    log = tmp_path / "audit" / "predictions.jsonl"
    monkeypatch.setenv("HEART_RISK_AUDIT", str(log))
    monkeypatch.setenv("HEART_RISK_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    df = demo_cohort(n=400, seed=8)
    text = df.astype(object)
    text.loc[4, "chol"] = "high"  # text in a number column: data row 5
    text.loc[9, "trestbps"] = 900  # outside the plausible range: data row 10
    data = text.to_csv(index=False).encode()
    at = scoring_page(trained)
    at.segmented_control(key="sc_source@en").set_value("upload").run()
    at.file_uploader(key="sc_upload").set_value(("ward.csv", data, "text/csv")).run()
    no_exceptions(at)
    assert not at.error  # the in-page path would refuse the file; the job reports the rows instead
    at.button(key="sc_job_start").click().run()
    finish(at)
    job = at.session_state["score_job"]
    assert job.status == "done", job.error
    table = job.scored.table
    assert len(table) == 400 and table["risk"].isna().sum() == 2
    assert table.loc[table["row"] == 5, "problem"].item() == "chol: text"
    assert table.loc[table["row"] == 10, "problem"].item() == "trestbps: range"
    listed, count = job.bad_rows()
    assert count == 2 and [(b["row"], b["column"], b["rule"]) for b in listed] == [(5, "chol", "text"),
                                                                                    (10, "trestbps", "range")]
    expander = [e for e in at.expander if e.label == tr("scoring.bad_rows", n="2")]
    assert expander, [e.label for e in at.expander]
    shown = expander[0].dataframe[0].value
    assert list(shown[tr("scoring.row")]) == [5, 10]
    assert list(shown[tr("scoring.bad_rule")]) == [tr("rule.text"), tr("rule.range")]
    # the scored rows are those score_cohort gives for the same rows
    from core.workflow import score_cohort
    good = df.drop(index=[4, 9]).reset_index(drop=True)
    expected = score_cohort(trained.model, good, with_reasons=True).table
    np.testing.assert_allclose(table["risk"].dropna().to_numpy(), expected["risk"].to_numpy(), rtol=0, atol=1e-12)
    # the download: the scored rows (the refused ones are listed above, with no risk to give)
    csv = at.get("download_button")[0]
    assert csv.proto.label == tr("scoring.download_csv", n=398)
    # The audit trail, when on: one line per patient scored (the refused rows have no risk to record), once.
    at.run()
    audit, bad = read_log(log)
    assert bad == 0 and len(audit) == 398 and (audit["source"] == "cohort").all()


def test_a_changed_model_forgets_its_originals_draft(trained):
    """set_model: a copy changed on the Trust page carries its original's info; the draft (and saved
    version) named there are not its files, so a batch job must not load them (nor the Train page call
    the draft 'this session's model')."""
    def script():
        import streamlit as st
        from ui.state import set_model
        set_model(st.session_state["new_model"], {**st.session_state["model_info"], "source": "trained", "name": None},
                  None)

    at = AppTest.from_function(script)
    at.session_state["new_model"] = trained.model
    at.session_state["model_info"] = {"source": "trained", "name": None, "path": "/somewhere/v1",
                                      "draft_path": "/store/.drafts/x/bundle"}
    at.run()
    no_exceptions(at)
    info = at.session_state["model_info"]
    assert info["draft_path"] is None and info["path"] is None


def test_the_page_stays_in_its_own_run_without_reasons(trained):
    at = scoring_page(trained)
    at.checkbox(key="sc_reasons").set_value(False).run()
    no_exceptions(at)
    assert "score_job" not in at.session_state
    assert at.session_state["sc_result"][1].with_reasons is False
    assert not [b for b in at.button if b.key == "sc_job_start"]


def test_a_part_of_the_file_that_cannot_be_read_is_said_not_a_silently_shorter_table(trained, monkeypatch):
    import core.workflow.batch as batch
    from core.errors import CoreError
    read_part = batch.read_part

    def unreadable_middle(part):
        if part.id.endswith("p00001"):
            raise CoreError("ward.csv: rows 501-1000 read as 499 rows instead of 500")
        return read_part(part)

    monkeypatch.setattr(batch, "read_part", unreadable_middle)
    data = demo_cohort(n=1200, seed=4).to_csv(index=False).encode()
    at = scoring_page(trained)
    at.segmented_control(key="sc_source@en").set_value("upload").run()
    at.file_uploader(key="sc_upload").set_value(("ward.csv", data, "text/csv")).run()
    at.button(key="sc_job_start").click().run()
    finish(at)
    job = at.session_state["score_job"]
    assert job.status == "done" and len(job.scored.table) == 700
    assert list(job.scored.table["row"]) == list(range(1, 501)) + list(range(1001, 1201))
    warning = tr("scoring.job_unread", n="500", total="1,200",
                 reason="ward.csv: rows 501-1000 read as 499 rows instead of 500")
    assert warning in texts(at.warning)


def test_an_uploaded_workbook_is_scored_in_parts(trained, monkeypatch):
    """A workbook is read here (the batch reader would read it whole as one part: no progress until the
    end) and handed to the job as Parquet in parts; same numbers as score_cohort."""
    import core.workflow.batch as batch
    from core.workflow import score_cohort
    parts = []
    run_part = batch.run_part
    monkeypatch.setattr(batch, "run_part", lambda model, part, *a: parts.append(part.id) or run_part(model, part, *a))
    df = demo_cohort(n=1200, seed=6)
    buffer = io.BytesIO()
    df.to_excel(buffer, index=False)
    at = scoring_page(trained)
    at.segmented_control(key="sc_source@en").set_value("upload").run()
    at.file_uploader(key="sc_upload").set_value(("ward.xlsx", buffer.getvalue(), "application/octet-stream")).run()
    no_exceptions(at)
    at.button(key="sc_job_start").click().run()
    finish(at)
    job = at.session_state["score_job"]
    assert job.status == "done", job.error
    assert len(parts) == 3  # 500 + 500 + 200 rows
    expected = score_cohort(trained.model, df, with_reasons=True).table
    np.testing.assert_allclose(job.scored.table["risk"], expected["risk"], rtol=0, atol=1e-12)
