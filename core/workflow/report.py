"""One patient's report: a one-page PDF and a print-ready HTML page, in English or Simplified Chinese.

It holds the patient's inputs with units, the risk (and the ensemble's interval when there is one), the
risk band, a waterfall of what moved the risk from the cohort average (drawn with fpdf2's own lines and
rectangles, so no browser or image renderer is needed), the top reasons in words, the what-ifs shown, the
model's name, version, data fingerprint and test AUC, the date and time, and the decision-support notice.

Fonts. fpdf2's built-in fonts are Latin-1 only. The PDF embeds (as a subset) a Unicode TrueType font
found on the machine: ``$HEART_RISK_PDF_FONT`` if set, else a CJK font (WenQuanYi Zen Hei from Debian's
``fonts-wqy-zenhei``, Noto Sans CJK from ``fonts-noto-cjk``, ... or whatever ``fc-list :lang=zh`` names)
— it covers Latin text too — else DejaVu Sans for Latin text. No pip package ships a CJK font small
enough to pin, so a Chinese PDF needs one of those system fonts: without one the PDF is written in
English and says so in a line at the top; the HTML report needs no font and is always in the language
asked for.
"""
from __future__ import annotations

import datetime as _dt
import html
import logging
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import CoreError
from core.evaluate.directions import contradiction_sentence, direction_contradictions
from core.i18n import tr
from core.model.bands import BandCutoffs, model_bands
from core.workflow.counterfactual import direction_conflicts, meaning as whatif_meaning
from core.workflow.model_card import bands_sentence
from core.model.meta import as_bundle_meta
from core.workflow.risk import patient_risk, percent_range, pooled_member_risks

FONT_ENV = "HEART_RISK_PDF_FONT"
CJK_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
LATIN_CANDIDATES = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
)
_PROBE = "风险患者"  # a font that has these glyphs can write the Chinese report

class ReportError(CoreError):
    """A report cannot be written as asked (a Chinese PDF without a CJK font)."""


def _band_text(band: str, lang: str) -> str:
    return {"low": tr("patient_report.low", lang), "intermediate": tr("patient_report.intermediate", lang),
            "high": tr("patient_report.high", lang)}[band]


# ---- fonts -----------------------------------------------------------------------------------------
def _covers(path: str, text: str) -> bool:
    """Whether the font file has a glyph for every character of ``text`` (fontTools, installed with fpdf2)."""
    try:
        from fontTools.ttLib import TTCollection, TTFont
        if path.lower().endswith(".ttc"):
            font = TTCollection(path, lazy=True).fonts[0]
        else:
            font = TTFont(path, lazy=True)
        cmap = font.getBestCmap() or {}
        return all(ord(ch) in cmap for ch in text)
    except Exception:  # a broken or unsupported font file is just not used
        return False


@lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    """A font file that can write Chinese, or None (see the module docstring for the order)."""
    chosen = os.environ.get(FONT_ENV)
    if chosen and Path(chosen).is_file() and _covers(chosen, _PROBE):
        return chosen
    candidates = [c for c in CJK_CANDIDATES if Path(c).is_file()]
    if shutil.which("fc-list"):
        try:
            listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
            candidates += sorted({line.split(":")[0].strip() for line in listed.splitlines() if line.strip()})
        except (OSError, subprocess.SubprocessError):
            pass
    for path in candidates:
        if path.lower().endswith((".ttf", ".ttc", ".otf")) and _covers(path, _PROBE):
            return path
    return None


@lru_cache(maxsize=1)
def latin_font_paths() -> tuple[str, str] | None:
    """(regular, bold) Unicode Latin fonts (DejaVu Sans), or None."""
    chosen = os.environ.get(FONT_ENV)
    if chosen and Path(chosen).is_file() and _covers(chosen, "→–“”"):
        return chosen, chosen
    for regular, bold in LATIN_CANDIDATES:
        if Path(regular).is_file():
            return regular, bold if Path(bold).is_file() else regular
    return None


