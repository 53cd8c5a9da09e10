"""The patient report: a one-page PDF (opened with pypdf) and print-ready HTML, both languages."""
from __future__ import annotations

import datetime as dt
import io

import pytest

import pypdf  # pinned in requirements.txt: a missing one is a red test, not a skip

from core.workflow import report as report_module  # noqa: E402
from core.data import demo_cohort  # noqa: E402
from core.workflow import ReportError, build_report, cjk_font_path, report_filename, report_html, report_pdf  # noqa: E402
from core.workflow import patient_from_row, patient_risk  # noqa: E402
from fake_models import ScaledEnsemble, logistic_model  # noqa: E402

NOW = dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
META = {"name": "ward-mlp", "data_fingerprint": "f" * 64, "metrics": {"roc_auc": 0.9123}}


@pytest.fixture(scope="module")
def model():
    return logistic_model(background_rows=80)


@pytest.fixture
def patient(model):
    values = patient_from_row(model, demo_cohort(), 10)
    values.update(trestbps=151.0, chol=287.0, ca=None)
    return values


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), " ".join(page.extract_text() for page in reader.pages)


def squash(text: str) -> str:
    return "".join(text.split())


def test_the_english_pdf_opens_on_one_page_and_holds_the_patient(model, patient):
    whatif = "If resting blood pressure were 125 instead of 151 mmHg: 40% → 31%"
    report = build_report(model, patient, meta=META, model_version="v3", lang="en", whatifs=[whatif], now=NOW)
    data = report_pdf(report)
    assert data.startswith(b"%PDF-")
    pages, text = pdf_text(data)
    assert pages == 1
    flat = squash(text)
    for expected in ("Heart-disease risk report", "151 mmHg", "287 mg/dl", "Resting blood pressure",
                     f"{report.risk:.1%}", "ward-mlp", "v3", "0.912", "f" * 64, "2026-03-04 05:06 UTC",
                     "Decision support only", "resting blood pressure were 125 instead of 151",
                     "not measured", report.reasons[0].split(":")[0], "not the effect of a treatment",
                     "the probability that stenosis is already present"):
        assert squash(expected) in flat, expected
    assert report.band in ("low", "intermediate", "high") and f"Risk band: {report.band}" in text


def test_the_report_numbers_are_the_patient_pages(model, patient):
    report = build_report(model, patient, meta=META, lang="en", now=NOW)
    result = patient_risk(model, patient, top=13)
    assert report.risk == pytest.approx(result.risk)
    assert report.reasons == [r.text for r in result.reasons[:3]]
    # the waterfall goes from the cohort average to the patient's risk
    assert report.base_value + sum(s for _, s in report.contributions) == pytest.approx(report.risk, abs=1e-9)
    # vessels were not measured: last, as "not measured", never among the reasons (issue 14.2)
    assert len(report.contributions) == len(result.reasons) + 1 and "ca" not in [r.feature for r in result.reasons]
    assert report.contributions[-1][0] == "Not measured: Major vessels coloured by fluoroscopy"
    assert report.interval is None and report.test_auc == pytest.approx(0.9123)
    assert report.missing == ["Major vessels coloured by fluoroscopy"]
    assert report.missing_range == (result.risk_low, result.risk_high)
    assert result.risk_low < report.risk < result.risk_high
    assert report.settles == "Major vessels coloured by fluoroscopy"
    assert report_filename(report, "pdf") == "heart-risk-report-20260304-050600.pdf"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_waterfall_names_each_reason_by_its_subject_whatever_the_sentence(model, patient, monkeypatch, lang):
    """The report and the Patient page's waterfall name a bar by the reason's subject ('Max heart rate 150 bpm'),
    not by cutting the sentence at its colon: a translation that words the sentence otherwise changes nothing."""
    from core.i18n import table
    from ui.figures import waterfall
    for key in ("reason.text", "reason.text_one"):
        monkeypatch.setitem(table()[key], lang, "{amount} (points): {subject}")
    result = patient_risk(model, patient, top=13, lang=lang)
    assert all(r.text.startswith("+") or r.text.startswith("-") for r in result.reasons)  # the new wording
    assert all(r.subject.startswith(r.label) and r.value in r.subject for r in result.reasons)
    report = build_report(model, patient, meta=META, lang=lang, now=NOW)
    # (vessels were not measured: their bar comes after the reasons')
    assert [label for label, _ in report.contributions][:-1] == [r.subject for r in result.reasons]
    figure = waterfall(result.reasons, result.explanation.base_value, result.risk)
    def plain(text):  # a long label wraps at a space or between Chinese characters
        return "".join(text.replace("<br>", "").split())
    assert sorted(map(plain, figure.data[0].y[1:-1])) == sorted(plain(r.subject) for r in result.reasons)


