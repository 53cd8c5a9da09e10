"""The dashboard's side of the one translation table (core.i18n): the session's language and its widgets."""
from __future__ import annotations

import streamlit as st

from core.i18n import LANGUAGES, TABLE_PATH, table, tr

__all__ = ["LANGUAGES", "TABLE_PATH", "feature_label", "feature_value", "lang", "lang_key", "t", "table"]


def lang() -> str:
    return st.session_state.get("lang", "en")


def t(key: str, **kwargs) -> str:
    """The string for ``key`` in the session's language, formatted with kwargs (core.i18n's one table)."""
    return tr(key, lang(), **kwargs)


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


def outcome_name(schema) -> str | None:
    """What the risk is a risk of, in the session's language: the cohort's own words (Schema.outcome_name);
    None for the UCI layouts, whose wording ("disease") the translation table has."""
    return schema.outcome_name(lang()) if schema is not None else None


def outcome_words(schema) -> tuple[str, str]:
    """(with the outcome, without it) as legends and table cells say them: "disease" / "no disease", or the
    cohort's own outcome (issue 16.10: one outcome name on every page, charts and tables included)."""
    name = outcome_name(schema)
    if name:
        return t("outcome.with", outcome=name), t("outcome.without", outcome=name)
    return t("fig.disease"), t("fig.no_disease")
