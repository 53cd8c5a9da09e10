"""What would bring this patient's risk under a target: the smallest changes to modifiable features,
each only in its clinically sensible direction.

A counterfactual changes only features a treatment can change, and only the way a clinician would
(``Feature.modifiable`` and ``Feature.direction`` in the schema: blood pressure and cholesterol down,
fasting blood sugar "yes" -> "no"); age, sex, symptoms and test results never move. A research mode
(``research=True``) may move any feature either way; its results say so. Every new value stays plausible
(inside the schema's range and, by default, the range seen in training, where the model has data) and
respects the feature's kind: a code becomes another existing code, a measurement moves on its input step
grid (1 mmHg, 1 mg/dl, 0.1 mm).

What an answer means: how this model's estimate responds. The model is diagnostic (the probability that
coronary stenosis is already present), so an answer is not the effect of a treatment. Where the model's
own average direction for a modifiable feature contradicts the clinical one (in the Cleveland model higher
fasting blood sugar lowers the estimate), :func:`direction_conflicts` says so; that move is never offered.

"Smallest" is a normalised distance: a measurement's change counts in training standard deviations
(|new - old| / SD), a change of code counts 1. The search is exhaustive over 1-feature changes (every grid
value) and over 2- and 3-feature combinations on a coarse grid refined around its best point; every
candidate is scored through ``model.predict_risk_raw`` in one vectorised pass per grid. Up to
``n_alternatives`` answers come back, each over a different set of features (a set that only adds features
to a cheaper answer is left out: it is the same advice with more to change).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from core.errors import PatientError
from core.evaluate.directions import code_rank, model_directions
from core.i18n import tr
from core.workflow.risk import check_patient, conditional_imputer

_COARSE_BUDGET = 240_000  # candidate rows per combination size (pairs, triples), shared by its combinations
_MAX_FINE = 2001  # grid values of one measurement (a wider range is searched on a multiple of its step)
# A change of more features must cost clearly less than a feasible change of some of them (here: 10% less);
# otherwise it is the same advice plus a token change ("and cholesterol 200 instead of 201").
_SPARSITY = 0.9


@dataclass
class Change:
    feature: str
    old: object  # clinical value (a code, a number, or None when missing)
    new: object
    cost: float  # |new - old| / training SD; 1 for a change of code


@dataclass
class Alternative:
    changes: list[Change]
    values: dict  # the whole patient with the changes applied (clinical values)
    risk_before: float
    risk_after: float
    distance: float  # sum of the changes' costs
    target: float = 0.20
    research: bool = False  # found by a research search (any feature, either direction): not advice

    @property
    def features(self) -> list[str]:
        return [c.feature for c in self.changes]

    def sentence(self, schema, lang: str = "en") -> str:
        return sentence(self, schema, lang)


@dataclass
class CounterfactualResult:
    risk: float
    target: float
    features: list[str]  # the features allowed to change
    alternatives: list[Alternative] = field(default_factory=list)
    reason: str | None = None  # when empty: 'already_below', 'no_features' or 'unreachable'
    rows_scored: int = 0
    seconds: float = 0.0
    max_changes: int = 3
    research: bool = False  # any feature, either direction: not clinical advice

    def message(self, lang: str = "en") -> str:
        """Why there is no alternative, in words (empty when there are some)."""
        if self.alternatives:
            return ""
        target = _pct(self.target)
        if self.reason == "already_below":
            return tr("whatif.already_below", lang, t=target)
        if self.reason == "no_features":
            return tr("whatif.no_features", lang)
        return tr("whatif.unreachable", lang, t=target, k=self.max_changes)


def default_modifiable(schema) -> list[str]:
    """The features a what-if may move: modifiable with a clinical direction (in schema order)."""
    return [f.name for f in schema.model_features if f.actionable]


# ---- the search -------------------------------------------------------------------------------------
@dataclass
class _Grid:
    """Candidate raw values of one feature (the patient's own value excluded) and their costs."""
    j: int
    values: np.ndarray
    costs: np.ndarray
    near: list[int]  # indices of the smallest changes (either side of the current value)
    coded: bool

    @property
    def min_cost(self) -> float:
        return float(self.costs.min())


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0


def _feature_grid(pre, j: int, current: float, within_training: bool, direction: str | None) -> _Grid | None:
    """The candidate values of feature ``j``; with a ``direction`` only those on its side of ``current``."""
    f = pre.features[j]
    if f.is_categorical:
        codes = np.arange(len(pre.categories_[f.name]), dtype=float)
        keep = codes != current
        if direction is not None:
            now = code_rank(pre, j, current)
            ranks = [code_rank(pre, j, c) for c in codes]
            keep &= np.array([now is not None and r is not None and (r < now if direction == "decrease" else r > now)
                              for r in ranks])
        if not keep.any():
            return None
        values = codes[keep]
        return _Grid(j, values, np.ones(len(values)), list(range(len(values))), coded=True)
    lo = f.min if f.min is not None else pre.raw_min_[j]
    hi = f.max if f.max is not None else pre.raw_max_[j]
    if within_training and not math.isnan(pre.raw_min_[j]):
        lo, hi = max(lo, pre.raw_min_[j]), min(hi, pre.raw_max_[j])
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) or hi < lo:
        return None
    step = float(f.step) if f.step else 10.0 ** math.floor(math.log10(max(hi - lo, 1e-9) / 100))
    while (hi - lo) / step + 1 > _MAX_FINE:
        step *= 2
    k = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)
    values = np.round(k * step, _decimals(step) + 2)
    values = values[np.abs(values - current) >= step / 2 - 1e-12]  # a change smaller than a step is none
    if direction is not None:
        values = values[values < current] if direction == "decrease" else values[values > current]
    if values.size == 0:
        return None
    costs = np.abs(values - current) / pre.scale_[j]
    below, above = np.flatnonzero(values < current), np.flatnonzero(values > current)
    near = ([int(below[-1])] if below.size else []) + ([int(above[0])] if above.size else [])
    return _Grid(j, values, costs, near, coded=False)