def test_an_isotonic_model_s_report_says_which_risk_the_waterfall_adds_up_to(patient):
    """As on the Patient page: the calibrated risk is reported, the waterfall ends where its bars add up
    (the networks' output), and a line says so."""
    import numpy as np

    from core.i18n import tr
    from core.model import fit_isotonic
    model = logistic_model(background_rows=80)
    model.base_networks_ = list(model.networks_)
    p = model.predict_risk_raw(model.preprocessor_.encode(demo_cohort()))
    model.calibration_ = fit_isotonic(p, (np.random.default_rng(0).random(p.size) < p ** 2).astype(float))
    result = patient_risk(model, patient, top=13)
    report = build_report(model, patient, meta=META, lang="en", now=NOW)
    assert report.risk == pytest.approx(result.risk) and abs(result.explained_risk - result.risk) > 0.01
    assert report.base_value + sum(s for _, s in report.contributions) == pytest.approx(report.waterfall_end)
    assert report.waterfall_end == pytest.approx(result.explained_risk)
    note = tr("patient.isotonic_note", risk=f"{result.risk:.1%}", raw=f"{result.explained_risk:.1%}")
    assert note.replace("'", "&#x27;") in report_html(report)
    assert squash(note) in squash(pdf_text(report_pdf(report))[1])
    plain = build_report(logistic_model(background_rows=80), patient, meta=META, lang="en", now=NOW)
    assert plain.explained_risk is None and plain.isotonic_note() is None


def test_the_report_shows_the_range_over_what_was_not_measured(model, patient):
    report = build_report(model, patient, meta=META, lang="en", now=NOW)
    low, high = report.missing_range
    expected = f"range over the inputs not measured: {low:.1%} – {high:.1%}"
    _, text = pdf_text(report_pdf(report))
    assert squash(expected) in squash(text) and squash("Measuring Major vessels") in squash(text)
    page = report_html(report)
    assert expected in page and "Not measured: Major vessels coloured by fluoroscopy" in page


def test_the_chinese_pdf_is_in_chinese(model, patient):
    # scripts/test.sh installs Debian's fonts-wqy-zenhei; without a CJK font this fails rather than skips.
    assert cjk_font_path() is not None, "no CJK font (apt-get install fonts-wqy-zenhei, as scripts/test.sh does)"
    report = build_report(model, patient, meta=META, lang="zh", whatifs=["如果静息血压为 125 而不是 151 mmHg：40% → 31%"],
                          now=NOW, for_pdf=True)
    assert report.lang == "zh" and report.note is None
    pages, text = pdf_text(report_pdf(report))
    flat = squash(text)
    assert pages == 1
    for expected in ("心脏病风险报告", "静息血压", "151 mmHg", "风险分层", "仅供决策支持", "如果静息血压为125而不是151",
                     "ward-mlp"):
        assert squash(expected) in flat, expected


def test_without_a_cjk_font_the_pdf_is_english_and_says_why(model, patient, monkeypatch):
    monkeypatch.setattr(report_module, "cjk_font_path", lambda: None)
    chinese = build_report(model, patient, meta=META, lang="zh", now=NOW)
    with pytest.raises(ReportError, match="CJK font"):
        report_pdf(chinese)
    report = build_report(model, patient, meta=META, lang="zh", now=NOW, for_pdf=True,
                          whatifs=["如果静息血压为 125 而不是 151 mmHg"])
    assert report.lang == "en" and report.whatifs == []
    _, text = pdf_text(report_pdf(report))
    assert "A Chinese PDF needs a CJK font" in text and "Resting blood pressure" in text


def test_with_only_the_built_in_font_latin_text_still_prints(model, patient, monkeypatch):
    monkeypatch.setattr(report_module, "cjk_font_path", lambda: None)
    monkeypatch.setattr(report_module, "latin_font_paths", lambda: None)
    report = build_report(model, patient, meta=META, lang="en", now=NOW, whatifs=["If x were 1: 50% → 10%"])
    _, text = pdf_text(report_pdf(report))
    assert "151 mmHg" in text and "50% -> 10%" in text


