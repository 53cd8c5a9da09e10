"""What a model bundle may say about its training patients: summaries, never a patient's record.

* The SHAP background is a set of weighted cluster centres (k-means on the standardised raw matrix, as
  ``shap.kmeans`` does), each the average of at least ``MIN_CLUSTER_ROWS`` patients; a coded feature's
  centre value is the cluster's most frequent code (an average of codes is no code). Interventional
  Shapley values average over background rows, so weighting each centre by its share of patients gives
  the exact Shapley values against that weighted background. How many centres: the fewest for which
  reasons move by less than a tolerance against the full background (core.explain.summarise_background).
* Training ranges are the 1st and 99th percentiles, rounded outwards to a step one decade below the
  range's width: not the smallest or largest value any patient had.
"""
from __future__ import annotations

import math

import numpy as np

MIN_CLUSTER_ROWS = 5  # a centre is the average of at least this many patients
RANGE_PERCENTILES = (1.0, 99.0)
CODED_KINDS = ("binary", "categorical")
# Imputation donors are grouped on the measurements alone (codes weigh 0): a group's codes are kept as counts,
# and groups mixed in their codes keep minority codes. Measured on Cleveland (ca or thal removed from each of
# the 297 complete patients): 0 zero-width ranges at weight 0; 5+5 at 0.5, 14+32 at 1, 8+40 at 3.
DONOR_CODE_WEIGHT = 0.0
CODE_WEIGHT = 1.0  # measured: 1, 3 and 5 gave max reason changes 0.015, 0.020, 0.022 at 30 centres


def training_range(values: np.ndarray) -> tuple[float, float]:
    """The (low, high) a bundle records for one measurement: rounded percentiles, not the extremes."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = (float(v) for v in np.percentile(values, RANGE_PERCENTILES))
    width = hi - lo
    if width <= 0:
        width = abs(hi) or 1.0
    step = 10.0 ** (math.floor(math.log10(width)) - 1)
    return _round(math.floor(lo / step) * step, step), _round(math.ceil(hi / step) * step, step)


def _round(value: float, step: float) -> float:
    """Drop the float noise of ``k * step`` (e.g. 0.30000000000000004 -> 0.3)."""
    digits = max(0, -math.floor(math.log10(step)))
    return round(value, digits)


def cluster_background(raw: np.ndarray, kinds: list[str], centres: int, seed: int = 0,
                       min_rows: int = MIN_CLUSTER_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(centres, weights) summarising the raw rows ``raw`` (n, p): k-means on the standardised matrix
    (missing values at the column's median), then every cluster smaller than ``min_rows`` dissolved
    into its members' nearest remaining clusters, so that each centre averages ``min_rows`` patients or
    more. Numeric and ordinal features: the members' mean (missing ignored); binary and categorical:
    the members' most frequent code. Weights: each cluster's share of the rows (they sum to 1)."""
    raw = np.asarray(raw, dtype=np.float64)
    n = len(raw)
    groups = _groups(raw, kinds, centres, seed, min_rows)
    out = _summaries(raw, groups, [kinds[j] in CODED_KINDS for j in range(raw.shape[1])])
    weights = np.array([len(rows) for rows in groups], dtype=np.float64) / n
    return out, weights


