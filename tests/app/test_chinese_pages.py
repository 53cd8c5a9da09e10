"""Every page in 简体中文 (issue 16.9): no run of Latin letters outside a short list of symbols and names
a Chinese clinician reads as they are (units, AUC, SHAP, ECG...), the data's own column and model names,
and hexadecimal fingerprints. "年龄 (years)", "2 missing values", "numeric", "bce / adam / relu" and the demo
cohort's English name all failed it."""
from __future__ import annotations

import re

from test_scoring_page import app_with_model, isolated, no_exceptions  # noqa: F401

PAGES = ["pages/cohort.py", "pages/train.py", "pages/patient.py", "pages/explain.py", "pages/model_card.py",
         "pages/trust.py", "pages/scoring.py"]  # the audit page exists only with an audit file
# Symbols, abbreviations and names used untranslated in Chinese clinical writing and software.
ALLOWED = {"mmHg", "mg/dl", "mmol/L", "bpm", "mm", "AUC", "ROC", "SHAP", "SHA", "ECG", "ST", "ST-T", "UCI",
           "Cleveland", "UTC", "Adam", "ReLU", "tanh", "Sigmoid", "Keras", "zip", "CSV", "Excel", "PDF", "HTML",
           "Markdown", "L2", "Dropout", "ESC", "Brier", "MLP", "Platt", "English", "Language", "Parquet", "TensorFlow",
           "SHA-256"}
KINDS = ["markdown", "caption", "title", "header", "subheader", "text", "info", "warning", "error", "success",
         "metric", "selectbox", "multiselect", "radio", "text_input", "number_input", "button", "slider",
         "expander", "tabs", "toggle", "checkbox", "select_slider", "text_area"]
CHOICE_KINDS = {"selectbox", "multiselect", "radio", "select_slider"}  # their value is a code, not what is shown
MARKUP = re.compile(r":material/[a-z_]+:|:[a-z]+(-badge|-background)?\[")  # Streamlit's icon and colour syntax
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?([+-]\d\d:\d\d|Z)?")  # ISO 8601, as stored
VERSION = re.compile(r"^v\d+$")  # a saved model's version, "v1"
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-/][A-Za-z0-9]+)*")
HEX = re.compile(r"^[0-9a-f]{6,}$")


def shown_strings(at) -> list[str]:
    out = []
    for kind in KINDS:
        for element in at.get(kind):
            attrs = ("label", "help", "placeholder") if kind in CHOICE_KINDS else ("value", "label", "body", "help",
                                                                                   "placeholder")
            for attr in attrs:
                value = getattr(element, attr, None)
                if isinstance(value, str):
                    out.append(value)
            if kind in CHOICE_KINDS:
                out += [str(o) for o in element.options]
    return out


def english_left(at, data_words: set[str]) -> set[str]:
    left = set()
    for text in shown_strings(at):
        plain = TIMESTAMP.sub(" ", MARKUP.sub(" ", text).replace("\\", ""))  # markdown_text's escapes go
        for run in LATIN.findall(plain):
            if run in ALLOWED or run in data_words or HEX.match(run) or VERSION.match(run):
                continue
            left.add(run)
    return left


def test_every_page_in_chinese_has_no_english_left():
    at = app_with_model("zh")
    no_exceptions(at)
    model = at.session_state["model"]
    # the data's own words: column names (as in the file), the model's name
    data_words = {w for name in model.schema.feature_names + [model.schema.target or ""]
                  for w in LATIN.findall(name)} | {"toy-logistic"}
    found = {}
    for page in PAGES:
        at.switch_page(page).run()
        no_exceptions(at)
        left = english_left(at, data_words)
        if left:
            found[page] = sorted(left)
    assert found == {}
