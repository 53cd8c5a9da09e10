"""The dashboard's strings (assets/i18n.json) for tests, so they follow wording changes instead of copying them."""
from __future__ import annotations

import json
from pathlib import Path

TABLE = json.loads((Path(__file__).resolve().parent.parent / "assets" / "i18n.json").read_text(encoding="utf-8"))


def tr(key: str, lang: str = "en", **kwargs) -> str:
    text = TABLE[key][lang]
    return text.format(**kwargs) if kwargs else text
