"""Conditional imputation of a patient's missing inputs: the plausible values of what was not measured,
weighted by how often they occur in training patients like this one.

Method: k nearest training neighbours on the *observed* features (a hot-deck multiple imputation), with
groups of patients as donors so that a model file discloses no training patient (issue 18.11).

Donors (core.model.privacy.donor_groups): the complete training rows (training split only, at most
MAX_DONORS) in k-means groups of at least MIN_CLUSTER_ROWS (5) patients, grouped on their measurements.
A bundle's preprocess.json keeps, per group: its number of patients; each measurement's mean and standard
deviation, rounded to the precision the measurement is recorded at; and for each coded feature (binary,
categorical, ordinal counts and grades such as vessels 0-3) the number of the group's patients with each
code. What this guarantees: no stored number is one patient's value, and which values go together in one
patient is not kept (codes are counted feature by feature), so no row can be read back. What it does not:
a count is exact and may be small (1 of a group of 5) or the whole group; where every patient of a group
has the same code, someone who knows that a person was in the training split and in that group (near its
means) learns that code (Cleveland: 24 groups of 5-17 patients; 17 of the 192 group x coded-feature
counts cover a whole group, mostly blood sugar, exercise angina and sex; 91 are a count of 1). Counts
are not noised (this is not differential privacy). The model card says
this (core.workflow.model_card, card.disclosure_donors).

Imputing: the groups closest to the patient on the features that *were* measured (Euclidean distance on
the network's inputs from the group's mean input: standardised measurements, a code's one-hot weighted by
its count; scikit-learn's ``nan_euclidean_distances`` leaves the missing inputs out) are taken in order
until they stand for k patients (the last one partly). Within each, a missing code takes every code the
group has, weighted by its count (so a code only 1 of 6 patients has keeps 1/6 of that group's weight);
a missing measurement takes the three-point Gauss-Hermite rule of the group's mean and SD (mean, mean -/+
sqrt(3) SD: weights 2/3, 1/6, 1/6, clipped to the training range); several inputs missing: every
combination (product of the weights, up to MAX_COMBINATIONS; beyond, the group's members rebuilt from its
summaries). The risk is then the mean risk over the imputations and its range the 5th-95th weighted
percentile (core.workflow.risk), so no single best-case value stands in for a test that was not done.

Measured on Cleveland (disease = num > 0; the trained model of train_on_cohort, its 211 complete training
rows as donors, k = 20), raw donors (the 20 nearest patients, what bundles kept before) -> these groups:

- the 6 patients without ca or thal (file rows 88, 167, 193, 267, 288, 303), risk (5-95 % range):
  0.090 (0.059-0.164) -> 0.099 (0.059-0.164); 0.095 (0.053-0.431) -> 0.091 (0.053-0.431);
  0.852 (0.798-0.942) -> 0.819 (0.798-0.909); 0.466 (0.272-0.691) -> 0.417 (0.272-0.691);
  0.669 (0.556-0.917) -> 0.658 (0.556-0.917); 0.065 (0.042-0.125) -> 0.082 (0.042-0.424).
  Max |risk difference| 0.049; widths 0.105, 0.377, 0.144, 0.419, 0.361, 0.083 -> 0.105, 0.377, 0.111,
  0.419, 0.361, 0.382; none zero-width. (Raw donors alone move as much with k: k = 15 vs 20 changes a risk
  by up to 0.047, and row 303's range top is 0.424 at k = 15, 25 and 30.) The group's most frequent code
  instead of its counts (the earlier attempt) gave 2 zero-width ranges and moved risks by up to 0.11.
- ca, then thal, removed from each of the 297 complete patients: mean |risk difference| 0.030 and 0.021
  (max 0.196, 0.135); median width 0.279 -> 0.403 and 0.227 -> 0.227; zero-width ranges 2 -> 0 and 6 -> 0.
  Grouping on the codes too (privacy.DONOR_CODE_WEIGHT) made groups share codes: 5 to 40 zero-width.
- cholesterol, max heart rate or ST depression removed from 40 complete patients: median width 0.056,
  0.045, 0.059 -> 0.059, 0.053, 0.058 (the group mean alone: 0.022, 0.014, 0.028, and 3 zero-width).

Bundles saved before 18.11 keep complete training rows (``donors``, optionally ``donor_weights``): they
still load and impute with them (their model card says the file holds those rows); saved again, the rows
are grouped first (:meth:`ConditionalImputer.for_saving`), so no bundle written now holds one.

Why neighbours and not scikit-learn's IterativeImputer(sample_posterior=True): its Gaussian posterior
draws give values no patient has (1.4 vessels, thallium code 4.2) that would have to be rounded into
codes, its fitted chain of regressions does not serialise to JSON without hand-written code, and a
neighbour's values are readable ("of the 20 most similar training patients, 11 had 0 vessels").
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

MAX_DONORS = 1000  # training rows grouped into donors (a deterministic sample beyond this)
NEIGHBOURS = 20  # k: imputations per patient ("patients like this one": ~10% of Cleveland's training split)
# Coded inputs missing at once: every combination of their codes up to this many per group (each weighted
# by the product of the group's counts); beyond it the group's members rebuilt from the counts (below).
MAX_COMBINATIONS = 64
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


@dataclass
class DonorGroups:
    """Groups of complete training patients (core.model.privacy.donor_groups): ``sizes`` (G,) patients per
    group; ``means`` and ``sds`` (G, p) each numeric feature's rounded group mean and standard deviation (NaN
    in coded columns); for each coded
    feature j (binary, categorical, ordinal), ``codes[j]`` its codes and ``counts[j]`` (G, len(codes[j]))
    how many of each group's patients have each code."""
    sizes: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    codes: dict
    counts: dict

    def centroids(self, preprocessor) -> np.ndarray:
        """(G, network inputs): each group's mean network input (a code's one-hot weighted by its count)."""
        X = np.zeros((len(self.sizes), preprocessor.n_outputs_))
        for j, sl in enumerate(preprocessor.slices_):
            if j in self.codes:
                share = self.counts[j] / self.sizes[:, None]
                X[:, sl] = share @ preprocessor.encode_feature_values(j, self.codes[j])
            else:
                X[:, sl] = preprocessor.encode_feature_values(j, self.means[:, j])
        return X

    def options(self, j: int, group: np.ndarray, low: float = -np.inf, high: float = np.inf):
        """(values, probabilities), each (len(group), m): what feature j may be in each of ``group``'s groups.
        A code: every code, with its share of the group's patients. A measurement: the three-point
        Gauss-Hermite rule, mean and mean -/+ sqrt(3) SD with probabilities 2/3, 1/6, 1/6 (it keeps the
        group's mean and spread; the mean alone would narrow the range), clipped to [low, high]."""
        if j in self.codes:
            values = np.broadcast_to(self.codes[j], (len(group), len(self.codes[j])))
            return values, self.counts[j][group] / self.sizes[group, None]
        values = self.means[group, j][:, None] + self.sds[group, j][:, None] * _NODES[None, :]
        return np.clip(values, low, high), np.broadcast_to(_NODE_WEIGHTS, values.shape)

    def members(self, g: int, features: list[int], low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """(sizes[g], len(features)): group g's patients rebuilt from its summaries: each code as often as
        counted, a measurement at the three Gauss-Hermite points in about their proportions; across
        features paired by a fixed shuffle (which values went together in one patient is not kept)."""
        rng = np.random.default_rng(g)
        n = int(self.sizes[g])
        columns = []
        for j in features:
            if j in self.codes:
                column = np.repeat(self.codes[j], self.counts[j][g].astype(np.int64))
            else:
                side = int(round(n / 6))
                values, _ = self.options(j, np.array([g]), low[j], high[j])
                column = np.repeat(values[0], [side, n - 2 * side, side])
            columns.append(rng.permutation(column))
        return np.column_stack(columns)


_NODES = np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0)])
_NODE_WEIGHTS = np.array([1 / 6, 2 / 3, 1 / 6])