# ---- the report's content --------------------------------------------------------------------------
@dataclass
class PatientReport:
    lang: str
    created: _dt.datetime  # UTC
    inputs: list[tuple[str, str]]  # (label, value with unit), schema order
    missing: list[str]
    risk: float
    band: str
    interval: tuple[float, float] | None
    base_value: float
    contributions: list[tuple[str, float]]  # (label with value, shap) largest |shap| first, every feature
    reasons: list[str]  # top reasons in words
    whatifs: list[str]
    model_name: str
    model_version: str | None
    data_fingerprint: str | None
    test_auc: float | None
    cutoffs: BandCutoffs = field(default_factory=BandCutoffs)  # the model's bands, with who set them
    note: str | None = None  # e.g. why a PDF asked for in Chinese is in English
    # what a what-if means, and where the model contradicts the clinic
    whatif_notes: list[str] = field(default_factory=list)
    # What the waterfall adds up to when it is not the risk: under isotonic recalibration the reasons explain
    # the networks' uncalibrated output (core.workflow.PatientRisk.explained_risk). None: it is the risk.
    explained_risk: float | None = None
    # the test AUC's 95% interval stored with the model's metrics (core.metrics.metric_intervals); None when
    # not stored. ``test_auc_too_few``: fewer than MIN_PER_CLASS test patients with, or without, disease.
    test_auc_interval: tuple[float, float] | None = None
    test_auc_too_few: bool = False
    outcome: str | None = None  # what the risk is a risk of, when the cohort is not the UCI one
    # Trained on a synthetic cohort (the demo): said at the top, so a printout is never read as a result.
    synthetic: bool = False
    # Where a reason's direction in this model contradicts medicine (as the Patient page says under them)
    reason_notes: list[str] = field(default_factory=list)

    @property
    def risk_heading(self) -> str:
        # The page's own words (one outcome name on screen and on paper: the report said "heart disease"
        # where the page said "coronary artery disease"; issue 16.10)
        if self.outcome:
            return tr("patient.risk_of", self.lang, outcome=self.outcome)
        return tr("patient.risk", self.lang)

    @property
    def waterfall_end(self) -> float:
        return self.risk if self.explained_risk is None else self.explained_risk

    def isotonic_note(self) -> str | None:
        if self.explained_risk is None:
            return None
        return tr("patient.isotonic_note", self.lang, risk=_pct(self.risk), raw=_pct(self.explained_risk))
    missing_range: tuple[float, float] | None = None  # the risk's range over the inputs not measured
    settles: str | None = None  # the input not measured whose measurement would settle the estimate most


