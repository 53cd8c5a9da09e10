"""QA's English leftovers and cut-off texts (issue 16.7, 16.9), as Chromium draws them at 1280 px: Streamlit's
own file-uploader words ("Upload", "50MB per file") on every uploader in 简体中文, the Train page's early-stopping
label, the second opinion's patient table (its "Disagreement" column was cut off) and its patient picker in
the page's language. The words themselves are checked against the translation table in tests/app."""
from __future__ import annotations

from browser_util import ROOT, choose, go_to, open_dashboard, screenshot, sidebar, tr, train, wait_idle

SHOTS = ROOT / "docs" / "screenshots"

try:
    from playwright.sync_api import expect
except ImportError as exc:  # a broken environment must be red, not silently skipped
    raise ImportError("playwright is required for the browser tests (pip install -r requirements.txt)") from exc

expect.set_options(timeout=30_000)

# What an uploader shows: its button's word and its size limit, as drawn (CSS content included).
UPLOADER_WORDS = """el => {
  const shown = node => {
    const own = getComputedStyle(node).fontSize === '0px' ? '' : node.textContent;
    const after = getComputedStyle(node, '::after').content;
    return own + (after && after !== 'none' ? JSON.parse(after) : '');
  };
  return [shown(el.querySelector('[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p')),
          shown(el.querySelector('[data-testid="stFileUploaderDropzoneInstructions"] span'))];
}"""
# A table's columns (glide data grid's stack) within its visible width: no column scrolled out of sight.
FITS = """el => el.querySelector('.dvn-stack').getBoundingClientRect().width
                <= el.querySelector('.dvn-scroller').clientWidth + 1"""
# Any text box narrower than its text (cut off, with or without "…").
CUT_OFF = """el => [el, ...el.querySelectorAll('*')].filter(e => e.textContent.trim()
  && e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""


def uploader_words(page) -> list[str]:
    uploader = page.get_by_test_id("stFileUploader").filter(visible=True).first
    uploader.wait_for()
    return uploader.evaluate(UPLOADER_WORDS)


def test_uploaders_labels_and_the_second_opinion_table_in_full_and_in_chinese(server, page):
    zh_words = [tr("uploader.button", "zh"), tr("uploader.limit", "zh", mb=50)]
    open_dashboard(page, server)
    train(page, epochs=15, timeout_ms=300_000)

    # English Train page: the early-stopping label is short and whole; the rest is in its help.
    box = page.get_by_test_id("stCheckbox").filter(has_text=tr("train.early_stopping"))
    expect(box).to_be_visible()
    assert box.evaluate(CUT_OFF) == []

    # Second opinion: the patient table fits (no column scrolled out of sight), disagreement next to the feature.
    go_to(page, "nav.trust")
    page.get_by_role("tab", name=tr("trust.tab_glassbox")).click()
    wait_idle(page)
    table = page.get_by_test_id("stDataFrame").filter(visible=True).last
    table.wait_for()
    assert table.evaluate(FITS), "the patient table is wider than the page"  # its cells' widths: tests/app
    screenshot(page, SHOTS / "trust_second_opinion.png")

    choose(page, sidebar(page).get_by_test_id("stSelectbox"), "简体中文")
    page.get_by_role("heading", name=tr("trust.title", "zh"), level=1).wait_for()
    page.get_by_role("tab", name=tr("trust.tab_glassbox", "zh")).click()
    wait_idle(page)
    picker = page.get_by_test_id("stSelectbox").filter(has_text=tr("trust.glass_patient_pick", "zh"))
    # "test patient 1 (cohort row 2)" stayed in English after the switch
    assert "test patient" not in picker.locator("input").input_value()
    assert page.get_by_test_id("stDataFrame").filter(visible=True).last.evaluate(FITS)
    screenshot(page, SHOTS / "trust_second_opinion_zh.png")

    # Every uploader speaks Chinese: the Trust page's other site, the Train page's import, Score, Cohort.
    page.get_by_role("tab", name=tr("trust.tab_external", "zh")).click()
    wait_idle(page)
    assert uploader_words(page) == zh_words
    go_to(page, "nav.train", "zh")
    page.get_by_text(tr("train.import_title", "zh")).click()
    assert uploader_words(page) == zh_words
    go_to(page, "nav.scoring", "zh")
    page.get_by_test_id("stButtonGroup").get_by_text(tr("scoring.source_upload", "zh"), exact=True).click()
    wait_idle(page)
    assert uploader_words(page) == zh_words
    go_to(page, "nav.cohort", "zh")
    page.get_by_role("radio", name=tr("cohort.source_upload", "zh")).click()
    wait_idle(page)
    assert uploader_words(page) == zh_words