class _Scorer:
    """Scores candidate rows as the Patient page scores a patient: with an input not measured, the weighted
    mean risk over the conditional imputations of each candidate (its nearest training patients on what
    is measured, the changed values included), so a suggestion's risk is the one the page shows after
    'Apply to form'."""

    def __init__(self, model, raw: np.ndarray, target: float):
        self.model, self.raw, self.target = model, raw, target
        self.rows = 0
        self.missing = np.isnan(raw[0])
        self.imputer = conditional_imputer(model) if self.missing.any() else None

    @property
    def k(self) -> int:
        return 1 if self.imputer is None else self.imputer.k

    def risk(self, rows: np.ndarray) -> np.ndarray:
        if self.imputer is None:
            return self.model.predict_risk_raw(rows)
        imp = self.imputer.impute(self.model.preprocessor_, rows)
        risks = self.model.predict_risk_raw(imp.raw)
        return np.bincount(imp.row, weights=imp.weight * risks, minlength=len(rows))

    def best(self, grids: list[_Grid], index_sets: list[np.ndarray]):
        """Lowest-cost candidate under the target over the product of ``index_sets``: (indices, cost, risk)."""
        mesh = np.meshgrid(*index_sets, indexing="ij")
        idx = [m.ravel() for m in mesh]
        rows = np.repeat(self.raw, idx[0].size, axis=0)
        cost = np.zeros(idx[0].size)
        for g, i in zip(grids, idx):
            rows[:, g.j] = g.values[i]
            cost += g.costs[i]
        risk = self.risk(rows)
        self.rows += len(rows) * self.k
        ok = np.flatnonzero(risk < self.target)
        if ok.size == 0:
            return None
        # lowest cost; among equal costs the lowest risk
        pick = ok[np.lexsort((risk[ok], np.round(cost[ok], 12)))[0]]
        return [int(i[pick]) for i in idx], float(cost[pick]), float(risk[pick])


