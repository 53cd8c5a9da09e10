"""Risk bands: the cut-offs that turn a probability into low / intermediate / high.

Risk bands follow the pre-test-probability categories of the ESC guideline on stable coronary artery
disease (2013): below 15% low (no further test for CAD), 15-65% intermediate (non-invasive testing),
above 65% high. They are configurable (``BandCutoffs``); the dashboard shows which are in force.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BandCutoffs:
    low: float = 0.15   # below: low
    high: float = 0.65  # at or above: high

    def __post_init__(self):
        if not 0 < self.low < self.high < 1:
            raise ValueError("band cut-offs must satisfy 0 < low < high < 1")


def risk_band(risk: float | np.ndarray, cutoffs: BandCutoffs = BandCutoffs()):
    """'low' / 'intermediate' / 'high' for a probability (or an array of them)."""
    r = np.asarray(risk, dtype=float)
    bands = np.where(r < cutoffs.low, "low", np.where(r >= cutoffs.high, "high", "intermediate"))
    return str(bands) if bands.ndim == 0 else bands
