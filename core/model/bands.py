"""Risk bands: the cut-offs that turn a probability into low / intermediate / high.

The bands are a setting of the model, not of any guideline: the clinician who trains or adopts a model
chooses them (Trust page, beside the threshold chooser, with what each cut-off means per 100 test
patients), and the bundle keeps them with who set them and when (``metadata.json``: ``bands``). No
guideline's categories apply to this model's output: guideline pre-test categories (ESC 2013: < 15%,
15-65%, 66-85%, > 85%) are estimated from age, sex and symptoms before testing, whereas this model already
takes exercise-test, thallium and fluoroscopy results, so its risk is a post-test probability; and the
bands carry no testing action. Until someone chooses, the defaults (15% / 65%) are placeholders that
nobody chose for the model, and every page, report and export says so.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BandCutoffs:
    low: float = 0.15   # below: low
    high: float = 0.65  # at or above: high
    set_by: str | None = None  # who chose them for this model (None: the defaults, chosen by no one)
    set_utc: str | None = None  # when (ISO 8601, UTC)

    def __post_init__(self):
        if not 0 < self.low < self.high < 1:
            raise ValueError("band cut-offs must satisfy 0 < low < high < 1")

    @property
    def chosen(self) -> bool:
        """Set by a named person (not the placeholder defaults)."""
        return bool(self.set_by)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "BandCutoffs":
        """The bands a bundle's metadata holds; the defaults for a bundle without them (older bundles) or
        with unreadable ones (never an error: the bands only label a risk, they do not change it)."""
        if not isinstance(data, dict):
            return cls()
        try:
            low, high = float(data["low"]), float(data["high"])
            if not (math.isfinite(low) and math.isfinite(high)):
                return cls()
            set_by = str(data["set_by"])[:80] if data.get("set_by") else None
            set_utc = str(data["set_utc"])[:40] if data.get("set_utc") else None
            return cls(low, high, set_by, set_utc)
        except (KeyError, TypeError, ValueError):
            return cls()


DEFAULT_BANDS = BandCutoffs()


def model_bands(model) -> BandCutoffs:
    """The bands stored with ``model`` (the defaults when it has none)."""
    bands = getattr(model, "bands_", None)
    return bands if isinstance(bands, BandCutoffs) else DEFAULT_BANDS


def risk_band(risk: float | np.ndarray, cutoffs: BandCutoffs = DEFAULT_BANDS):
    """'low' / 'intermediate' / 'high' for a probability (or an array of them)."""
    r = np.asarray(risk, dtype=float)
    bands = np.where(r < cutoffs.low, "low", np.where(r >= cutoffs.high, "high", "intermediate"))
    return str(bands) if bands.ndim == 0 else bands


def band_summary(y, risk, cutoffs: BandCutoffs) -> list[dict]:
    """What the cut-offs mean for a set of patients with known outcomes, per 100 of them: for each band,
    how many fall in it and how many of those have the disease (and the observed rate in the band)."""
    y = np.asarray(y, dtype=float)
    bands = np.asarray(risk_band(np.asarray(risk, dtype=float), cutoffs)).reshape(-1)
    n = len(y)
    rows = []
    for band in ("low", "intermediate", "high"):
        inside = bands == band
        k, events = int(inside.sum()), float(y[inside].sum())
        rows.append({"band": band, "n": k, "events": int(events),
                     "per_100": 100 * k / n if n else math.nan,
                     "events_per_100": 100 * events / n if n else math.nan,
                     "rate": events / k if k else math.nan})
    return rows
