"""Writing tables for people: CSV and Excel with spreadsheet-formula cells neutralised.

A cell starting with = + - @ (or tab / carriage return) is run as a formula by Excel and LibreOffice
(CSV injection). Text cells that start so get a leading apostrophe; numbers are left alone.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v)
    out.columns = ["'" + c if isinstance(c, str) and c.startswith(FORMULA_START) else c for c in out.columns]
    return out


def csv_bytes(df: pd.DataFrame) -> bytes:
    # UTF-8 with BOM: Excel on Chinese Windows opens it with the right characters.
    return neutralise(df).to_csv(index=False).encode("utf-8-sig")


def write_csv(df: pd.DataFrame, path) -> None:
    """Write atomically: a temp file beside the target, then rename (no half-written output)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(csv_bytes(df))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