def build_report(model, values: dict, *, meta: dict | None = None, model_name: str | None = None,
                 model_version: str | None = None, lang: str = "en", cutoffs: BandCutoffs | None = None,
                 whatifs: list[str] | None = None, now: _dt.datetime | None = None,
                 for_pdf: bool = False) -> PatientReport:
    """Everything the report shows for one patient (clinical values, None = missing) and a model.

    ``meta``: the model's metadata (``RiskModel.metadata_`` of a bundle, or the session's training
    metadata): name, data_fingerprint, metrics.roc_auc. ``whatifs``: sentences already shown to the user
    (in ``lang``). ``for_pdf``: a Chinese report on a machine without a CJK font is built in English,
    with a note saying why (the what-ifs, being Chinese, are then left out).
    """
    note = None
    if for_pdf and lang == "zh" and cjk_font_path() is None:
        lang, note, whatifs = "en", tr("patient_report.no_cjk", "en"), None
    meta = as_bundle_meta(meta or getattr(model, "metadata_", None))
    pre, schema = model.preprocessor_, model.schema
    cutoffs = cutoffs or model_bands(model)
    result = patient_risk(model, values, lang=lang, cutoffs=cutoffs, top=len(pre.features))
    interval = None
    if hasattr(model, "predict_interval_raw") and int(getattr(model, "n_members_", 1) or 1) > 1:
        # each network's risk over the plausible values of what is missing, as the reported risk is
        members = pooled_member_risks(model, result.explanation.raw)[:, 0]
        interval = tuple(float(x) for x in np.percentile(members, [10, 90]))
    # an input left empty reads as on the form ("not measured"), not "missing" (QA)
    inputs = [(f.display_label(lang), tr("patient.missing_placeholder", lang) if _is_missing(values.get(f.name))
               else f.format_value(values.get(f.name), lang)) for f in pre.features]
    missing = [schema[n].display_label(lang) for n in result.check.missing]
    # the inputs not measured last, as "not measured" (never reasons); with them the bars add up to the risk
    contributions = [(r.subject, float(r.shap)) for r in result.reasons] + \
        [(tr("patient_report.not_measured", lang, label=n.label), float(n.shap)) for n in result.not_measured]
    auc = meta.test_auc
    auc_low, auc_high = meta.metrics.get("roc_auc_low"), meta.metrics.get("roc_auc_high")
    auc_interval = ((float(auc_low), float(auc_high)) if all(isinstance(v, (int, float)) and math.isfinite(v)
                                                            for v in (auc_low, auc_high)) else None)
    return PatientReport(
        lang=lang, created=(now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc),
        inputs=inputs, missing=missing, risk=float(result.risk), band=result.risk_band, interval=interval,
        base_value=float(result.explanation.base_value), contributions=contributions,
        explained_risk=None if result.explained_risk == result.risk else result.explained_risk,
        reasons=[r.text for r in result.reasons[:3]], whatifs=list(whatifs or []),
        reason_notes=[contradiction_sentence(d, schema, lang) for d in direction_contradictions(model)
                      if d.feature in {r.feature for r in result.reasons[:3]}],
        model_name=str(model_name or meta.name or "—"), model_version=model_version,
        data_fingerprint=meta.fingerprint,
        test_auc=float(auc) if isinstance(auc, (int, float)) and math.isfinite(auc) else None, cutoffs=cutoffs,
        test_auc_interval=auc_interval, test_auc_too_few=bool(meta.metrics.get("roc_auc_too_few")),
        note=note, outcome=schema.outcome_name(lang), synthetic=bool(meta.extra.cohort.get("synthetic")),
        whatif_notes=[whatif_meaning(lang, short=True)] + [c.sentence(schema, lang) for c in direction_conflicts(model)],
        missing_range=None if result.missing is None else (result.missing.low, result.missing.high),
        settles=None if result.missing is None else schema[result.missing.settles_most].display_label(lang))


def _missing_note(report: PatientReport) -> str:
    features = ", ".join(report.missing)
    if report.missing_range is None:  # a model without donors for its inputs not measured (not expected)
        return features
    if percent_range(*report.missing_range) is None:
        return tr("patient_report.missing_note_same", report.lang, features=features, settles=report.settles)
    low, high = _range_ends(report.missing_range)
    return tr("patient_report.missing_note", report.lang, features=features, low=low, high=high,
              settles=report.settles)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _range_ends(pair) -> tuple[str, str]:
    """The ends of the range over the inputs not measured, with decimals enough to differ (percent_range)."""
    return percent_range(pair[0], pair[1], decimals=1) or (_pct(pair[0]), _pct(pair[1]))


def _missing_range_text(report: PatientReport, lang: str) -> str:
    if percent_range(*report.missing_range) is None:
        return tr("patient_report.missing_same", lang)
    low, high = _range_ends(report.missing_range)
    return tr("patient_report.missing_range", lang, low=low, high=high)


def _pct(p: float, decimals: int = 1) -> str:
    return f"{p:.{decimals}%}"


def _points(shap: float) -> str:
    points = int(math.floor(abs(shap) * 100 + 0.5))
    sign = "+" if shap >= 0 else "−"
    return f"{sign}{points}" if points else f"{sign}<1"


