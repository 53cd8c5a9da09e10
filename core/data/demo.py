"""The synthetic demo cohort: Cleveland-like patients that belong to nobody.

The dashboard must open on a cohort without shipping the real UCI file, so it ships only summary
statistics of it (``assets/demo_cohort.json``, written by ``scripts/make_demo_params.py``) and draws
patients from them with a Gaussian copula:

1. correlated standard normals, one per feature, with the stored latent correlation;
2. a measurement (age, resting BP, ...) is the stored quantile table read at ``Phi(z)`` and rounded to
   the resolution the clinic records (whole years/mmHg/mg/dl/bpm, ST depression to 0.1 mm);
   a coded feature (sex, chest-pain type, ...) is the code whose stored frequency band contains ``z``;
3. disease is drawn from the stored logistic model of the real outcome, so risk depends on the features
   as it does in the clinic; ``num`` is 0 without disease, else a severity 1-4 at the stored frequencies;
4. ``ca`` and ``thal`` go missing at the real file's rates, as in the real file.

Everything is vectorised over rows: a million patients take a few seconds (benchmarks use it).
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr, ndtri

from core.data.schema import CLEVELAND_COLUMNS

DEMO_NAME = "Synthetic demo cohort (Cleveland-like)"
PARAMS_PATH = Path(__file__).resolve().parents[2] / "assets" / "demo_cohort.json"


@lru_cache(maxsize=1)
def _load_params() -> dict:
    return json.loads(PARAMS_PATH.read_text(encoding="utf-8"))


def demo_params() -> dict:
    """The stored summary statistics (a copy: callers may change it without touching the cache)."""
    return copy.deepcopy(_load_params())


def demo_cohort(n: int = 303, seed: int = 7) -> pd.DataFrame:
    """``n`` synthetic patients in the Cleveland layout (``CLEVELAND_COLUMNS``, all float64, NaN = missing).

    Deterministic: the same ``n`` and ``seed`` give the same table on every run and machine with the
    pinned numpy.
    """
    return sample_cohort(_load_params(), n, seed)


def sample_cohort(params: dict, n: int, seed: int) -> pd.DataFrame:
    """Draw a cohort from any parameter set of the ``demo_cohort.json`` shape (the script calibrates with it)."""
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"number of demo patients must be a whole number >= 0, got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)
    columns, eta = draw_features(params, n, rng)

    # Disease, then severity among the diseased (drawn for everyone so the stream does not depend on who is ill).
    disease = rng.random(n) < expit(eta)
    del eta
    severity = params["severity"]
    cum = np.cumsum(severity["freq"], dtype=float)
    levels = np.asarray(severity["codes"], dtype=float)
    grade = levels[np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(levels) - 1)]
    columns["num"] = np.where(disease, grade, 0.0)
    del disease, grade

    # Missing completely at random at the real rates: the dashboard must handle '?' in ca/thal.
    for name in CLEVELAND_COLUMNS:
        rate = float(params["missing_rate"].get(name, 0.0))
        if rate > 0:
            columns[name][rng.random(n) < rate] = np.nan
    return pd.DataFrame({name: columns[name] for name in CLEVELAND_COLUMNS})


def draw_features(params: dict, n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 13 features (no missing yet) and the outcome model's log-odds for each row."""
    names = params["copula"]["features"]
    latent_corr = np.asarray(params["copula"]["latent_corr"], dtype=float)
    chol = np.linalg.cholesky(latent_corr)
    z = rng.standard_normal((n, len(names)))
    z = z @ chol.T  # rows of correlated N(0, 1)

    probs = np.asarray(params["quantile_probs"], dtype=float)
    outcome = params["outcome"]
    eta = np.full(n, float(outcome["intercept"]) + float(outcome.get("intercept_offset", 0.0)))
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        zj = z[:, j]
        if name in params["numeric"]:
            spec = params["numeric"][name]
            values = np.interp(ndtr(zj), probs, np.asarray(spec["quantiles"], dtype=float))
            values = np.round(values, int(spec["decimals"]))
            term = outcome["numeric"][name]
            eta += (values - term["mean"]) * (term["coef"] / term["scale"])
        else:
            spec = params["coded"][name]
            freq = np.asarray(spec["freq"], dtype=float)
            cuts = ndtri(np.cumsum(freq)[:-1] / freq.sum())  # latent thresholds between codes
            index = np.searchsorted(cuts, zj)
            values = np.asarray(spec["codes"], dtype=float)[index]
            eta += np.asarray(outcome["coded"][name]["coef"], dtype=float)[index]
        columns[name] = values
    return columns, eta


def normal_score_corr(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Correlation of van der Waerden normal scores (ties share their average rank; missing left out pairwise).

    Used on the real file to build the copula and on synthetic cohorts to check they match it.
    """
    scores = {}
    for name in columns:
        col = frame[name]
        ranks = col.rank(method="average")  # NaN stays NaN
        scores[name] = ndtri(ranks / (col.notna().sum() + 1))
    return pd.DataFrame(scores).corr().to_numpy()