def donor_groups(raw: np.ndarray, kinds: list[str], seed: int = 0, min_rows: int = MIN_CLUSTER_ROWS,
                 code_weight: float = DONOR_CODE_WEIGHT) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict]:
    """(sizes, means, sds, codes, counts): complete raw rows ``raw`` (n, p) grouped into as many k-means
    groups as give each at least ``min_rows`` patients (n // min_rows, then small groups dissolved, as in
    cluster_background). Per group: ``sizes`` (G,) its patients; ``means`` and ``sds`` (G, p) each numeric
    feature's mean and standard deviation, rounded to the precision the training values are recorded at
    (NaN in the other columns); for
    every other feature j (binary, categorical, ordinal counts and grades such as vessels 0-3)
    ``codes[j]`` the codes seen and ``counts[j]`` (G, len(codes[j])) how many of the group's patients have
    each. Only per-feature counts: which codes go together in one patient is not kept."""
    raw = np.asarray(raw, dtype=np.float64)
    n, p = raw.shape
    if n < min_rows:
        return np.zeros(0), np.zeros((0, p)), np.zeros((0, p)), {}, {}
    groups = _groups(raw, kinds, n // min_rows, seed, min_rows, code_weight=code_weight,
                     one_hot=("binary", "categorical", "ordinal"))
    sizes = np.array([len(rows) for rows in groups], dtype=np.float64)
    means, sds = np.full((len(groups), p), np.nan), np.full((len(groups), p), np.nan)
    codes, counts = {}, {}
    for j in range(p):
        if kinds[j] == "numeric":
            decimals = _decimals(raw[:, j])
            means[:, j] = np.round([raw[rows, j].mean() for rows in groups], decimals)
            sds[:, j] = np.round([raw[rows, j].std() for rows in groups], decimals)
        else:
            codes[j] = np.unique(raw[:, j])
            counts[j] = np.array([[np.count_nonzero(raw[rows, j] == c) for c in codes[j]] for rows in groups],
                                 dtype=np.float64)
    return sizes, means, sds, codes, counts


def _decimals(values: np.ndarray, most: int = 3) -> int:
    """The fewest decimals (up to ``most``) every value is recorded at: 0 for bpm, 1 for ST depression."""
    values = values[~np.isnan(values)]
    for d in range(most + 1):
        if np.allclose(values, np.round(values, d), rtol=0, atol=1e-9):
            return d
    return most


def _groups(raw: np.ndarray, kinds: list[str], centres: int, seed: int, min_rows: int,
            code_weight: float = CODE_WEIGHT, one_hot: tuple[str, ...] = CODED_KINDS) -> list[np.ndarray]:
    """Row indices of each k-means group (at most ``centres``, each of ``min_rows`` rows or more)."""
    from sklearn.cluster import KMeans  # scikit-learn's k-means (the clustering shap.kmeans runs)

    n, p = raw.shape
    if n == 0:
        raise ValueError("no rows to summarise")
    filled = np.where(np.isnan(raw), np.nanmedian(np.where(np.isnan(raw), np.nan, raw), axis=0), raw)
    filled = np.nan_to_num(filled)  # a column with no value at all
    sd = filled.std(axis=0)
    numeric = [j for j in range(p) if kinds[j] not in one_hot]
    parts = [(filled[:, numeric] - filled[:, numeric].mean(axis=0)) / np.where(sd[numeric] > 0, sd[numeric], 1.0)]
    # Coded features one-hot (a code is a category, not a distance), so that clusters tend to share
    # their codes: a centre then stands for its patients' codes rather than only their most frequent one.
    for j in range(p):
        if kinds[j] in one_hot:
            parts.append(code_weight * (filled[:, [j]] == np.unique(filled[:, j])[None, :]))
    z = np.hstack(parts).astype(np.float64)
    k = max(1, min(int(centres), n // min_rows))
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z).labels_
    labels = _dissolve_small(z, labels, min_rows)
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


def _summaries(raw: np.ndarray, groups: list[np.ndarray], by_mode: list[bool]) -> np.ndarray:
    """One row per group: the members' most frequent code where ``by_mode``, else their mean (missing
    values ignored; NaN where all are missing)."""
    out = np.empty((len(groups), raw.shape[1]))
    for g, rows in enumerate(groups):
        for j in range(raw.shape[1]):
            col = raw[rows, j]
            col = col[~np.isnan(col)]
            if col.size == 0:
                out[g, j] = np.nan  # all missing: explained as the model fills a missing value
            elif by_mode[j]:
                values, counts = np.unique(col, return_counts=True)
                out[g, j] = values[np.argmax(counts)]
            else:
                out[g, j] = col.mean()
    return out


def _dissolve_small(z: np.ndarray, labels: np.ndarray, min_rows: int) -> np.ndarray:
    """Give each member of the smallest too-small cluster to its nearest other cluster, until none is."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) <= 1 or counts.min() >= min_rows:
            return labels
        small = ids[np.argmin(counts)]
        others = ids[ids != small]
        centres = np.array([z[labels == c].mean(axis=0) for c in others])
        members = np.flatnonzero(labels == small)
        nearest = np.argmin(((z[members, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        labels[members] = others[nearest]
