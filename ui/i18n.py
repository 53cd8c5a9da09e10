"""One translation table (assets/i18n.json) for every user-facing string, English and Simplified Chinese."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import streamlit as st

LANGUAGES = {"en": "English", "zh": "简体中文"}
TABLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "i18n.json"


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def lang() -> str:
    return st.session_state.get("lang", "en")


def t(key: str, **kwargs) -> str:
    """The string for ``key`` in the session's language, formatted with kwargs."""
    entry = table().get(key)
    if entry is None:  # a missing key is a bug; the test of the table catches it, the UI shows the key
        return key
    text = entry.get(lang()) or entry["en"]
    return text.format(**kwargs) if kwargs else text


def feature_label(feature) -> str:
    """A schema feature's clinical label in the session's language."""
    return feature.display_label(lang())


def feature_value(feature, value) -> str:
    """A value as the clinic writes it ('145 mmHg', 'typical angina'), in the session's language."""
    return feature.format_value(value, lang())


def lang_key(base: str) -> str:
    """A widget key per language, for widgets whose *options* are translated.

    Under one key the browser keeps showing the options of the language the widget was first drawn in;
    a new key per language redraws them. The value chosen in the other language (a raw code, not a
    label) is carried over, so switching language changes nothing else.
    """
    key = f"{base}@{lang()}"
    switched_from = st.session_state.get("lang_switched_from")  # set by ui.shell in the run that switched
    previous = f"{base}@{switched_from}" if switched_from and switched_from != lang() else None
    if previous and previous in st.session_state:
        st.session_state[key] = st.session_state.pop(previous)  # the fresher value; no stale copy is left
    elif key not in st.session_state:
        for other in LANGUAGES:
            if other != lang() and f"{base}@{other}" in st.session_state:
                st.session_state[key] = st.session_state[f"{base}@{other}"]
                break
    return key
