"""Conditional imputation of a patient's missing inputs: the plausible values of what was not measured,
weighted by how often they occur in training patients like this one.

Method: k nearest training neighbours on the *observed* features (a hot-deck multiple imputation). The
donors summarise the complete training rows (training split only) without disclosing any patient (issue
18.11): k-means groups of at least MIN_CLUSTER_ROWS patients (core.model.privacy.micro_aggregate), each
group one donor a patient could have (numeric: the rounded group mean; codes, counts and grades: the
group's most frequent code), weighted by its group's size. They are kept in the bundle's preprocess.json
as plain numbers. For a patient with missing inputs, the donors closest on the features that *were*
measured (Euclidean distance on the network's inputs: standardised measurements, one-hot codes) are taken
in order until they stand for k patients (the last one partly); each gives one imputation: the patient's
own values, with the missing ones taken from that donor, weighing the patients it stands for / k (raw
training rows, as kept while GROUPED_DONORS is off: 1/k each). The risk is then the mean risk over the
imputations and its range the 5th-95th weighted percentile (core.workflow.risk), so no single best-case
value stands in for a test that was not done.

Why neighbours and not scikit-learn's IterativeImputer(sample_posterior=True): its Gaussian posterior
draws give values no patient has (1.4 vessels, thallium code 4.2) that would have to be rounded into
codes, its fitted chain of regressions does not serialise to JSON without hand-written code, and a
neighbour's values are readable ("of the 20 most similar training patients, 11 had 0 vessels").
The nearest-neighbour search itself is scikit-learn's (``nan_euclidean_distances``: the patient's
missing inputs are NaN and are left out of the distance).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Issue 18.11: donors as groups of >= 5 patients (privacy.micro_aggregate). Off: measured on Cleveland, a
# group's most frequent code drops the minority codes of the 20 nearest patients: 2 of the 6 patients without
# ca or thal then get a zero-width range (risks moved by up to 0.11, range tops by up to 0.38). Weighted donors
# load either way.
GROUPED_DONORS = False
MAX_DONORS = 1000  # training rows grouped into donors (a deterministic sample beyond this)
NEIGHBOURS = 20  # k: imputations per patient ("patients like this one": ~10% of Cleveland's training split)
_CHUNK = 2000  # patients per distance matrix (2000 x 1000 floats)


@dataclass
class Imputations:
    """Imputations of the rows of a raw matrix that have missing values.

    row: (m,) index of the patient (row of the input matrix) each imputation belongs to, ascending.
    raw: (m, p) the patient's raw row with its missing values taken from one donor.
    weight: (m,) each imputation's weight; a patient's weights add up to 1.
    """
    row: np.ndarray
    raw: np.ndarray
    weight: np.ndarray


class ConditionalImputer:
    """Donors (raw matrix), the patients each stands for (``weights``; 1 each when not given) and k
    (patients per imputation set); :meth:`impute` gives the imputations."""

    def __init__(self, donors: np.ndarray, k: int = NEIGHBOURS, weights: np.ndarray | None = None):
        donors = np.asarray(donors, dtype=np.float64).reshape(len(donors), -1)
        weights = np.ones(len(donors)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(weights) != len(donors):
            raise ValueError("the imputation donors and their weights do not match")
        # complete rows with known codes only: a donor gives every value a patient may lack
        keep = ~np.isnan(donors).any(axis=1) & (donors >= 0).all(axis=1) if donors.size else np.zeros(0, bool)
        keep &= weights > 0
        self.donors = donors[keep] if donors.size else donors
        self.weights = weights[keep] if donors.size else np.zeros(0)
        total = float(self.weights.sum())
        self.k = int(max(1, min(int(k), np.floor(total + 1e-9)))) if len(self.donors) and total >= 1 - 1e-9 else 0

    @classmethod
    def fit(cls, raw_train: np.ndarray, kinds: list[str] | None = None, seed: int = 0,
            k: int = NEIGHBOURS) -> "ConditionalImputer":
        """Donors from the training split's raw matrix (Preprocessor.encode): its complete rows (at most
        MAX_DONORS) micro-aggregated into groups of MIN_CLUSTER_ROWS patients or more. ``kinds``: each
        column's feature kind (numeric when not given)."""
        from core.model.privacy import micro_aggregate

        raw = np.asarray(raw_train, dtype=np.float64)
        complete = raw[~np.isnan(raw).any(axis=1) & (raw >= 0).all(axis=1)]
        if len(complete) > MAX_DONORS:
            rows = np.sort(np.random.default_rng(seed).choice(len(complete), MAX_DONORS, replace=False))
            complete = complete[rows]
        if not GROUPED_DONORS:
            return cls(complete, k)
        donors, sizes = micro_aggregate(complete, list(kinds or ["numeric"] * raw.shape[1]), seed=seed)
        return cls(donors, k, sizes)

    @property
    def usable(self) -> bool:
        return self.k > 0

    def impute(self, preprocessor, raw: np.ndarray) -> Imputations:
        """The k imputations of every row of ``raw`` that has a missing value (rows without one: none)."""
        from sklearn.metrics.pairwise import nan_euclidean_distances

        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        p = raw.shape[1]
        missing_rows = np.flatnonzero(np.isnan(raw).any(axis=1))
        if missing_rows.size == 0 or not self.usable:
            return Imputations(np.zeros(0, np.int64), np.zeros((0, p)), np.zeros(0))
        donors_X = preprocessor.transform_raw(self.donors).astype(np.float64)
        column_feature = np.empty(preprocessor.n_outputs_, dtype=np.int64)
        for j, sl in enumerate(preprocessor.slices_):
            column_feature[sl] = j
        parts_row, parts_raw, parts_weight = [], [], []
        for start in range(0, missing_rows.size, _CHUNK):
            rows = missing_rows[start:start + _CHUNK]
            patients = raw[rows]
            X = preprocessor.transform_raw(patients).astype(np.float64)
            X[np.isnan(patients)[:, column_feature]] = np.nan  # missing inputs take no part in the distance
            distance = nan_euclidean_distances(X, donors_X)
            distance[np.isnan(distance)] = 0.0  # nothing measured at all: every donor is as near
            # stable sort: ties (identical coded patients) resolve to the same donors every time
            order = np.argsort(distance, axis=1, kind="stable")
            # nearest donors until they stand for k patients; the last one counts only for the remainder
            before = np.cumsum(self.weights[order], axis=1) - self.weights[order]
            share = np.clip(self.k - before, 0.0, self.weights[order])
            patient, rank = np.nonzero(share > 1e-12)
            imputed = patients[patient].copy()
            donor_rows = self.donors[order[patient, rank]]
            hole = np.isnan(imputed)
            imputed[hole] = donor_rows[hole]
            parts_row.append(rows[patient])
            parts_raw.append(imputed)
            parts_weight.append(share[patient, rank] / self.k)
        row = np.concatenate(parts_row)
        return Imputations(row, np.concatenate(parts_raw), np.concatenate(parts_weight))

    # ---- persistence (plain JSON) --------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"method": "k nearest training neighbours on the observed features", "k": self.k,
                "donors": self.donors.tolist(), "donor_weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict, p: int) -> "ConditionalImputer":
        donors = np.array(data.get("donors") or [], dtype=np.float64)
        if donors.size and (donors.ndim != 2 or donors.shape[1] != p):
            raise ValueError("the imputation donors do not match the model's features")
        weights = data.get("donor_weights")  # None in bundles saved before donors were grouped: 1 patient each
        if weights is not None and len(weights) != len(donors):
            raise ValueError("the imputation donors and their weights do not match")
        return cls(donors.reshape(-1, p), int(data.get("k", NEIGHBOURS)), weights)


def weighted_range(values: np.ndarray, weights: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """(low, high): the weighted ``alpha`` and ``1 - alpha`` percentiles of ``values``.

    Inverted-CDF rule: low is the smallest value whose cumulative weight exceeds alpha, high the largest
    whose upper-tail weight exceeds alpha; so every value that carries more than alpha of the weight lies
    inside [low, high] (what the tests check). numpy's weighted percentile does not promise this edge rule
    in every supported version, hence these few lines.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order] / weights.sum()
    below = np.cumsum(w)
    above = 1.0 - below + w  # weight at or above each value
    eps = 1e-9
    low = v[np.argmax(below > alpha + eps)] if (below > alpha + eps).any() else v[0]
    ok = above > alpha + eps
    high = v[len(v) - 1 - np.argmax(ok[::-1])] if ok.any() else v[-1]
    return float(low), float(high)


__all__ = ["ConditionalImputer", "Imputations", "weighted_range", "MAX_DONORS", "NEIGHBOURS"]