class ConditionalImputer:
    """Donors and the patients each stands for (``weights``), and k (patients per imputation set);
    :meth:`impute` gives the imputations. Donors are either ``groups`` (DonorGroups, what new bundles
    keep) or raw rows ``donors`` (bundles saved before 18.11; ``weights`` 1 each when not given)."""

    def __init__(self, donors: np.ndarray | None = None, k: int = NEIGHBOURS, weights: np.ndarray | None = None,
                 groups: DonorGroups | None = None):
        self.groups = groups
        if groups is not None:
            self.donors = np.zeros((0, groups.means.shape[1]))
            self.weights = np.asarray(groups.sizes, dtype=np.float64)
        else:
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
        self.k = int(max(1, min(int(k), np.floor(total + 1e-9)))) if len(self.weights) and total >= 1 - 1e-9 else 0

    @classmethod
    def fit(cls, raw_train: np.ndarray, kinds: list[str] | None = None, seed: int = 0,
            k: int = NEIGHBOURS) -> "ConditionalImputer":
        """Donors from the training split's raw matrix (Preprocessor.encode): its complete rows (at most
        MAX_DONORS) grouped into groups of MIN_CLUSTER_ROWS patients or more (no group when there are fewer
        complete rows: the imputer is then not usable). ``kinds``: each column's feature kind (numeric
        when not given)."""
        from core.model.privacy import donor_groups

        raw = np.asarray(raw_train, dtype=np.float64)
        complete = raw[~np.isnan(raw).any(axis=1) & (raw >= 0).all(axis=1)]
        if len(complete) > MAX_DONORS:
            rows = np.sort(np.random.default_rng(seed).choice(len(complete), MAX_DONORS, replace=False))
            complete = complete[rows]
        groups = donor_groups(complete, list(kinds or ["numeric"] * raw.shape[1]), seed=seed)
        return cls(k=k, groups=DonorGroups(*groups))

    @property
    def usable(self) -> bool:
        return self.k > 0

    @property
    def grouped(self) -> bool:
        return self.groups is not None

    def impute(self, preprocessor, raw: np.ndarray) -> Imputations:
        """The imputations of every row of ``raw`` that has a missing value (rows without one: none)."""
        from sklearn.metrics.pairwise import nan_euclidean_distances

        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        p = raw.shape[1]
        missing_rows = np.flatnonzero(np.isnan(raw).any(axis=1))
        if missing_rows.size == 0 or not self.usable:
            return Imputations(np.zeros(0, np.int64), np.zeros((0, p)), np.zeros(0))
        donors_X = (self.groups.centroids(preprocessor) if self.grouped
                    else preprocessor.transform_raw(self.donors).astype(np.float64))
        # measurements imputed from a group's spread stay inside the training range (rounded percentiles)
        low = np.asarray(getattr(preprocessor, "raw_min_", None) or [-np.inf] * p, dtype=np.float64)
        high = np.asarray(getattr(preprocessor, "raw_max_", None) or [np.inf] * p, dtype=np.float64)
        low, high = np.where(np.isnan(low), -np.inf, low), np.where(np.isnan(high), np.inf, high)
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
            donor, weight = order[patient, rank], share[patient, rank] / self.k
            if self.grouped:
                pair, imputed, weight = self._from_groups(patients[patient], donor, weight, low, high)
                patient = patient[pair]
            else:
                imputed = patients[patient].copy()
                hole = np.isnan(imputed)
                imputed[hole] = self.donors[donor][hole]
            parts_row.append(rows[patient])
            parts_raw.append(imputed)
            parts_weight.append(weight)
        row = np.concatenate(parts_row)
        order = np.argsort(row, kind="stable")
        return Imputations(row[order], np.concatenate(parts_raw)[order], np.concatenate(parts_weight)[order])

    def _from_groups(self, base: np.ndarray, group: np.ndarray, weight: np.ndarray, low: np.ndarray,
                     high: np.ndarray):
        """(pair, rows, weights): the imputations of patient rows ``base`` each paired with one donor group
        (``weight``: the share of the patient's k that group stands for). Each missing input takes every
        value DonorGroups.options gives for that group (codes weighted by their counts, so a code only a few
        of the group's patients have keeps its weight); several missing: every combination, weighted by
        the product (up to MAX_COMBINATIONS; beyond, the group's rebuilt members). ``pair``: the index into
        ``base`` of each row; ``low``/``high``: each feature's training range (measurements are clipped)."""
        gr = self.groups
        pattern = np.isnan(base)
        parts = []
        for missing in np.unique(pattern, axis=0):
            sel = np.flatnonzero((pattern == missing).all(axis=1))
            features = list(np.flatnonzero(missing))
            options = [gr.options(j, group[sel], low[j], high[j]) for j in features]
            widths = [v.shape[1] for v, _ in options]
            if int(np.prod(widths)) <= MAX_COMBINATIONS:
                combos = np.array(list(itertools.product(*[range(m) for m in widths])), dtype=np.int64)
                prob = np.ones((len(sel), len(combos)))
                for f, (_, probs) in enumerate(options):
                    prob *= probs[:, combos[:, f]]
                pi, qi = np.nonzero(prob > 0)
                rows = base[sel][pi]
                for f, (values, _) in enumerate(options):
                    rows[:, features[f]] = values[pi, combos[qi, f]]
                parts.append((sel[pi], rows, weight[sel][pi] * prob[pi, qi]))
                continue
            # many inputs missing at once: the group's members rebuilt from its summaries (bounded work)
            for i in sel:
                members = gr.members(int(group[i]), features, low, high)
                rows = np.repeat(base[[i]], len(members), axis=0)
                rows[:, features] = members
                parts.append((np.full(len(members), i), rows, np.full(len(members), weight[i] / len(members))))
        pair = np.concatenate([q[0] for q in parts])
        return pair, np.concatenate([q[1] for q in parts]), np.concatenate([q[2] for q in parts])

    # ---- persistence (plain JSON) --------------------------------------------------------------
    def to_dict(self) -> dict:
        head = {"method": "k nearest training neighbours on the observed features", "k": self.k}
        if not self.grouped:  # only a bundle saved before 18.11 has these (Preprocessor.to_dict regroups them)
            return {**head, "donors": self.donors.tolist(), "donor_weights": self.weights.tolist()}
        gr = self.groups
        p = gr.means.shape[1]
        return {**head, "donor_groups": {
            "sizes": [int(s) for s in gr.sizes],
            "numeric": [{"feature": j, "means": gr.means[:, j].tolist(), "sds": gr.sds[:, j].tolist()}
                        for j in range(p) if j not in gr.codes],
            "coded": [{"feature": j, "codes": gr.codes[j].tolist(), "counts": gr.counts[j].astype(int).tolist()}
                      for j in sorted(gr.codes)]}}

    def for_saving(self, kinds: list[str]) -> "ConditionalImputer":
        """What a bundle keeps: grouped donors. Raw donors (a model loaded from a bundle saved before 18.11)
        are grouped here, so that no bundle written from now on holds a training patient's row."""
        if self.grouped:
            return self
        if getattr(self, "_grouped", None) is None:  # once per model (the metadata and preprocess.json use it)
            self._grouped = ConditionalImputer.fit(self.donors, kinds, k=self.k or NEIGHBOURS)
        return self._grouped

    @classmethod
    def from_dict(cls, data: dict, p: int) -> "ConditionalImputer":
        k = int(data.get("k", NEIGHBOURS))
        if "donor_groups" in data:
            return cls(k=k, groups=_groups_from_dict(data["donor_groups"], p))
        donors = np.array(data.get("donors") or [], dtype=np.float64)
        if donors.size and (donors.ndim != 2 or donors.shape[1] != p):
            raise ValueError("the imputation donors do not match the model's features")
        weights = data.get("donor_weights")  # None in bundles saved before donors were weighted: 1 patient each
        if weights is not None and len(weights) != len(donors):
            raise ValueError("the imputation donors and their weights do not match")
        return cls(donors.reshape(-1, p), k, weights)