def _coarse(grid: _Grid, points: int) -> tuple[np.ndarray, int]:
    n = grid.values.size
    if n <= points:
        return np.arange(n), 1
    stride = max(1, math.ceil((n - 1) / max(points - 1, 1)))
    idx = np.unique(np.concatenate([np.arange(0, n, stride), [n - 1], grid.near]))
    return idx, stride


def _search_combo(scorer: _Scorer, grids: list[_Grid], points: int):
    coarse = [_coarse(g, points) for g in grids]
    found = scorer.best(grids, [c[0] for c in coarse])
    if found is None:
        return None
    strides = [c[1] for c in coarse]
    # Refine around the best coarse point: a box of +-stride at a finer stride, until single steps.
    while any(s > 1 for s in strides):
        index_sets, new_strides = [], []
        for g, best, s in zip(grids, found[0], strides):
            fine = max(1, s // 4)
            n = g.values.size
            box = np.arange(max(0, best - s), min(n - 1, best + s) + 1, fine)
            index_sets.append(np.unique(np.concatenate([box, [best]])))
            new_strides.append(fine)
        better = scorer.best(grids, index_sets)
        if better is not None and (better[1], better[2]) <= (found[1], found[2]):
            found = better
        strides = new_strides
    return found


def counterfactuals(model, values: dict, target: float = 0.20, features: list[str] | None = None, *,
                    max_changes: int = 3, n_alternatives: int = 3, within_training: bool = True,
                    research: bool = False) -> CounterfactualResult:
    """Smallest plausible changes of ``features`` (default: the schema's modifiable ones) that bring the
    patient's risk below ``target``; up to ``n_alternatives`` over different feature sets, cheapest first.
    Each feature moves only in its clinical direction, and only modifiable features may be chosen, unless
    ``research`` (any feature, either direction; the result is marked as research).

    ``values``: the patient (feature name -> clinical value, None = missing). ``within_training``: new
    values stay inside the range seen in training as well as the plausible range.
    """
    started = time.perf_counter()
    if not 0 < target < 1:
        raise PatientError("the target risk must be between 0 and 1")
    pre, schema = model.preprocessor_, model.schema
    check_patient(values, schema, pre)
    names = pre.feature_names
    chosen = default_modifiable(schema) if features is None else list(features)
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise PatientError(f"not features of this model: {', '.join(map(str, unknown))}")
    fixed = [n for n in chosen if not schema[n].actionable]
    if fixed and not research:
        raise PatientError(f"not modifiable in a known clinical direction: {', '.join(map(str, fixed))} "
                           "(only a research search may move them)")
    raw = np.array([[pre.encode_value(j, values.get(f.name)) for j, f in enumerate(pre.features)]])
    scorer = _Scorer(model, raw, target)
    risk = float(scorer.risk(raw)[0])
    result = CounterfactualResult(risk=risk, target=float(target), features=chosen, max_changes=max_changes,
                                  research=research)
    if risk < target:
        result.reason = "already_below"
        return _done(result, started)
    if not chosen:
        result.reason = "no_features"
        return _done(result, started)
    grids = {}
    for name in sorted(chosen, key=names.index):
        j = names.index(name)
        if scorer.missing[j]:
            continue  # not measured: nothing to lower from (the page says which measurement would settle it)
        direction = None if research else schema[name].direction
        grid = _feature_grid(pre, j, float(raw[0, j]), within_training, direction)
        if grid is not None:
            grids[name] = grid
    budget = _COARSE_BUDGET / scorer.k  # each candidate costs k rows when an input is not measured
    found: dict[tuple, tuple] = {}  # feature set -> (indices, cost, risk)
    for size in range(1, min(max_changes, len(grids)) + 1):
        combos = list(itertools.combinations(grids, size))
        points = max(5, int((budget / max(len(combos), 1)) ** (1 / size))) if size > 1 else _MAX_FINE
        for combo in combos:
            lower = sum(grids[n].min_cost for n in combo)
            subsets = [found[s] for r in range(1, size) for s in itertools.combinations(combo, r) if s in found]
            cheapest_subset = min((s[1] for s in subsets), default=math.inf)
            if lower >= _SPARSITY * cheapest_subset:
                continue  # cannot be clearly cheaper than a smaller change already found
            costs = sorted(v[1] for v in found.values())
            if len(costs) >= n_alternatives and lower >= costs[n_alternatives - 1]:
                continue  # cannot enter the answer
            hit = _search_combo(scorer, [grids[n] for n in combo], points)
            if hit is not None and hit[1] < _SPARSITY * cheapest_subset:
                found[combo] = hit
    result.rows_scored = scorer.rows
    selected: list[tuple] = []
    for combo, hit in sorted(found.items(), key=lambda kv: (kv[1][1], kv[1][2], len(kv[0]))):
        if any(set(s).issubset(combo) for s, _ in selected):
            continue  # the same advice as a cheaper one, with more to change
        selected.append((combo, hit))
        if len(selected) >= n_alternatives:
            break
    for combo, (indices, cost, new_risk) in selected:
        new_values = dict(values)
        changes = []
        for name, i in zip(combo, indices):
            g = grids[name]
            new = pre.decode_value(g.j, float(g.values[i]))
            changes.append(Change(feature=name, old=values.get(name), new=new, cost=float(g.costs[i])))
            new_values[name] = new
        result.alternatives.append(Alternative(changes=changes, values=new_values, risk_before=risk,
                                               risk_after=new_risk, distance=cost, target=float(target),
                                               research=research))
    if not result.alternatives:
        result.reason = "unreachable"
    return _done(result, started)


def _done(result: CounterfactualResult, started: float) -> CounterfactualResult:
    result.seconds = time.perf_counter() - started
    return result


# ---- where the model disagrees with the clinic -----------------------------------------------------
@dataclass
class DirectionConflict:
    """A modifiable feature whose clinically sensible change raises this model's average estimate."""
    feature: str
    better: object  # the clinically better value (a code, or a number: the lower/upper quartile in training)
    worse: object
    risk_better: float  # mean estimate over the training background with the feature set to ``better``
    risk_worse: float
    n_train: int

    def sentence(self, schema, lang: str = "en") -> str:
        return conflict_sentence(self, schema, lang)


def direction_conflicts(model) -> list[DirectionConflict]:
    """The actionable features for which this model, on average over its training patients, raises the
    estimate when the feature moves the clinically sensible way (the partial-dependence contrast of
    :func:`core.evaluate.directions.model_directions`, with the clinical direction read from the treatment's:
    lowering a feature is sensible when higher values raise the risk). The what-if search never offers such a
    move (it moves features only in their clinical direction); the page says why the model would have liked
    the other one."""
    schema = model.schema
    actionable = [f.name for f in schema.model_features if f.actionable]
    expected = {n: "increases" if schema[n].direction == "decrease" else "decreases" for n in actionable}
    conflicts = []
    for d in model_directions(model, actionable, expected):
        if not d.contradicts:
            continue
        if schema[d.feature].direction == "decrease":
            better, worse, risk_better, risk_worse = d.low, d.high, d.risk_low, d.risk_high
        else:
            better, worse, risk_better, risk_worse = d.high, d.low, d.risk_high, d.risk_low
        conflicts.append(DirectionConflict(feature=d.feature, better=better, worse=worse, risk_better=risk_better,
                                           risk_worse=risk_worse, n_train=d.n_train))
    return conflicts


def conflict_sentence(conflict: DirectionConflict, schema, lang: str = "en") -> str:
    """'In this model, higher fasting blood sugar lowers the estimate ...: an artefact of N patients, not
    advice.' From the translation table."""
    f = schema[conflict.feature]
    words = {"feature": f.display_label(lang), "feature_lower": _lower_first(f.display_label(lang)),
             "better": f.format_value(conflict.better, lang), "worse": f.format_value(conflict.worse, lang),
             "risk_better": _pct(conflict.risk_better), "risk_worse": _pct(conflict.risk_worse),
             "n": conflict.n_train}
    if f.is_categorical:
        return tr("whatif.conflict_coded", lang, **words)
    # the model's preferred way is the opposite of the clinical one
    higher = tr("whatif.higher", lang) if f.direction == "decrease" else tr("whatif.lower", lang)
    return tr("whatif.conflict_numeric", lang, higher=higher, **words)


def meaning(lang: str = "en", short: bool = False) -> str:
    """What a what-if answer is, for the page and the command line (``short``: the one-page report)."""
    return tr("whatif.meaning_short", lang) if short else tr("whatif.meaning", lang)


# ---- in words ---------------------------------------------------------------------------------------
def _pct(p: float) -> str:
    return f"{p:.0%}"


def _pct_after(after: float, before: float, target: float) -> str:
    """The new risk in whole percent, unless rounding would show it at the target (19.6% as '20%' under
    a 20% target) or at the old risk: then one decimal."""
    text = _pct(after)
    if round(after * 100) >= round(target * 100) or round(after * 100) == round(before * 100):
        text = f"{after:.1%}"
    return text


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _lower_first(text: str) -> str:
    # "Resting blood pressure" reads "resting blood pressure" mid-sentence; "ST depression" keeps its capitals
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _number(feature, value) -> str:
    decimals = 0 if (feature.step or 1) >= 1 else _decimals(feature.step)
    return f"{float(value):.{decimals}f}"


def change_text(change: Change, schema, lang: str = "en") -> str:
    """'resting blood pressure were 125 instead of 160 mmHg' (or the Chinese phrase)."""
    f = schema[change.feature]
    label = f.display_label(lang) if lang == "zh" else _lower_first(f.display_label(lang))  # mid-sentence
    if f.is_coded:
        new = f.format_value(change.new, lang)
        if _missing(change.old):
            return tr("whatif.change_coded_missing", lang, label=label, new=new)
        return tr("whatif.change_coded", lang, label=label, new=new, old=f.format_value(change.old, lang))
    unit = f" {f.unit}" if f.unit else ""
    new = _number(f, change.new)
    if _missing(change.old):
        return tr("whatif.change_number_missing", lang, label=label, new=new, unit=unit)
    return tr("whatif.change_number", lang, label=label, new=new, old=_number(f, change.old), unit=unit)


def sentence(alternative: Alternative, schema, lang: str = "en") -> str:
    """'If resting blood pressure were 125 instead of 160 mmHg and serum cholesterol were 190 instead of
    290 mg/dl: 62% → 18%'."""
    parts = [change_text(c, schema, lang) for c in alternative.changes]
    after = _pct_after(alternative.risk_after, alternative.risk_before, alternative.target)
    risks = f"{_pct(alternative.risk_before)} → {after}"
    changes = parts[-1] if len(parts) == 1 else (
        tr("whatif.join", lang).join(parts[:-1]) + tr("whatif.join_last", lang) + parts[-1])
    text = tr("whatif.sentence", lang, changes=changes, risks=risks)
    if alternative.research:  # a research search's answer is never read as advice
        text = tr("whatif.research_mark", lang) + ("" if lang == "zh" else " ") + text
    return text


def to_json(result: CounterfactualResult, schema, lang: str = "en") -> dict:
    """Plain-JSON form (CLI, report)."""
    def plain(v):
        return None if _missing(v) else (float(v) if isinstance(v, (int, float, np.number)) else v)
    return {
        "risk": result.risk, "target": result.target, "features": result.features, "research": result.research,
        "reason": result.reason, "message": result.message(lang),
        "alternatives": [{
            "changes": [{"feature": c.feature, "old": plain(c.old), "new": plain(c.new), "cost": c.cost}
                        for c in a.changes],
            "risk_before": a.risk_before, "risk_after": a.risk_after, "distance": a.distance,
            "sentence": sentence(a, schema, lang)} for a in result.alternatives],
    }
