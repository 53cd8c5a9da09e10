"""A number as a clinician types it into a form field: what the field shows is what the risk uses.

Written by hand because no parser we use takes both decimal marks: Babel's ``parse_decimal`` reads one
locale's convention, and a clinic in China or Europe types ``0,5`` as often as ``0.5`` whatever the
browser's locale (Streamlit's number input read ``0,5`` as 5.0, silently; issue 16.1). One decimal mark,
either ``.`` or ``,``; full-width digits and marks (an IME's ``０，５``) and the minus sign ``−`` are read
as their ASCII forms; anything else (letters, two marks, thousands separators) is refused, never guessed.
"""
from __future__ import annotations

import math
import re
import unicodedata

__all__ = ["NotANumber", "parse_number"]

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")


class NotANumber(ValueError):
    """The text is not one number (the field says so; nothing is used)."""


def parse_number(text: str | None) -> float | None:
    """The number typed, or None for an empty field (not measured). NotANumber for anything else."""
    if text is None:
        return None
    cleaned = unicodedata.normalize("NFKC", str(text)).replace("\u2212", "-").replace(" ", "").strip()
    if not cleaned:
        return None
    if not _NUMBER.match(cleaned):
        raise NotANumber(cleaned)
    value = float(cleaned.replace(",", "."))
    if not math.isfinite(value):  # unreachable with the pattern; kept so a future pattern cannot let inf in
        raise NotANumber(cleaned)
    return value
