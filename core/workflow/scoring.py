"""Scoring a whole cohort: every patient's risk, band, range over inputs not measured, interval (an
ensemble's), top reasons, and the table as CSV or Excel for people.

Risk and band for 100,000 patients take well under a second (numpy); the reasons are exact SHAP values
per patient (core.explain), the slow part, so they are computed in chunks with a progress callback and
can be left out.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from core.errors import PatientError
from core.model.bands import BandCutoffs, risk_band
from core.workflow.export import neutralise
from core.workflow.risk import pooled_member_risks, score_table

BANDS = ("low", "intermediate", "high")
REASON_CHUNK = 1000  # rows explained per progress step
RISK_CHUNK = 50_000


@dataclass
class ScoredCohort:
    # row, risk, risk_band, risk_low, risk_high, missing, [ensemble_low, ensemble_high], [reason_1..3], then
    # the input columns. risk_low..risk_high: the range over the inputs not measured (named in ``missing``;
    # empty for a complete row); ensemble_low..high: the spread of an ensemble's networks.
    table: pd.DataFrame
    seconds: float
    with_reasons: bool
    with_interval: bool

    def band_counts(self) -> dict[str, int]:
        counts = self.table["risk_band"].value_counts()
        return {band: int(counts.get(band, 0)) for band in BANDS}


def has_interval(model) -> bool:
    """An ensemble gives an interval (its members' spread); one network does not."""
    return hasattr(model, "predict_interval_raw") and int(getattr(model, "n_members_", 1) or 1) > 1


def score_cohort(model, df: pd.DataFrame, *, with_reasons: bool = True, top: int = 3, lang: str = "en",
                 cutoffs: BandCutoffs | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ScoredCohort:
    """Score every row of ``df`` (the model's feature columns are required; other columns pass through).

    ``progress(done, total)`` is called after each chunk. Rows keep their order; ``row`` numbers them
    as a person counts (1 = first data row).
    """
    started = time.perf_counter()
    missing = [n for n in model.preprocessor_.feature_names if n not in df.columns]
    if missing:
        raise PatientError(f"columns the model needs are missing: {', '.join(map(str, missing))}")
    n = len(df)
    chunk = REASON_CHUNK if with_reasons else RISK_CHUNK
    parts = []
    interval = has_interval(model)
    for start in range(0, max(n, 1), chunk):
        part = df.iloc[start:start + chunk]
        scored = score_table(model, part, with_reasons=with_reasons, top=top, lang=lang, cutoffs=cutoffs)
        if interval and len(part):
            scored["ensemble_low"], scored["ensemble_high"] = ensemble_interval(model, part)
        parts.append(scored)
        if progress is not None:
            progress(min(start + chunk, n), n)
    table = pd.concat(parts) if parts else df.iloc[:0].copy()
    table = table.reset_index(drop=True)
    table.insert(0, "row", np.arange(1, len(table) + 1))
    return ScoredCohort(table=_columns_in_order(table, interval, with_reasons, top),
                        seconds=time.perf_counter() - started, with_reasons=with_reasons, with_interval=interval)


def ensemble_interval(model, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """An ensemble's spread per row (its networks' 10th and 90th percentiles of risk)."""
    raw = model.preprocessor_.encode(df)
    _, low, high = model.predict_interval_raw(raw)
    holes = np.isnan(raw).any(axis=1)
    if holes.any() and hasattr(model, "member_risks_raw"):
        # a row with inputs not measured: each network's mean over the imputations, as its risk is
        members = pooled_member_risks(model, raw[holes])
        low[holes], high[holes] = np.percentile(members, 10, axis=0), np.percentile(members, 90, axis=0)
    return low, high


def _columns_in_order(table: pd.DataFrame, interval: bool, with_reasons: bool, top: int) -> pd.DataFrame:
    front = ["row", "risk", "risk_band", "risk_low", "risk_high", "missing"] + \
        (["ensemble_low", "ensemble_high"] if interval else []) + \
        ([f"reason_{k + 1}" for k in range(top)] if with_reasons else [])
    front = [c for c in front if c in table.columns]
    return table[front + [c for c in table.columns if c not in front]]


def scored_from_batch(model, table: pd.DataFrame, seconds: float, *, with_reasons: bool,
                      top: int = 3) -> ScoredCohort:
    """The output of a batch job (core.workflow.batch.read_scores: source_file, source_row, the input
    columns, risk, risk_band, ..., problem) as :func:`score_cohort` gives it, for the same table on screen
    and in the download: ``row`` is the file's data row (1 = first), the same columns first, an ensemble's
    spread added (numpy, well under a second for 100,000 rows). A row the job refused (a value the model
    must not see) keeps its row with no risk and no band; ``problem`` names its column and rule (the
    column is left out when every row was scored)."""
    table = table.drop(columns=["source_file"], errors="ignore").rename(columns={"source_row": "row"})
    table = table.reset_index(drop=True)
    if "problem" in table and (table["problem"].fillna("") == "").all():
        table = table.drop(columns=["problem"])
    interval = has_interval(model) and len(table) > 0
    if interval:
        low, high = np.full(len(table), np.nan), np.full(len(table), np.nan)
        scored = table["risk"].notna().to_numpy()
        if scored.any():
            low[scored], high[scored] = ensemble_interval(model, table.loc[scored])
        table["ensemble_low"], table["ensemble_high"] = low, high
    return ScoredCohort(table=_columns_in_order(table, interval, with_reasons, top), seconds=seconds,
                        with_reasons=with_reasons, with_interval=interval)


def filter_scored(table: pd.DataFrame, bands=BANDS, min_risk: float = 0.0) -> pd.DataFrame:
    """Rows in one of ``bands`` with risk >= ``min_risk``."""
    return table[table["risk_band"].isin(list(bands)) & (table["risk"] >= min_risk)]


def excel_bytes(df: pd.DataFrame, sheet: str = "risk") -> bytes:
    """An .xlsx workbook of the table, formula-looking text neutralised as in the CSV.

    openpyxl's write-only mode streams the rows (pandas' writer keeps every cell object: several times
    slower for 100,000 rows). Missing values are empty cells.
    """
    from openpyxl import Workbook

    safe = neutralise(df)
    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet)
    ws.append([str(c) for c in safe.columns])
    columns = [safe[c].astype(object).where(safe[c].notna(), None).tolist() for c in safe.columns]
    for row in zip(*columns):
        ws.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


__all__ = ["ScoredCohort", "score_cohort", "scored_from_batch", "ensemble_interval", "filter_scored",
           "excel_bytes", "has_interval", "risk_band", "BANDS"]