def _header_lines(report: PatientReport) -> list[str]:
    lang = report.lang
    when = report.created.strftime("%Y-%m-%d %H:%M UTC")
    version = f" ({tr('patient_report.version', lang)} {report.model_version})" if report.model_version else ""
    if report.test_auc_too_few:  # too few test patients with, or without, disease for a number
        auc = tr("metric.too_few", lang)
    elif report.test_auc is None:
        auc = tr("patient_report.not_recorded", lang)
    elif report.test_auc_interval is not None:
        low, high = report.test_auc_interval
        auc = f"{report.test_auc:.3f} ({tr('metric.interval', lang, low=f'{low:.3f}', high=f'{high:.3f}')})"
    else:
        auc = f"{report.test_auc:.3f}"
    model = f"{report.model_name}{version} · {tr('patient_report.auc', lang)} {auc}"
    fingerprint = report.data_fingerprint or tr("patient_report.not_recorded", lang)
    return [tr("patient_report.created", lang, when=when),
            tr("patient_report.field", lang, label=tr("patient_report.model", lang), value=model),
            tr("patient_report.field", lang, label=tr("patient_report.fingerprint", lang), value=fingerprint)]


# ---- PDF ------------------------------------------------------------------------------------------
_RED, _BLUE, _GREY, _INK = (198, 40, 40), (21, 101, 192), (120, 120, 120), (33, 33, 33)
_BAND_RGB = {"low": (46, 125, 50), "intermediate": (239, 108, 0), "high": (198, 40, 40)}
_FALLBACK = {"→": "->", "−": "-", "–": "-", "“": '"', "”": '"', "•": "-", "·": "-", "≤": "<=", "≥": ">=", "…": "..."}
_LATIN1 = str.maketrans(_FALLBACK)


def _cleaner(cmap: dict):
    """Replace the few typographic characters the embedded font lacks (WenQuanYi has no '−' or '•')."""
    table = {ord(k): ("·" if k == "•" and ord("·") in cmap else v) for k, v in _FALLBACK.items() if ord(k) not in cmap}
    return lambda text: text.translate(table)


