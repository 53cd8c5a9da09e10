"""The dashboard end to end in a real browser: `streamlit run app.py` driven by Playwright in Debian's
Chromium. Each test opens its own browser context, i.e. its own Streamlit session (own cohort, own model).

Writes the README's screenshots to docs/screenshots/. Never skipped: without Chromium these tests fail and
say how to install it.
"""
from __future__ import annotations

import re

import pytest

from core.data import load_cohort
from core.errors import CoreError
from core.data import cleveland_schema

from browser_util import (ROOT, choose, cohort_rows, go_to, nav_link, new_page,
                          number_input, open_dashboard, text_input, risk_metric, risk_text, screenshot, sidebar,
                          start_server, stop_server, tr, upload_cohort, wait_idle, waterfall_signature, WATERFALL_JS,
                          write_cohort_csv, train)

SHOTS = ROOT / "docs" / "screenshots"
PERCENT = re.compile(r"^\d{1,3}\.\d%$")

try:
    from playwright.sync_api import expect
except ImportError as exc:  # a broken environment must be red, not silently skipped
    raise ImportError("playwright is required for the browser tests (pip install -r requirements.txt)") from exc

# Conditions, not sleeps: a fast machine passes at once; a shared CI runner may need the headroom
# (a cold Plotly bundle in a software-rendered browser has taken over 8 s here under load).
expect.set_options(timeout=30_000)


# browser, server and page: the shared fixtures (tests/browser_fixtures.py); a second server where a test
# needs a fresh one:
def _server(tmp_path_factory, name: str, **kwargs):
    base = tmp_path_factory.mktemp(name)
    (base / "store").mkdir()
    return start_server(base / "store", base / "streamlit.log", **kwargs)


def cohort_stats(cohort) -> str:
    return tr("sidebar.cohort_stats", n=cohort.n, prevalence=f"{cohort.prevalence:.0%}")


def test_first_page_shows_the_synthetic_demo_cohort_and_the_notice(server, page):
    elsewhere = []  # a hospital network may have no internet: nothing may be fetched from outside
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
            else elsewhere.append(r.url))
    open_dashboard(page, server)
    side = sidebar(page)
    expect(side.locator(".stMarkdownBadge")).to_have_text(re.compile(re.escape(tr("sidebar.synthetic")) + "$"))
    notice = side.get_by_test_id("stAlertContentWarning").get_by_test_id("stMarkdownContainer")
    expect(notice).to_have_text(tr("notice.decision_support"))
    expect(page.get_by_test_id("stMain").get_by_text(tr("notice.short"))).to_be_visible()
    expect(cohort_rows(page)).to_have_text("303")
    wait_idle(page)
    assert elsewhere == []
    # the report and the missing values: Markdown tables, so the first page never loads st.dataframe's code
    expect(page.get_by_test_id("stMain").get_by_test_id("stMarkdownContainer").locator("table")).to_have_count(2)
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(0)  # drawn on demand: one click
    page.get_by_test_id("stExpander").filter(has_text=tr("cohort.distributions_open", n=13)).locator("summary").click()
    expect(page.get_by_test_id("stPlotlyChart").locator(".main-svg").first).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(13)  # one distribution per feature
    wait_idle(page)
    screenshot(page, SHOTS / "cohort.png")


def test_uploaded_gb18030_semicolon_csv_becomes_the_cohort(server, page, tmp_path):
    csv = write_cohort_csv(tmp_path / "队列.csv", n=250)
    engine = load_cohort(csv.read_bytes(), name=csv.name)  # what the page must report
    assert engine.n == 250
    open_dashboard(page, server)
    upload_cohort(page, csv)
    side = sidebar(page)
    expect(side.get_by_text(cohort_stats(engine))).to_be_visible()
    expect(side.get_by_test_id("stText")).to_have_text("队列.csv")
    expect(side.locator(".stMarkdownBadge")).to_have_count(0)  # no longer the synthetic demo
    expect(cohort_rows(page)).to_have_text("250")


def test_header_only_csv_is_refused_and_the_previous_cohort_stays(server, page, tmp_path):
    good = write_cohort_csv(tmp_path / "ward.csv", n=250)
    bad = tmp_path / "empty.csv"
    bad.write_bytes(good.read_bytes().splitlines(keepends=True)[0])  # the header line alone
    with pytest.raises(CoreError) as refused:  # the engine's own words are what the page must show
        load_cohort(bad.read_bytes(), name=bad.name)

    open_dashboard(page, server)
    upload_cohort(page, good)
    side = sidebar(page)
    expect(side.get_by_test_id("stText")).to_have_text("ward.csv")
    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(str(bad))
    error = page.get_by_test_id("stMain").get_by_test_id("stAlertContentError").get_by_test_id("stMarkdownContainer")
    expect(error).to_have_text(tr("cohort.refused", message=str(refused.value)))
    expect(page.get_by_text(tr("cohort.kept"))).to_be_visible()
    expect(side.get_by_test_id("stText")).to_have_text("ward.csv")
    expect(side.get_by_text(cohort_stats(load_cohort(good.read_bytes(), name=good.name)))).to_be_visible()


