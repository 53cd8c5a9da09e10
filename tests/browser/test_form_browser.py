"""The patient form in Chromium as a hurried clinician uses it (issue 16.1-3, 16.7, 18.10): typing a decimal
comma, clearing a field, typing letters or an impossible age, then reading the page in both languages at
1280 and 1920 px. One browser session for all of it (each costs a training run and ~20 s).

What the risk used is read from the waterfall: its bars name every input with the value it was scored
with ("ST depression (exercise vs rest) 0.5 mm"), drawn from the same call that gave the risk.
"""
from __future__ import annotations

import json
import re


from core.data import cleveland_schema

from browser_util import (ROOT, WATERFALL_JS, choose, go_to, new_page, open_dashboard,
                          risk_metric, sidebar, text_input, tr, train, wait_idle)

try:
    from playwright.sync_api import expect
except ImportError as exc:  # a broken environment must be red, not silently skipped
    raise ImportError("playwright is required for the browser tests (pip install -r requirements.txt)") from exc

expect.set_options(timeout=30_000)
SHOTS = ROOT / "docs" / "screenshots"
SCHEMA = cleveland_schema()
PERCENT = re.compile(r"^\d{1,3}\.\d%$")


def label(name: str, lang: str = "en") -> str:
    f = SCHEMA[name]
    unit = f.display_unit(lang)
    return f"{f.display_label(lang)} ({unit})" if unit and not f.is_coded else f.display_label(lang)


def bars(page) -> list[str]:
    """The waterfall's bar labels: every input with the value the risk was computed from."""
    data = page.evaluate(WATERFALL_JS)
    return [y.replace("<br>", " ") for y in json.loads(data)[0][1]] if data else []  # a long label wraps


def type_into(page, name: str, text: str) -> None:
    """Type into a form field as a user does (select all, type, Enter) and wait for the page to settle."""
    field = text_input(page, label(name))
    field.click()
    field.press("Control+a")
    field.press("Backspace") if text == "" else field.press_sequentially(text)
    field.press("Enter")
    page.wait_for_timeout(300)  # the rerun starts on Enter; then wait for its end
    wait_idle(page)


def bar_for(page, name: str) -> str:
    prefix = SCHEMA[name].display_label("en") + " "
    return next((b for b in bars(page) if b.startswith(prefix)), "")