def report_pdf(report: PatientReport) -> bytes:
    """The report as a one-page A4 PDF."""
    from fpdf import FPDF

    # fontTools says it drops the bitmap tables of WenQuanYi when subsetting: expected, not a problem.
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    lang = report.lang
    cjk = cjk_font_path()
    if lang == "zh" and cjk is None:
        raise ReportError("a Chinese PDF needs a CJK font on this machine (e.g. Debian's fonts-wqy-zenhei); "
                          "build the report with for_pdf=True to get it in English")
    notes = [report.note] if report.note else []
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(15, 12, 15)
    pdf.set_title(tr("patient_report.title", lang))
    pdf.set_creator("heart-risk dashboard")
    latin = latin_font_paths()
    if lang == "zh" or (latin is None and cjk is not None):
        pdf.add_font("body", "", cjk, collection_font_number=0)
        pdf.add_font("body", "B", cjk, collection_font_number=0)  # no bold face: headings are larger instead
        clean = _cleaner(pdf.fonts["body"].cmap)
    elif latin is not None:
        pdf.add_font("body", "", latin[0])
        pdf.add_font("body", "B", latin[1])
        clean = _cleaner(pdf.fonts["body"].cmap)
    else:  # only the built-in Latin-1 font
        clean = _latin1
    family = "helvetica" if clean is _latin1 else "body"
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def font(size: float, bold: bool = False, colour=_INK):
        pdf.set_font(family, "B" if bold else "", size)
        pdf.set_text_color(*colour)

    def line(text: str, size: float = 9, bold: bool = False, colour=_INK, height: float = 4.6):
        font(size, bold, colour)
        pdf.multi_cell(width, height, clean(text), new_x="LMARGIN", new_y="NEXT")

    def heading(text: str):
        pdf.ln(1.5)
        line(text, 11.5, True, height=6)
        pdf.set_draw_color(200, 200, 200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1.2)

    line(tr("patient_report.title", lang), 17, True, height=8)
    if report.synthetic:
        line(tr("patient_report.synthetic", lang), 10, True, colour=_RED, height=5)
    for note in notes:
        line(note, 8.5, colour=_RED)
    for text in _header_lines(report):
        line(text, 8, colour=_GREY, height=4)
    pdf.ln(2)

    # the risk, its interval and band in a box
    top = pdf.get_y()
    rgb = _BAND_RGB[report.band]
    pdf.set_draw_color(*rgb)
    pdf.set_line_width(0.6)
    box_h = 17 + 4.5 * (report.interval is not None) + 4.5 * (report.missing_range is not None)
    pdf.rect(pdf.l_margin, top, width, box_h)
    pdf.set_line_width(0.2)
    pdf.set_xy(pdf.l_margin + 4, top + 2)
    font(9, colour=_GREY)
    pdf.cell(width - 8, 4.5, clean(report.risk_heading), new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(pdf.l_margin + 4)
    font(20, True, rgb)
    pdf.cell(35, 9, _pct(report.risk))
    font(12, True, rgb)
    pdf.cell(80, 9, clean(tr("patient_report.band", lang, band=_band_text(report.band, lang))),
             new_x="LMARGIN", new_y="NEXT")
    if report.missing_range:
        pdf.set_x(pdf.l_margin + 4)
        font(8.5, True, _INK)
        pdf.cell(width - 8, 4.5, clean(_missing_range_text(report, lang)), new_x="LMARGIN", new_y="NEXT")
    if report.interval:
        pdf.set_x(pdf.l_margin + 4)
        font(8.5, colour=_INK)
        pdf.cell(width - 8, 4.5, clean(tr("patient_report.interval", lang, low=_pct(report.interval[0]),
                                          high=_pct(report.interval[1]))))
    pdf.set_y(top + box_h + 1)
    line(bands_sentence(report.cutoffs, lang), 7.5, colour=_GREY, height=3.8)
    if report.isotonic_note():
        line(report.isotonic_note(), 7.5, colour=_GREY, height=3.8)

    # inputs in two columns
    heading(tr("patient_report.inputs", lang))
    half = width / 2
    rows = math.ceil(len(report.inputs) / 2)
    start_y = pdf.get_y()
    for k, (label, value) in enumerate(report.inputs):
        col, row = divmod(k, rows)
        x = pdf.l_margin + col * half
        pdf.set_xy(x, start_y + row * 4.8)
        font(8.5, colour=_GREY)
        _whole_cell(pdf, half * 0.58, 4.8, clean(label), family, "", 8.5)
        font(8.5, True)
        _whole_cell(pdf, half * 0.42, 4.8, clean(value), family, "B", 8.5)
    pdf.set_y(start_y + rows * 4.8 + 0.5)
    if report.missing:
        line(_missing_note(report), 7.5, colour=_GREY, height=3.8)

    # the waterfall
    heading(tr("patient_report.why", lang, base=_pct(report.base_value)))
    _waterfall(pdf, report, clean, family, width)

    heading(tr("patient_report.reasons", lang))
    for k, text in enumerate(report.reasons, 1):
        line(f"{k}. {text}", 9)
    for text in report.reason_notes:
        line(text, 7.5, colour=_RED, height=3.8)
    heading(tr("patient_report.whatifs", lang))
    for text in report.whatifs or [tr("patient_report.no_whatifs", lang)]:
        line(f"• {text}", 8.5)
    for text in report.whatif_notes:
        line(text, 7.5, colour=_GREY, height=3.8)

    # the notice at the foot of the page
    pdf.set_y(max(pdf.get_y() + 3, pdf.h - 26))
    pdf.set_draw_color(*_RED)
    pdf.set_fill_color(255, 243, 224)
    y = pdf.get_y()
    pdf.rect(pdf.l_margin, y, width, 13, style="DF")
    pdf.set_xy(pdf.l_margin + 2, y + 1.5)
    font(8, colour=_INK)
    pdf.multi_cell(width - 4, 3.8, clean(tr("patient_report.notice", lang)))
    return bytes(pdf.output())


def _whole_cell(pdf, width: float, height: float, text: str, family: str, style: str, size: float,
                align: str = "L", min_size: float = 6.5) -> None:
    """A cell's text in full, never cut (issue 16.7: "Major vessels coloured by fluor…"): a smaller font
    (down to ``min_size``) where it is too wide, then two lines in the same height. The cursor ends right
    of the cell, as after ``pdf.cell``."""
    x, y, room = pdf.get_x(), pdf.get_y(), width - 1
    s = size
    pdf.set_font(family, style, s)
    while pdf.get_string_width(text) > room and s > min_size:
        s = max(s - 0.25, min_size)
        pdf.set_font(family, style, s)
    if pdf.get_string_width(text) <= room:
        pdf.cell(width, height, text, align=align)
        pdf.set_font(family, style, size)
        return
    lines = _two_lines(text)
    s = min(size, height / 2 / 0.3528 * 0.95)  # two lines of s points in the cell's height (1 pt = 0.3528 mm)
    pdf.set_font(family, style, s)
    while max(pdf.get_string_width(line) for line in lines) > room and s > 3.5:
        s -= 0.25
        pdf.set_font(family, style, s)
    for k, line in enumerate(lines):
        pdf.set_xy(x, y + k * height / 2)
        pdf.cell(width, height / 2, line, align=align)
    pdf.set_xy(x + width, y)
    pdf.set_font(family, style, size)


def _two_lines(text: str) -> list[str]:
    """Split at the space nearest the middle (between characters where there is none: Chinese)."""
    middle = len(text) / 2
    spaces = [i for i, c in enumerate(text) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - middle)) if spaces else int(middle)
    return [text[:cut].strip(), text[cut:].strip()]


