"""Two hospital exports from #15 in Chromium: the UCI Statlog heart.dat (spaces, no header, class 1/2) and an
Excel workbook with Chinese headers and cholesterol in mmol/L. The second goes through the proposed clinical
mapping (screenshot in docs/screenshots/cohort_mapping.png) to a trained model and a patient's risk, asked in
clinical units with clinical labels."""
from __future__ import annotations

import re


import trait_files as tf
from browser_util import (ROOT, choose, go_to, open_dashboard,
                          screenshot, sidebar, text_input, tr, train, upload_cohort,
                          wait_idle)

SHOTS = ROOT / "docs" / "screenshots"

try:
    from playwright.sync_api import expect
except ImportError as exc:  # a broken environment must be red, not silently skipped
    raise ImportError("playwright is required for the browser tests (pip install -r requirements.txt)") from exc

expect.set_options(timeout=30_000)


def test_statlog_heart_dat_is_read_as_the_uci_layout(server, page, tmp_path):
    heart = tmp_path / "heart.dat"
    heart.write_bytes(tf.statlog_bytes())
    open_dashboard(page, server)
    upload_cohort(page, heart)
    expect(page.get_by_text(tr("cohort.loaded", name="heart.dat"))).to_be_visible()
    expect(sidebar(page).get_by_text("heart.dat")).to_be_visible()
    expect(page.get_by_text("class == 2")).to_be_visible()  # the outcome rule: disease = class 2


def test_excel_chinese_headers_mmol_cholesterol_to_a_patient_risk(server, page, tmp_path):
    ward = tmp_path / "ward.xlsx"
    ward.write_bytes(tf.xlsx_bytes(tf.chinese_headers()))
    open_dashboard(page, server)
    upload_cohort(page, ward)
    target = page.get_by_test_id("stSelectbox").filter(has_text=tr("schema.target"))
    choose(page, target, "结局")
    wait_idle(page)
    outcome = page.get_by_role("textbox", name=tr("schema.outcome_label"))
    outcome.fill("coronary heart disease")
    outcome.press("Enter")
    wait_idle(page)
    editor = page.get_by_test_id("stDataFrame")
    expect(editor).to_be_visible()
    # The grid is a canvas; its cells are also in an accessible table that Playwright can read.
    cells = editor.locator('td[role="gridcell"]')
    expect(cells.filter(has_text=re.compile(r"^Total cholesterol$")).first).to_be_attached()
    expect(cells.filter(has_text=re.compile(r"^mmol/L$")).first).to_be_attached()
    expect(cells.filter(has_text="fits mmol/L").first).to_be_attached()
    screenshot(page, SHOTS / "cohort_mapping.png")
    page.get_by_role("button", name=tr("schema.apply")).click()
    expect(page.get_by_text(tr("cohort.loaded", name="ward.xlsx"))).to_be_visible()
    expect(page.get_by_role("heading", name=tr("cohort.meaning_title"))).to_be_visible()
    train(page, epochs=20)
    go_to(page, "nav.patient")
    # The form asks in clinical units with clinical labels: mg/dl (the file's mmol/L converted), mmHg, years.
    expect(text_input(page, "Total cholesterol (mg/dl)")).to_be_visible()
    expect(text_input(page, "Systolic blood pressure (mmHg)")).to_be_visible()
    expect(text_input(page, "Age (years)")).to_be_visible()
    risk = page.get_by_test_id("stMetric").filter(has_text="Estimated risk of coronary heart disease").first
    expect(risk.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    screenshot(page, SHOTS / "patient_mapped.png")