# Elements whose text is cut: a label, a metric's label or a chosen value wider than its box (an ellipsis),
# a chart's axis label past the figure's edge.
CUT_JS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const sel = ['[data-testid="stWidgetLabel"] *', '[data-testid="stMetricLabel"]', '[data-testid="stMetricLabel"] *',
                 '[data-baseweb="select"] [value]', '[data-baseweb="select"] div[title]',
                 '[data-testid="stSelectbox"] input'];
    const cut = []; let checked = 0;
    for (const el of main.querySelectorAll(sel.join(','))) {
        const text = el.value !== undefined && el.tagName === 'INPUT' ? el.value : el.innerText;
        checked += 1;
        if (text && el.scrollWidth > el.clientWidth + 1) cut.push(text);
    }
    for (const plot of main.querySelectorAll('.js-plotly-plot')) {  // an axis label past the figure's edge
        const box = plot.getBoundingClientRect();
        for (const t of plot.querySelectorAll('.ytick text, .xtick text')) {
            const r = t.getBoundingClientRect();
            checked += 1;
            if (r.left < box.left - 1 || r.right > box.right + 1) cut.push(t.textContent);
        }
    }
    return {checked, cut}; }"""


# A chart's tick label outside its figure or under its legend.
LEGEND_JS = """() => {
    const bad = []; const plots = [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')];
    for (const plot of plots) {
        const box = plot.getBoundingClientRect();
        const legend = plot.querySelector('.legend'); const lr = legend && legend.getBoundingClientRect();
        for (const t of plot.querySelectorAll('.xtick text, .ytick text')) {
            const r = t.getBoundingClientRect();
            if (r.left < box.left - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1) bad.push(t.textContent);
            if (lr && r.left < lr.right && r.right > lr.left && r.top < lr.bottom && r.bottom > lr.top)
                bad.push('under the legend: ' + t.textContent);
        }
    }
    return {charts: plots.length, bad}; }"""


def test_typed_values_are_the_values_used_and_nothing_is_cut(server, browser):
    context, page = new_page(browser)
    try:
        page.set_viewport_size({"width": 1280, "height": 900})
        open_dashboard(page, server)
        # 16.10: the cohort's distribution charts: the codes' names inside the figure, none under the legend
        page.get_by_test_id("stExpander").filter(has_text=tr("cohort.distributions_open", n=13)).locator(
            "summary").click()
        expect(page.get_by_test_id("stPlotlyChart").nth(12).locator(".main-svg").first).to_be_visible()
        wait_idle(page)
        page.wait_for_timeout(500)
        overlaps = page.evaluate(LEGEND_JS)
        assert overlaps["charts"] == 13 and overlaps["bad"] == [], overlaps
        train(page, epochs=15)
        go_to(page, "nav.patient")
        metric = risk_metric(page).get_by_test_id("stMetricValue")
        expect(metric).to_have_text(PERCENT)
        wait_idle(page)

        # 16.1: a decimal comma is a decimal mark. 5 first, then 0,5: a different risk, scored with 0.5 mm
        type_into(page, "oldpeak", "5")
        assert bar_for(page, "oldpeak").endswith(" 5.0 mm")
        at_five = metric.inner_text()
        type_into(page, "oldpeak", "0,5")
        expect(text_input(page, label("oldpeak"))).to_have_value("0,5")
        assert bar_for(page, "oldpeak").endswith(" 0.5 mm"), bars(page)
        at_half = metric.inner_text()
        type_into(page, "oldpeak", "0.5")
        assert metric.inner_text() == at_half
        assert at_half != at_five or "0.5 mm" in bar_for(page, "oldpeak")

        # 18.10: shown at the precision used: 77.77 stays 77.77 in the field and in the waterfall
        type_into(page, "age", "77.77")
        expect(text_input(page, label("age"))).to_have_value("77.77")
        assert bar_for(page, "age").endswith(" 77.77 years"), bars(page)

        # 16.2: clearing a field is 'not measured', never the field's minimum
        type_into(page, "chol", "")
        expect(text_input(page, label("chol"))).to_have_value("")
        expect(metric).to_have_text(PERCENT)
        chol_bar = next(b for b in bars(page) if b.startswith(SCHEMA["chol"].display_label("en")))
        assert "not measured" in chol_bar and "mg/dl" not in chol_bar, bars(page)
        expect(page.get_by_test_id("stMain").get_by_text(
            re.compile(r"not measured: " + re.escape(SCHEMA["chol"].display_label("en")))).first).to_be_visible()

        # 16.2 and 16.3: letters, then an impossible age: refused next to the field, the risk not shown
        for typed, message in [("abc", tr("patient.not_a_number", text="abc")),
                               ("150", tr("patient.outside", range="18–100 years"))]:
            type_into(page, "age", typed)
            expect(text_input(page, label("age"))).to_have_value(typed)
            column = page.get_by_test_id("stColumn").filter(has=text_input(page, label("age"))).last
            expect(column.get_by_text(message)).to_be_visible()
            expect(page.get_by_test_id("stAlertContentError").filter(
                has_text=tr("patient.not_updated", fields="").strip())).to_be_visible()
            expect(risk_metric(page)).to_have_count(0)
            expect(page.locator(".st-key-waterfall")).to_have_count(0)
        type_into(page, "age", "64")
        expect(metric).to_have_text(PERCENT)
        assert bar_for(page, "age").endswith(" 64 years")

        # 16.7: labels, the risk's label and chosen values in full, both languages, 1280 and 1920 px
        for lang in ("en", "zh"):
            if lang == "zh":
                choose(page, sidebar(page).get_by_test_id("stSelectbox"), "简体中文")
                expect(page.get_by_role("heading", name=tr("patient.title", "zh"), level=1)).to_be_visible()
                wait_idle(page)
            for width in (1280, 1920):
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(300)
                seen = page.evaluate(CUT_JS)
                print(lang, width, seen)
                assert seen["checked"] >= 13 and seen["cut"] == [], f"cut off at {width} px in {lang}: {seen}"
    finally:
        context.close()


# Every text the progress bar and the sidebar's training line show during a run (a run can be short).
RECORD_PROGRESS_JS = """() => { window.__bar = []; window.__side = [];
    new MutationObserver(() => {
        const bar = document.querySelector('[data-testid="stMain"] [data-testid="stProgress"]');
        if (bar && bar.innerText) window.__bar.push(bar.innerText.trim());
        const side = [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]')]
            .map(e => e.innerText.trim()).find(s => s.startsWith(%s));
        if (side) window.__side.push(side);
    }).observe(document.body, {childList: true, subtree: true, characterData: true}); }"""


def test_progress_covers_every_network_in_the_page_and_the_sidebar(server, browser):
    """Issue 16.6: with an ensemble the bar was full at the first network's last epoch while four more
    trained, and the sidebar said 'epoch 0' throughout."""
    context, page = new_page(browser)
    try:
        open_dashboard(page, server)
        go_to(page, "nav.train")
        page.evaluate(RECORD_PROGRESS_JS % json.dumps(tr("sidebar.training", progress="").strip()))
        members = int(page.get_by_test_id("stNumberInput").filter(has_text=tr("train.members")).locator("input")
                      .input_value())
        assert members > 1  # the dashboard's default is an ensemble
        # every network runs 150 epochs (no early stopping): a few seconds each, long enough to watch
        page.get_by_test_id("stNumberInput").filter(has_text=tr("train.epochs")).locator("input").fill("150")
        page.get_by_test_id("stCheckbox").filter(has_text=tr("train.early_stopping")).locator("label").click()
        page.get_by_test_id("stFormSubmitButton").get_by_role("button").click()
        expect(page.get_by_role("heading", name=tr("train.results"))).to_be_visible(timeout=180_000)
        bar, side = page.evaluate("window.__bar"), page.evaluate("window.__side")
        beyond_first = [tr("train.progress_network", network=k, networks=members) for k in range(2, members + 1)]
        assert any(text.startswith(tuple(beyond_first)) for text in bar), bar[-5:]  # not a full bar after one
        left = re.compile(re.escape(tr("train.progress_left", seconds="@")).replace("@", r"\d+"))
        assert any(left.search(text) for text in bar), bar[-5:]  # an estimate of the time left
        # the sidebar moved too, in the same words: a network beyond the first, with its epoch
        assert any(any(k in s for k in beyond_first) for s in side), side[-5:]
    finally:
        context.close()


def test_a_reload_keeps_the_cohort_the_running_training_and_the_patient(server, browser, tmp_path):
    """Issue 16.4: a reload (or the address opened again) showed the demo cohort and 'No model yet' while
    the server went on training for nobody."""
    from browser_util import upload_cohort, write_cohort_csv
    context, page = new_page(browser)
    try:
        open_dashboard(page, server)
        assert "session=" in page.url
        upload_cohort(page, write_cohort_csv(tmp_path / "ward.csv", n=250))
        expect(sidebar(page).get_by_test_id("stText")).to_have_text("ward.csv")
        go_to(page, "nav.train")
        page.get_by_test_id("stNumberInput").filter(has_text=tr("train.epochs")).locator("input").fill("150")
        page.get_by_test_id("stCheckbox").filter(has_text=tr("train.early_stopping")).locator("label").click()
        page.get_by_test_id("stFormSubmitButton").get_by_role("button").click()
        expect(page.get_by_test_id("stMain").get_by_test_id("stProgress")).to_be_visible(timeout=60_000)
        page.reload()  # mid-training
        expect(sidebar(page).get_by_test_id("stText").first).to_have_text("ward.csv")
        expect(page.get_by_role("heading", name=tr("train.results"))).to_be_visible(timeout=180_000)
        expect(sidebar(page).get_by_text(tr("sidebar.unsaved_model"))).to_be_visible()

        go_to(page, "nav.patient")
        expect(risk_metric(page).get_by_test_id("stMetricValue")).to_have_text(PERCENT)
        type_into(page, "age", "61.5")
        risk = risk_metric(page).get_by_test_id("stMetricValue").inner_text()
        page.reload()
        expect(page.get_by_role("heading", name=tr("patient.title"), level=1)).to_be_visible()
        expect(text_input(page, label("age"))).to_have_value("61.5")
        expect(risk_metric(page).get_by_test_id("stMetricValue")).to_have_text(risk)
        expect(sidebar(page).get_by_test_id("stText").first).to_have_text("ward.csv")

        other, other_page = new_page(browser)  # another browser without the address: a session of its own
        try:
            open_dashboard(other_page, server)
            expect(sidebar(other_page).locator(".stMarkdownBadge")).to_contain_text(tr("sidebar.synthetic"))
        finally:
            other.close()
    finally:
        context.close()