def _latin1(text: str) -> str:
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _axis(lo: float, hi: float) -> tuple[float, float, float]:
    """A nice range and tick step (probability) covering [lo, hi]."""
    span = max(hi - lo, 0.02)
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25) if span / s <= 6)
    return max(0.0, math.floor(lo / step) * step), min(1.0, math.ceil(hi / step) * step), step


def _waterfall(pdf, report: PatientReport, clean, family: str, width: float) -> None:
    """Bars from the cohort average to this patient's risk, one feature a row, largest first."""
    items = [c for c in report.contributions if abs(c[1]) >= 0.0005] or report.contributions[:1]
    row_h = 4.6 if len(items) <= 10 else 4.0
    label_w, points_w = width * 0.36, 12
    chart_x, chart_w = pdf.l_margin + label_w, width - label_w - points_w
    path = np.concatenate([[report.base_value], report.base_value + np.cumsum([s for _, s in items])])
    lo, hi, step = _axis(float(min(path.min(), report.waterfall_end)), float(max(path.max(), report.waterfall_end)))
    def x_of(p: float) -> float:
        return chart_x + (p - lo) / (hi - lo) * chart_w
    top = pdf.get_y()
    # rows: average, each feature, this patient
    rows = [(tr("patient_report.average", report.lang), None), *items,
            (tr("patient_report.this_patient", report.lang), None)]
    pdf.set_draw_color(225, 225, 225)
    tick = lo
    while tick <= hi + 1e-9:  # grid lines and their labels below the chart
        pdf.line(x_of(tick), top, x_of(tick), top + len(rows) * row_h)
        tick += step
    cum = report.base_value
    for k, (label, shap) in enumerate(rows):
        y = top + k * row_h
        pdf.set_xy(pdf.l_margin, y)
        pdf.set_font(family, "B" if shap is None else "", 7.8)
        pdf.set_text_color(*_INK)
        _whole_cell(pdf, label_w - 1, row_h, clean(label), family, "B" if shap is None else "", 7.8, align="R")
        if shap is None:
            value = report.base_value if k == 0 else report.waterfall_end
            pdf.set_fill_color(*_GREY)
            pdf.rect(x_of(value) - 0.5, y + 0.6, 1.0, row_h - 1.2, style="F")
            pdf.set_xy(chart_x + chart_w, y)
            pdf.cell(points_w, row_h, _pct(value, 0), align="R")
            continue
        start, end = cum, cum + shap
        pdf.set_fill_color(*(_RED if shap >= 0 else _BLUE))
        left = x_of(min(start, end))
        pdf.rect(left, y + 0.8, max(x_of(max(start, end)) - left, 0.3), row_h - 1.6, style="F")
        cum = end
        pdf.set_xy(chart_x + chart_w, y)
        pdf.set_text_color(*(_RED if shap >= 0 else _BLUE))
        pdf.cell(points_w, row_h, clean(_points(shap)), align="R")
    axis_y = top + len(rows) * row_h
    pdf.set_font(family, "", 6.5)
    pdf.set_text_color(*_GREY)
    tick = lo
    while tick <= hi + 1e-9:
        pdf.set_xy(x_of(tick) - 6, axis_y)
        pdf.cell(12, 3.2, f"{tick:.0%}", align="C")
        tick += step
    pdf.set_y(axis_y + 3.6)


