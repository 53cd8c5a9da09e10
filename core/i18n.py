"""One translation table for core and ui: ``assets/i18n.json``, every string in English and Simplified Chinese.

The core writes the report, the model card, reasons and values in words in the language asked for; the
dashboard (``ui.i18n.t``) asks for the session's language. Both read this table, so a wording is changed
in one place and the key-coverage test (tests/test_i18n.py) checks every key both sides use.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = {"en": "English", "zh": "简体中文"}
TABLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "i18n.json"


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def tr(key: str, lang: str = "en", **kwargs) -> str:
    """The string for ``key`` in ``lang`` (English where that language lacks it), formatted with kwargs."""
    entry = table().get(key)
    if entry is None:  # a missing key is a bug; the table's test catches it, the page shows the key
        return key
    text = entry.get(lang) or entry["en"]
    return text.format(**kwargs) if kwargs else text


# Units written as words, translated through the table's ``unit.<word>`` keys; symbols clinicians read in
# both languages (mmHg, mg/dl, bpm, mmol/L, kg) stay as they are.
UNIT_WORDS = ("years", "vessels", "days", "months", "cigarettes/day", "in", "lb")


def unit_text(unit: str | None, lang: str = "en") -> str:
    """A unit as written in ``lang`` ('years' -> '岁'; 'mmHg' stays)."""
    if not unit:
        return ""
    return tr(f"unit.{unit}", lang) if unit in UNIT_WORDS else unit