def test_training_shows_progress_curves_and_test_metrics(server, page):
    open_dashboard(page, server)
    go_to(page, "nav.train")
    # A short run may show its progress bar for a moment only: record every progress bar the page draws.
    page.evaluate("""() => { window.__progressSeen = false;
        new MutationObserver(() => { if (document.querySelector('[data-testid="stProgress"]')) window.__progressSeen = true; })
            .observe(document.body, {childList: true, subtree: true}); }""")
    number_input(page, tr("train.epochs")).fill("15")
    page.get_by_test_id("stFormSubmitButton").get_by_role("button").click()
    expect(page.get_by_role("heading", name=tr("train.results"))).to_be_visible(timeout=120_000)
    assert page.evaluate("window.__progressSeen"), "no progress bar was drawn while training"
    # the dashboard's default is a 5-network ensemble: the note says the epochs are the first network's
    note = tr("train.done_note_ensemble", networks=5, seconds="@", epochs=15, best="@").split("@")
    expect(page.get_by_test_id("stAlertContentSuccess").filter(has_text=note[0]).filter(has_text=note[1].split("(")[0]
                                                                                   )).to_be_visible()
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    charts = main.get_by_test_id("stPlotlyChart")
    for i in range(6):  # loss, accuracy and AUC curves; ROC, calibration, confusion matrix
        expect(charts.nth(i).locator(".main-svg").first).to_be_visible()
    for key in ("metric.accuracy", "metric.roc_auc", "metric.brier"):
        value = main.get_by_test_id("stMetric").filter(has_text=tr(key)).get_by_test_id("stMetricValue")
        expect(value).to_have_text(re.compile(r"^[01]\.\d{3}$"))
    expect(sidebar(page).get_by_text(tr("sidebar.unsaved_model"))).to_be_visible()
    screenshot(page, SHOTS / "train.png")


def more_for_this_patient(page, label_key: str) -> None:
    """Choose one of the sections under the patient's result (a segmented control)."""
    page.locator(".st-key-pt_more").get_by_role("radio", name=tr(label_key)).click()


def test_patient_risk_changes_with_a_value_and_shows_the_delta(server, page):
    open_dashboard(page, server)
    train(page, epochs=15)
    go_to(page, "nav.patient")
    metric = risk_metric(page)
    expect(metric.get_by_test_id("stMetricValue")).to_have_text(PERCENT)
    expect(page.locator(".st-key-waterfall").get_by_test_id("stPlotlyChart").locator(".main-svg").first).to_be_visible()
    wait_idle(page)
    before_risk, before_chart = risk_text(page), waterfall_signature(page)
    assert before_chart, "the waterfall has no data"
    expect(metric.get_by_test_id("stMetricDelta")).to_have_count(0)  # nothing to compare with yet

    heart_rate = text_input(page, cleveland_schema()["thalach"].display_label("en"))
    old = float(heart_rate.input_value())
    heart_rate.fill(str(int(old - 60 if old >= 130 else old + 60)))
    heart_rate.press("Enter")
    expect(metric.get_by_test_id("stMetricValue")).not_to_have_text(before_risk)
    page.wait_for_function(f"prev => ({WATERFALL_JS})() !== prev", arg=before_chart)
    after_risk = risk_text(page)
    assert PERCENT.match(after_risk)
    delta = metric.get_by_test_id("stMetricDelta")
    expect(delta).to_contain_text(tr("patient.points"))
    shown_delta = float(re.search(r"[+-]\d+\.\d", delta.inner_text().replace("−", "-")).group())
    # The delta is the difference of the exact risks; the two shown are rounded to 0.1 each.
    assert abs(shown_delta - (float(after_risk[:-1]) - float(before_risk[:-1]))) <= 0.11
    previous = page.get_by_test_id("stMetric").filter(has_text=tr("patient.previous"))
    expect(previous.get_by_test_id("stMetricValue")).to_have_text(before_risk)
    # the risk across one value's range, drawn when asked for
    expect(page.locator(".st-key-sensitivity")).to_have_count(0)
    more_for_this_patient(page, "patient.sensitivity")
    expect(page.locator(".st-key-sensitivity").get_by_test_id("stPlotlyChart").locator(".main-svg").first).to_be_visible()
    screenshot(page, SHOTS / "patient.png")

    # The same patient in Chinese: the README's second language.
    choose(page, sidebar(page).get_by_test_id("stSelectbox"), "简体中文")
    expect(page.get_by_role("heading", name=tr("patient.title", "zh"), level=1)).to_be_visible()
    expect(risk_metric(page, "zh").get_by_test_id("stMetricValue")).to_have_text(after_risk)  # same patient, same model
    screenshot(page, SHOTS / "patient_zh.png")