# ---- HTML -----------------------------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
color:#212121;max-width:190mm;margin:8mm auto;font-size:10.5pt;line-height:1.35}
h1{font-size:17pt;margin:0 0 2mm}h2{font-size:11.5pt;border-bottom:1px solid #ccc;margin:4mm 0 2mm;padding-bottom:1mm}
.meta{color:#777;font-size:8.5pt}.risk{border:2px solid var(--band);padding:2mm 4mm;margin:3mm 0 1mm}
.risk .value{font-size:20pt;font-weight:bold;color:var(--band)}
.risk .band{font-size:12pt;font-weight:bold;color:var(--band);margin-left:6mm}
.small{color:#777;font-size:8pt}.small.warn{color:#c62828}table.inputs{width:100%;border-collapse:collapse;font-size:9pt}
table.inputs td{padding:0.6mm 1mm}table.inputs td.l{color:#666}table.inputs td.v{font-weight:bold}
.notice{border:1px solid #c62828;background:#fff3e0;padding:2mm 3mm;margin-top:4mm;font-size:8.5pt}
svg text{font-size:8px}@page{size:A4;margin:10mm}@media print{body{margin:0}}
"""
_BAND_HEX = {"low": "#2e7d32", "intermediate": "#ef6c00", "high": "#c62828"}


def report_html(report: PatientReport) -> str:
    """The report as one self-contained, print-ready HTML page (every value escaped)."""
    lang = report.lang
    e = html.escape
    meta = "<br>".join(e(text) for text in _header_lines(report))
    interval = ""
    if report.interval:
        low, high = _pct(report.interval[0]), _pct(report.interval[1])
        interval = f'<div>{e(tr("patient_report.interval", lang, low=low, high=high))}</div>'
    band = tr("patient_report.band", lang, band=_band_text(report.band, lang))
    cutoffs = bands_sentence(report.cutoffs, lang)
    if report.missing_range:
        ranged = _missing_range_text(report, lang)
        interval = f"<div><b>{e(ranged)}</b></div>" + interval
    rows = math.ceil(len(report.inputs) / 2)
    cells = []
    for r in range(rows):
        tds = []
        for col in range(2):
            k = col * rows + r
            if k < len(report.inputs):
                label, value = report.inputs[k]
                tds.append(f'<td class="l">{e(label)}</td><td class="v">{e(value)}</td>')
            else:
                tds.append("<td></td><td></td>")
        cells.append("<tr>" + "".join(tds) + "</tr>")
    missing = f'<div class="small">{e(_missing_note(report))}</div>' if report.missing else ""
    reasons = "".join(f"<li>{e(text)}</li>" for text in report.reasons)
    isotonic = f'<div class="small">{e(report.isotonic_note())}</div>' if report.isotonic_note() else ""
    whatifs = ("".join(f"<li>{e(text)}</li>" for text in report.whatifs) if report.whatifs
               else f"<li>{e(tr('patient_report.no_whatifs', lang))}</li>")
    whatif_notes = "".join(f'<div class="small">{e(text)}</div>' for text in report.whatif_notes)
    reason_notes = "".join(f'<div class="small warn">{e(text)}</div>' for text in report.reason_notes)
    synthetic = (f'<div class="notice synthetic"><b>{e(tr("patient_report.synthetic", lang))}</b></div>'
                 if report.synthetic else "")
    return f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}"><head><meta charset="utf-8">
<title>{e(tr("patient_report.title", lang))}</title><style>{_CSS}</style></head>
<body style="--band:{_BAND_HEX[report.band]}">
<h1>{e(tr("patient_report.title", lang))}</h1>{synthetic}<div class="meta">{meta}</div>
<div class="risk"><div class="small">{e(report.risk_heading)}</div>
<span class="value">{_pct(report.risk)}</span><span class="band">{e(band)}</span>
{interval}</div>
<div class="small">{e(cutoffs)}</div>{isotonic}
<h2>{e(tr("patient_report.inputs", lang))}</h2><table class="inputs">{''.join(cells)}</table>{missing}
<h2>{e(tr("patient_report.why", lang, base=_pct(report.base_value)))}</h2>{_waterfall_svg(report)}
<h2>{e(tr("patient_report.reasons", lang))}</h2><ol>{reasons}</ol>{reason_notes}
<h2>{e(tr("patient_report.whatifs", lang))}</h2><ul>{whatifs}</ul>{whatif_notes}
<div class="notice">{e(tr("patient_report.notice", lang))}</div>
</body></html>
"""


def _waterfall_svg(report: PatientReport) -> str:
    e = html.escape
    items = [c for c in report.contributions if abs(c[1]) >= 0.0005] or report.contributions[:1]
    rows = [(tr("patient_report.average", report.lang), None), *items,
            (tr("patient_report.this_patient", report.lang), None)]
    row_h, label_w, chart_w, points_w = 16, 230, 380, 40
    path = np.concatenate([[report.base_value], report.base_value + np.cumsum([s for _, s in items])])
    lo, hi, step = _axis(float(min(path.min(), report.waterfall_end)), float(max(path.max(), report.waterfall_end)))
    def x_of(p: float) -> float:
        return label_w + (p - lo) / (hi - lo) * chart_w
    height = len(rows) * row_h + 16
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {label_w + chart_w + points_w} {height}">']
    tick = lo
    while tick <= hi + 1e-9:
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{len(rows) * row_h}" stroke="#e5e5e5"/>'
                     f'<text x="{x:.1f}" y="{len(rows) * row_h + 11}" text-anchor="middle" fill="#777">{tick:.0%}</text>')
        tick += step
    cum = report.base_value
    for k, (label, shap) in enumerate(rows):
        y = k * row_h
        weight = "bold" if shap is None else "normal"
        parts.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end" font-weight="{weight}">{e(label)}</text>')
        if shap is None:
            value = report.base_value if k == 0 else report.waterfall_end
            parts.append(f'<rect x="{x_of(value) - 1:.1f}" y="{y + 2}" width="2" height="{row_h - 4}" fill="#777"/>'
                         f'<text x="{label_w + chart_w + points_w - 2}" y="{y + 11}" text-anchor="end">{_pct(value, 0)}</text>')
            continue
        start, end = cum, cum + shap
        colour = "#c62828" if shap >= 0 else "#1565c0"
        left = x_of(min(start, end))
        w = max(x_of(max(start, end)) - left, 1)
        parts.append(f'<rect x="{left:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>'
                     f'<text x="{label_w + chart_w + points_w - 2}" y="{y + 11}" text-anchor="end" fill="{colour}">'
                     f'{e(_points(shap))}</text>')
        cum = end
    parts.append("</svg>")
    return "".join(parts)


def report_filename(report: PatientReport, ext: str) -> str:
    return f"heart-risk-report-{report.created.strftime('%Y%m%d-%H%M%S')}.{ext}"
