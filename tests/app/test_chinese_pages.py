"""Every page in 简体中文 (issue 16.9): no run of Latin letters outside a short list of symbols and names
a Chinese clinician reads as they are (units, AUC, SHAP, ECG...), the data's own column and model names,
and hexadecimal fingerprints. "年龄 (years)", "2 missing values", "numeric", "bce / adam / relu" and the demo
cohort's English name all failed it."""
from __future__ import annotations

import json
import re

from test_scoring_page import app_with_model, isolated, no_exceptions  # noqa: F401

PAGES = ["pages/cohort.py", "pages/train.py", "pages/patient.py", "pages/explain.py", "pages/model_card.py",
         "pages/trust.py", "pages/scoring.py"]  # the audit page exists only with an audit file
# Symbols, abbreviations and names used untranslated in Chinese clinical writing and software.
ALLOWED = {"mmHg", "mg/dl", "mmol/L", "bpm", "mm", "AUC", "ROC", "SHAP", "SHA", "ECG", "ST", "ST-T", "UCI",
           "Cleveland", "UTC", "Adam", "ReLU", "tanh", "Sigmoid", "Keras", "zip", "CSV", "Excel", "PDF", "HTML",
           "Markdown", "L2", "Dropout", "ESC", "Brier", "MLP", "Platt", "English", "Language", "Parquet", "TensorFlow",
           "SHA-256", "ECE", "PR", "DeLong", "Wilson", "Vickers", "Elkin", "Collins", "BMJ", "TRIPOD", "AI",
           "Hessian", "n", "pt",
           # the software a model was trained with, as the card lists it (package names)
           "python", "numpy", "pandas", "keras", "scikit-learn", "tensorflow-cpu", "tensorflow", "streamlit"}
KINDS = ["markdown", "caption", "title", "header", "subheader", "text", "info", "warning", "error", "success",
         "metric", "selectbox", "multiselect", "radio", "text_input", "number_input", "button", "slider",
         "expander", "tabs", "toggle", "checkbox", "select_slider", "text_area"]
CHOICE_KINDS = {"selectbox", "multiselect", "radio", "select_slider"}  # their value is a code, not what is shown
MARKUP = re.compile(r":material/[a-z_]+:|:[a-z]+(-badge|-background)?\[")  # Streamlit's icon and colour syntax
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?([+-]\d\d:\d\d|Z)?")  # ISO 8601, as stored
VERSION = re.compile(r"^v\d+$")  # a saved model's version, "v1"
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-/][A-Za-z0-9]+)*")
TAG = re.compile(r"</?[a-z]+\s*/?>")
ITEM = re.compile(r"(?<=\d)[a-z]\b")  # a checklist item's letter, "TRIPOD 12e"
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


def figure_strings(at) -> list[str]:
    """What a Plotly chart shows in words: titles, axis titles, annotations (the "best" marker), legend
    names and category labels (a forest plot's terms). Hover texts are left out."""
    out = []
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        layout = spec.get("layout", {})
        for part in [layout] + [v for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]:
            title = part.get("title") if isinstance(part, dict) else None
            out.append(title.get("text") if isinstance(title, dict) else title)
        out += [a.get("text") for a in layout.get("annotations", [])]
        for trace in spec.get("data", []):
            out.append(trace.get("name"))
            for axis in ("x", "y", "text"):
                values = trace.get(axis)
                if isinstance(values, list):
                    out += [v for v in values if isinstance(v, str)]
    return [TAG.sub(" ", s) for s in out if isinstance(s, str)]  # Plotly's <br>, <b> are markup


def table_strings(at) -> list[str]:
    """A table's column names and text cells (st.dataframe)."""
    out = []
    for element in at.dataframe:
        df = element.value
        out += [str(c) for c in df.columns]
        for column in df.columns:
            out += [v for v in df[column].tolist() if isinstance(v, str)]
    return out


def english_left(at, data_words: set[str]) -> set[str]:
    left = set()
    for text in shown_strings(at) + figure_strings(at) + table_strings(at):
        plain = ITEM.sub(" ", TIMESTAMP.sub(" ", MARKUP.sub(" ", text).replace("\\", "")))  # markdown_text's escapes go
        for run in LATIN.findall(plain):
            if run in ALLOWED or run in data_words or HEX.match(run) or VERSION.match(run):
                continue
            left.add(run)
    return left


def test_every_page_in_chinese_has_no_english_left():
    at = app_with_model("zh")
    no_exceptions(at)
    model = at.session_state["model"]
    # a trained network's curves on the Train page, with the best epoch marked
    model.history_ = {"loss": [0.7, 0.6, 0.62], "val_loss": [0.72, 0.65, 0.66], "accuracy": [0.6, 0.7, 0.7],
                      "val_accuracy": [0.6, 0.68, 0.67], "auc": [0.7, 0.8, 0.81], "val_auc": [0.7, 0.78, 0.77]}
    model.best_epoch_ = 2
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


def test_pages_of_a_trained_network_in_chinese_have_no_english_left(tmp_path, monkeypatch):
    """A network trained here (not the toy model): its Train curves with the best epoch marked, the Trust
    page's second opinion (odds ratios per SD "(8.75 岁)", axis titles) and the model card's subgroups, range
    and calibration words, all in Chinese."""
    from test_pages import new_app, tr, widget
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    at = new_app("zh")
    at.switch_page("pages/train.py").run()  # the Train page's form, filled in Chinese
    widget(at.number_input, tr("train.epochs", "zh")).set_value(8)
    widget(at.number_input, tr("train.members", "zh")).set_value(1)
    at.get("form_submit_button")[0].click().run()
    no_exceptions(at)
    assert at.session_state["train_job"].wait(120), "training did not finish"
    at.run()
    no_exceptions(at)
    model = at.session_state["model"]
    data_words = {w for name in model.schema.feature_names + [model.schema.target or ""]
                  for w in LATIN.findall(name)} | {"heart-mlp"}  # the name proposed for saving it
    found = {}
    # AppTest formats a selectbox's value outside the session, where t() would speak English
    monkeypatch.setattr("ui.i18n.lang", lambda: "zh")
    # the Trust page before the card: its checks go into the card (subgroups, calibration)
    for page in ["pages/train.py", "pages/trust.py", "pages/model_card.py"]:
        at.switch_page(page).run()
        no_exceptions(at)
        left = english_left(at, data_words)
        if left:
            found[page] = sorted(left)
        if page == "pages/trust.py":
            disagreement_has_room(at)
    assert found == {}, repr(found)[:3000]


def disagreement_has_room(at) -> None:
    """The second opinion's patient table gives every column room for its words (QA: its last column,
    "Disagreement", was cut off at 1280 px): 14 px per character of Chinese, 7 of Latin, 16 of padding; the
    disagreement words in both languages; and the whole table within the page's 818 px."""
    from test_pages import tr

    def needed(text: str) -> float:
        return 16 + sum(14 if ord(c) > 0x2e80 else 7 for c in text)
    header = tr("trust.pt_disagree", "zh")
    table = next(d for d in at.dataframe if header in d.value.columns)
    widths = {name: spec.get("width", 0) for name, spec in json.loads(table.proto.columns).items()}
    for column in table.value.columns:
        longest = max([needed(str(column))] + [needed(str(v)) for v in table.value[column]])
        assert widths.get(column, 0) >= longest, (column, widths)
    for lang in ("en", "zh"):
        for key in ("trust.disagree_direction", "trust.disagree_rank"):
            assert widths[header] >= needed(tr(key, lang)), (lang, key, widths)
    assert sum(widths.values()) <= 818