def _groups_from_dict(data: dict, p: int) -> DonorGroups:
    sizes = np.asarray(data.get("sizes") or [], dtype=np.float64)
    g = len(sizes)
    means, sds = np.full((g, p), np.nan), np.full((g, p), np.nan)
    codes, counts, seen = {}, {}, []
    for item in data.get("numeric") or []:
        j = int(item["feature"])
        means[:, j] = np.asarray(item["means"], dtype=np.float64)
        sds[:, j] = np.asarray(item["sds"], dtype=np.float64)
        seen.append(j)
    for item in data.get("coded") or []:
        j = int(item["feature"])
        codes[j] = np.asarray(item["codes"], dtype=np.float64)
        counts[j] = np.asarray(item["counts"], dtype=np.float64).reshape(g, len(codes[j]))
        if not np.allclose(counts[j].sum(axis=1), sizes):
            raise ValueError("the imputation donor groups' code counts do not add up to their sizes")
        seen.append(j)
    numeric = [j for j in range(p) if j not in codes]
    if sorted(seen) != list(range(p)) or (sizes < 1).any() or np.isnan(means[:, numeric]).any() \
            or np.isnan(sds[:, numeric]).any() or (sds[:, numeric] < 0).any():
        raise ValueError("the imputation donor groups do not match the model's features")
    return DonorGroups(sizes, means, sds, codes, counts)


def weighted_range(values: np.ndarray, weights: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """(low, high): the weighted ``alpha`` and ``1 - alpha`` percentiles of ``values``.

    Inverted-CDF rule: low is the smallest value whose cumulative weight exceeds alpha, high the largest
    whose upper-tail weight exceeds alpha; so every value that carries more than alpha of the weight lies
    inside [low, high] (what the tests check). numpy's weighted percentile does not promise this edge rule
    in every supported version, hence these few lines. Zero width only when every value is the same.
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
    if low == high and v[0] < v[-1]:
        # One value carries more than 1 - 2*alpha of the weight (a code that 19 of 20 similar patients share):
        # the percentile range would have zero width although other values are plausible. The range is then
        # that of every plausible value (the clinical standard: an interval is never of zero width).
        return float(v[0]), float(v[-1])
    return float(low), float(high)


__all__ = ["ConditionalImputer", "DonorGroups", "Imputations", "weighted_range", "MAX_DONORS", "NEIGHBOURS", "MAX_COMBINATIONS"]