def test_an_ensemble_shows_its_interval(model, patient):
    report = build_report(ScaledEnsemble(model, scales=(0.7, 1.0, 1.3)), patient, meta=META, lang="en", now=NOW)
    low, high = report.interval
    assert low <= report.risk <= high and low < high
    _, text = pdf_text(report_pdf(report))
    assert squash(f"{low:.1%} – {high:.1%}") in squash(text)
    assert f"{low:.1%} – {high:.1%}" in report_html(report)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_html_report_is_complete_and_escaped(model, patient, lang):
    meta = dict(META, name="<script>alert(1)</script>")
    report = build_report(model, patient, meta=meta, lang=lang, now=NOW, whatifs=["<b>bold</b>"])
    page = report_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "151 mmHg" in page and "287 mg/dl" in page and "f" * 64 in page and "@page" in page
    assert "<svg" in page and page.count("<rect") >= 3
    if lang == "zh":
        assert "心脏病风险报告" in page and "静息血压" in page and "仅供决策支持" in page
    else:
        assert "Heart-disease risk report" in page and "Decision support only" in page


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_report_names_the_outcome_as_the_patient_page_does(model, patient, lang):
    from core.i18n import tr
    report = build_report(model, patient, meta=META, lang=lang, now=NOW)
    assert report.risk_heading == tr("patient.risk", lang)  # "coronary artery disease" on both, not "heart disease"
    html = report_html(report)
    assert tr("patient.risk", lang) in html and "heart disease" not in html.lower()


def test_the_test_auc_carries_its_stored_95_percent_interval(model, patient):
    meta = {**META, "metrics": {"roc_auc": 0.821, "roc_auc_low": 0.687, "roc_auc_high": 0.905,
                                "roc_auc_too_few": False}}
    report = build_report(model, patient, meta=meta, lang="en", now=NOW)
    assert report.test_auc_interval == (0.687, 0.905)
    _, text = pdf_text(report_pdf(report))
    assert squash("Test ROC AUC 0.821 (95% CI 0.687–0.905)") in squash(text)
    assert "0.821 (95% CI 0.687–0.905)" in report_html(report)
    few = build_report(model, patient, meta={**META, "metrics": {"roc_auc": 1.0, "roc_auc_low": None,
                                                               "roc_auc_high": None, "roc_auc_too_few": True}},
                       lang="en", now=NOW)
    html_text = report_html(few)
    assert "Test ROC AUC too few patients" in html_text and "1.000" not in html_text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_pdf_shows_every_input_and_waterfall_label_whole(model, patient, lang):
    """Issue 16.7: 'Major vessels coloured by fluor…' — a label is made smaller or put on two lines, never cut."""
    report = build_report(model, patient, meta=META, lang=lang, now=NOW, for_pdf=True)
    reader = pypdf.PdfReader(io.BytesIO(report_pdf(report)))
    assert len(reader.pages) == 1
    text = "".join(reader.pages[0].extract_text().split())  # a label on two lines reads as one
    assert "…" not in text and "..." not in text
    for label, value in report.inputs:
        assert "".join(label.split()) in text and "".join(str(value).split()) in text, label
    for label, _ in report.contributions:
        assert "".join(label.split()) in text, label


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_demo_trained_model_s_report_says_it_was_trained_on_synthetic_data(model, patient, lang):
    from core.data import cleveland_schema, cohort_from_frame
    from core.i18n import tr
    from core.workflow import cohort_summary, training_metadata
    demo = cohort_from_frame(demo_cohort(), cleveland_schema(), name="demo", synthetic=True)
    meta = training_metadata(model, {"roc_auc": 0.8}, name="demo-mlp", cohort=cohort_summary(demo))
    statement = tr("patient_report.synthetic", lang)
    assert ("SYNTHETIC DATA" in statement) if lang == "en" else ("合成数据" in statement)
    report = build_report(model, patient, meta=meta, lang=lang, now=NOW, for_pdf=True)
    assert report.synthetic
    pages, text = pdf_text(report_pdf(report))
    assert pages == 1 and squash(statement) in squash(text)
    assert statement in report_html(report)
    # a model trained on real patients says nothing of the kind
    real = build_report(model, patient, meta=META, lang=lang, now=NOW, for_pdf=True)
    assert not real.synthetic and squash(statement) not in squash(pdf_text(report_pdf(real))[1])
    assert statement not in report_html(real)


def test_a_reason_whose_direction_contradicts_medicine_is_named_under_the_reasons(model, patient):
    from core.evaluate import direction_contradictions
    (age,) = [d for d in direction_contradictions(model) if d.feature == "age"]  # the demo model: risk falls with age
    old = build_report(model, {**patient, "age": 77.0}, meta=META, lang="en", now=NOW, for_pdf=True)
    assert any(r.startswith("Age 77 years") for r in old.reasons)
    sentence = age.sentence(model.schema)
    assert old.reason_notes == [sentence]
    assert squash(sentence) in squash(pdf_text(report_pdf(old))[1]) and sentence in report_html(old)
    typical = build_report(model, patient, meta=META, lang="en", now=NOW)
    assert not any(r.startswith("Age") for r in typical.reasons) and typical.reason_notes == []
