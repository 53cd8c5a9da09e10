"""The dashboard's strings for tests, from the one table (core.i18n), so tests follow wording changes instead
of copying them. Stricter than core.i18n.tr: a key or language missing from the table is a KeyError here."""
from __future__ import annotations

from core.i18n import table


def tr(key: str, lang: str = "en", **kwargs) -> str:
    text = table()[key][lang]
    return text.format(**kwargs) if kwargs else text