@pytest.mark.parametrize("launcher", [True, False], ids=["ui.serve", "streamlit-run"])
def test_first_click_on_the_language_select_switches_to_chinese(tmp_path_factory, browser, launcher):
    """On a server's very first session (where Streamlit's legacy pages mode used to eat the first click
    on a sidebar widget), one choice in the language select is enough: started as scripts/start.sh does
    (ui.serve leaves that mode before any session) and as plain `streamlit run app.py` (app.py leaves it)."""
    fresh = _server(tmp_path_factory, "fresh", warm_tensorflow=False, launcher=launcher)
    context, page = new_page(browser)
    try:
        open_dashboard(page, fresh)
        choose(page, sidebar(page).get_by_test_id("stSelectbox"), "简体中文")
        for key in ("nav.cohort", "nav.train", "nav.patient", "nav.explain", "nav.model_card"):
            expect(nav_link(page, key, "zh")).to_be_visible()
        expect(page.get_by_role("heading", name=tr("cohort.title", "zh"), level=1)).to_be_visible()
        expect(sidebar(page).locator(".stMarkdownBadge")).to_contain_text(tr("sidebar.synthetic", "zh"))
        wait_idle(page)
        select = sidebar(page).get_by_test_id("stSelectbox")
        expect(select.locator("input")).to_have_value("简体中文")  # the choice held: no rerun undid it
    finally:
        context.close()
        stop_server(fresh)


def test_explain_and_model_card_pages_render(server, page):
    open_dashboard(page, server)
    train(page, epochs=15)
    go_to(page, "nav.explain")
    main = page.get_by_test_id("stMain")
    note = tr("explain.sample_note", n=200, cohort="\0", background=0, seconds=0).split("\0")[0]
    expect(main.get_by_text(note)).to_be_visible(timeout=60_000)  # SHAP of the default sample is done
    for key in ("importance", "beeswarm", "dependence"):
        expect(page.locator(f".st-key-{key}").get_by_test_id("stPlotlyChart").locator(".main-svg").first).to_be_visible()
    screenshot(page, SHOTS / "explain.png")

    go_to(page, "nav.model_card")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name=tr("card.title", name=tr("sidebar.unsaved_model")))).to_be_visible()
    for key in ("card.intended_use", "card.training_data", "card.inputs", "card.test_metrics", "card.limits"):
        expect(main.get_by_role("heading", name=tr(key), exact=True)).to_be_visible()
    expect(page.get_by_test_id("stDownloadButton").filter(has_text=tr("card_page.download_md"))).to_be_visible()
    screenshot(page, SHOTS / "model_card.png")


def test_patient_report_pdf_and_scored_cohort_csv_download(server, page, tmp_path):
    """The two files a clinician takes away: the patient's one-page PDF report and the scored cohort CSV."""
    import io

    import pandas as pd
    import pypdf

    open_dashboard(page, server)
    train(page, epochs=15)
    go_to(page, "nav.patient")
    expect(risk_metric(page)).to_be_visible()
    shown = risk_text(page)
    more_for_this_patient(page, "report_dl.title")  # the report is one of the sections under the result
    pdf_button = page.get_by_test_id("stDownloadButton").filter(has_text=tr("report_dl.pdf"))
    expect(pdf_button).to_be_visible(timeout=60_000)
    with page.expect_download(timeout=60_000) as pdf_download:
        pdf_button.locator("button").click()
    pdf_path = tmp_path / "report.pdf"
    pdf_download.value.save_as(pdf_path)
    reader = pypdf.PdfReader(pdf_path)
    text = " ".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) == 1
    assert shown.rstrip("%").split(".")[0] in text  # the risk on screen is the risk in the report
    assert "bpm" in text and "mmHg" in text  # the patient's inputs with their units

    go_to(page, "nav.scoring")
    csv_button = page.get_by_role("button", name=re.compile(r"^CSV \(303 "))
    expect(csv_button).to_be_visible(timeout=60_000)
    with page.expect_download(timeout=60_000) as csv_download:
        csv_button.click()
    # named once after the cohort (a cohort from heart.csv gave risk-heart.csv.csv)
    assert csv_download.value.suggested_filename == "risk-Synthetic-demo-cohort-Cleveland-like.csv"
    scored = pd.read_csv(io.BytesIO(csv_download.value.path().read_bytes()), encoding="utf-8-sig")
    assert len(scored) == 303  # the active demo cohort, every patient
    assert scored["risk"].between(0, 1).all()
    assert set(scored["risk_band"]) <= {"low", "intermediate", "high"}
