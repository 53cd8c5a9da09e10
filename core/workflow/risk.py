"""One patient or a table of patients: risk, risk band, checks of the inputs and reasons in words.

Missing inputs (issue 14.2). A value that was not measured is never replaced by one best-case value and
shown as a reason. The patient's risk is the mean risk over the conditional imputations of what is
missing (core.model.imputation: the values of the k most similar training patients, each weighing 1/k),
reported with the range over them (5th-95th weighted percentile); the SHAP values are the same weighted
mean of each imputation's SHAP values, so they still add up to the reported risk; the missing features
are "not measured" with their share of the uncertainty, never a reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.schema import Schema
from core.errors import PatientError
from core.explain.explanation import Explanation
from core.explain.reasons import reasons
from core.explain.shapley import explain, single_thread_blas
from core.i18n import tr
from core.model.bands import BandCutoffs, model_bands, risk_band
from core.model.imputation import ConditionalImputer, Imputations, weighted_range

__all__ = ["BandCutoffs", "risk_band", "check_patient", "patient_risk", "score_table", "PatientRisk",
           "PatientCheck", "sensitivity", "typical_patient", "patient_from_row", "MissingRange", "NotMeasured",
           "conditional_imputer", "missing_ranges", "percent_range", "pooled_member_risks", "explain_rows", "RANGE_ALPHA",
           "risk_of_rows"]

RANGE_ALPHA = 0.05  # the range of a risk with missing inputs: 5th to 95th weighted percentile


def percent_range(low: float, high: float, decimals: int = 0) -> tuple[str, str] | None:
    """The ends of a risk range as percentages with enough decimals (up to 2 more) that they differ on
    screen ("31%–31%" reads as a zero-width interval); None when the range has no width (every plausible
    value gives the same risk: say that in words, not as an interval)."""
    if not high - low > 1e-9:
        return None
    for d in range(decimals, decimals + 3):
        a, b = f"{low:.{d}%}", f"{high:.{d}%}"
        if a != b:
            break
    return a, b


@dataclass
class PatientCheck:
    """What the inputs say before the risk is read: values outside the training data (extrapolation)."""
    extrapolated: list[str] = field(default_factory=list)  # feature names outside the range seen in training
    missing: list[str] = field(default_factory=list)        # features left empty (imputed like in training)


def check_patient(values: dict, schema: Schema, preprocessor) -> PatientCheck:
    """Reject a value outside the schema's plausible range (PatientError naming the rule); flag values
    outside the range seen in training (accepted, with an extrapolation warning)."""
    check = PatientCheck()
    problems = []
    for j, f in enumerate(preprocessor.features):
        value = values.get(f.name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            check.missing.append(f.name)
            continue
        if f.is_measurement:
            try:
                number = float(value)
            except (TypeError, ValueError):
                problems.append(f"{f.name}: not a number")
                continue
            if not math.isfinite(number):
                problems.append(f"{f.name}: not a finite number")
                continue
            if (f.min is not None and number < f.min) or (f.max is not None and number > f.max):
                problems.append(f"{f.name}: {_outside_text(f)}")
                continue
            lo, hi = preprocessor.raw_min_[j], preprocessor.raw_max_[j]
            if not (math.isnan(lo) or lo <= number <= hi):
                check.extrapolated.append(f.name)
        else:
            if preprocessor.encode_value(j, value) < 0:
                known = ", ".join(str(c) for c in preprocessor.categories_[f.name])
                problems.append(f"{f.name}: code not known to the model (known: {known})")
    if problems:
        raise PatientError("; ".join(problems))
    return check


def _outside_text(f) -> str:
    """'outside the plausible range 80–200 mmHg'; a range the schema editor left open on one side reads as
    its one bound."""
    unit = f" {f.unit}" if f.unit else ""
    if f.min is not None and f.max is not None:
        return f"outside the plausible range {f.min:g}–{f.max:g}{unit}"
    if f.min is not None:
        return f"below the plausible minimum {f.min:g}{unit}"
    return f"above the plausible maximum {f.max:g}{unit}"


@dataclass
class MissingRange:
    """What a patient's missing inputs do to the risk: the risk over their plausible values."""
    features: list[str]  # the inputs not measured, schema order
    low: float  # 5th weighted percentile of the risk over the imputations
    high: float  # 95th
    share: dict[str, float]  # each missing input's share of the uncertainty (sums to 1)
    settles_most: str  # the missing input whose measurement would narrow the estimate most
    values: dict[str, list[tuple[object, float]]]  # per missing input: (clinical value, weight), most weight first
    imputations: np.ndarray = field(repr=False, default=None)  # (m, p) distinct imputed raw rows
    weights: np.ndarray = field(repr=False, default=None)  # (m,) their weights (sum 1)
    risks: np.ndarray = field(repr=False, default=None)  # (m,) the risk of each


@dataclass
class NotMeasured:
    """A missing input in the waterfall: its mean SHAP value over the imputations (so the bars still add up
    to the risk) and its share of the uncertainty. Never a reason."""
    feature: str
    label: str
    shap: float
    share: float
    text: str  # 'Major vessels coloured by fluoroscopy: not measured'


@dataclass
class PatientRisk:
    risk: float
    risk_band: str
    check: PatientCheck
    explanation: object | None = None  # core.explain.Explanation for this one patient
    reasons: list = field(default_factory=list)  # measured features only
    missing: MissingRange | None = None  # set when an input was not measured
    not_measured: list = field(default_factory=list)  # NotMeasured, largest share first

    @property
    def risk_low(self) -> float | None:
        return None if self.missing is None else self.missing.low

    @property
    def risk_high(self) -> float | None:
        return None if self.missing is None else self.missing.high

    @property
    def explained_risk(self) -> float:
        """What the reasons add up to (base value + SHAP values): the networks' output. It is ``risk``
        except under isotonic recalibration, which cannot be folded into the networks (see _reported_risk)."""
        if self.explanation is None:
            raise ValueError("this risk was computed without reasons")
        return float(self.explanation.output[0])


def patient_risk(model, values: dict, *, with_reasons: bool = True, lang: str = "en",
                 cutoffs: BandCutoffs | None = None, top: int = 3) -> PatientRisk:
    """Risk of one patient from raw clinical values (dict feature name -> value; None = not measured),
    with SHAP reasons. ``cutoffs``: the risk bands (default: the model's own). With an input not measured:
    the mean risk over its conditional imputations, the range (``missing``) and the missing inputs as
    ``not_measured`` (see the module docstring)."""
    schema, pre = model.schema, model.preprocessor_
    check = check_patient(values, schema, pre)
    raw = np.array([[pre.encode_value(j, values.get(f.name)) for j, f in enumerate(pre.features)]])
    imputer = conditional_imputer(model)
    if np.isnan(raw).any() and imputer is not None:
        return _patient_risk_missing(model, raw, imputer, check, with_reasons, lang, cutoffs, top)
    if with_reasons:
        expl = explain(pre, model.networks_, raw, model.background_,
                   background_weights=getattr(model, "background_weights_", None))
        risk = float(_reported_risk(model, raw, expl.output)[0])
        why = reasons(expl, 0, schema, pre, top=top, lang=lang)
    else:
        expl, why = None, []
        risk = float(model.predict_risk_raw(raw)[0])
    band = risk_band(risk, cutoffs or model_bands(model))
    return PatientRisk(risk=risk, risk_band=band, check=check, explanation=expl, reasons=why)


def _patient_risk_missing(model, raw, imputer, check, with_reasons, lang, cutoffs, top) -> PatientRisk:
    schema, pre = model.schema, model.preprocessor_
    imp = _collapse(imputer.impute(pre, raw))
    expl, why, not_measured = None, [], []
    if with_reasons:
        per = explain(pre, model.networks_, imp.raw, model.background_,
                      background_weights=getattr(model, "background_weights_", None))
        risks = _reported_risk(model, imp.raw, per.output)
        expl = Explanation(shap_values=(imp.weight @ per.shap_values)[None, :], base_value=per.base_value,
                           output=np.array([imp.weight @ per.output]), feature_names=per.feature_names,
                           raw=raw.copy(), method=per.method, background_size=per.background_size,
                           n_permutations=per.n_permutations)
        why = reasons(expl, 0, schema, pre, top=top, lang=lang)  # a missing input is never among them
    else:
        risks = model.predict_risk_raw(imp.raw)
    risk = float(imp.weight @ risks)
    info = _missing_range(pre, raw[0], imp.raw, imp.weight, risks)
    if expl is not None:
        for name in sorted(info.features, key=lambda n: -info.share[n]):
            j = pre.feature_names.index(name)
            label = schema[name].display_label(lang)
            not_measured.append(NotMeasured(feature=name, label=label, shap=float(expl.shap_values[0, j]),
                                            share=info.share[name], text=tr("reason.not_measured", lang, label=label)))
    return PatientRisk(risk=risk, risk_band=risk_band(risk, cutoffs or model_bands(model)), check=check,
                       explanation=expl, reasons=why, missing=info, not_measured=not_measured)


def conditional_imputer(model) -> ConditionalImputer | None:
    """The model's conditional imputer; for a bundle saved before it existed, one on the model's SHAP
    background rows (a sample of its training split, already in the bundle). None if neither has donors."""
    imputer = getattr(model.preprocessor_, "imputer_", None)
    if imputer is not None and imputer.usable:
        return imputer
    cached = getattr(model, "_background_imputer", None)
    if cached is None:
        background = getattr(model, "background_", None)
        cached = ConditionalImputer(np.zeros((0, len(model.preprocessor_.features))) if background is None
                                    else background)
        model._background_imputer = cached
    return cached if cached.usable else None


def _collapse(imp: Imputations) -> Imputations:
    """Identical imputations of one patient merged (their weights added): a coded input missing gives a
    few distinct rows, not k, and SHAP is computed once per distinct row."""
    if imp.row.size == 0:
        return imp
    keyed = np.column_stack([imp.row.astype(np.float64), imp.raw])
    unique, inverse = np.unique(keyed, axis=0, return_inverse=True)
    weight = np.bincount(inverse.reshape(-1), weights=imp.weight, minlength=len(unique))
    return Imputations(unique[:, 0].astype(np.int64), unique[:, 1:], weight)


def _missing_range(pre, patient_raw: np.ndarray, imputed: np.ndarray, weights: np.ndarray,
                   risks: np.ndarray) -> MissingRange:
    """Range, shares and distribution for one patient from its (distinct) imputations."""
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    risks = np.asarray(risks, dtype=np.float64)
    low, high = weighted_range(risks, weights, RANGE_ALPHA)
    missing = [j for j in range(len(pre.features)) if np.isnan(patient_raw[j])]
    names = [pre.feature_names[j] for j in missing]
    mean = float(weights @ risks)
    # Share of the uncertainty: the first-order part of the variance of the risk over the imputations,
    # Var(E[risk | that input]) — how much of it measuring that input alone would remove on average.
    effect = {}
    for j, name in zip(missing, names):
        groups = _groups(imputed[:, j], weights)
        effect[name] = sum(float(weights[g].sum()) * (float(weights[g] @ risks[g] / weights[g].sum()) - mean) ** 2
                           for g in groups)
    total = sum(effect.values())
    share = {n: (effect[n] / total if total > 0 else 1.0 / len(names)) for n in names}
    settles = max(names, key=lambda n: (share[n], -names.index(n)))
    values = {}
    for j, name in zip(missing, names):
        column = imputed[:, j]
        distinct = np.unique(column)
        weight_of = [(pre.decode_value(j, v), float(weights[column == v].sum())) for v in distinct]
        values[name] = sorted(weight_of, key=lambda vw: -vw[1])
    return MissingRange(features=names, low=low, high=high, share=share, settles_most=settles, values=values,
                        imputations=imputed, weights=weights, risks=risks)


def _groups(column: np.ndarray, weights: np.ndarray, max_groups: int = 4) -> list[np.ndarray]:
    """Imputations grouped by the value of one input: each code its own group; a measurement with more than
    ``max_groups`` values in equal-weight bins (one group per donor would make every input look decisive)."""
    distinct = np.unique(column)
    if len(distinct) <= max_groups:
        return [np.flatnonzero(column == v) for v in distinct]
    order = np.argsort(column, kind="stable")
    cum = np.cumsum(weights[order]) / weights.sum()
    bin_of = np.minimum((cum * max_groups - 1e-9).astype(int), max_groups - 1)
    return [order[bin_of == b] for b in range(max_groups) if (bin_of == b).any()]


def _reported_risk(model, raw: np.ndarray, explained: np.ndarray) -> np.ndarray:
    """The risk to report. SHAP explains the networks' output; with Platt recalibration that output is
    the calibrated risk (folded into the last layer). An isotonic map cannot be folded in: then the risk
    reported is the calibrated one and the reasons explain the uncalibrated network output (the pages say so)."""
    calibration = getattr(model, "calibration_", None)
    if calibration is not None and not calibration.folds_into_networks:
        return model.predict_risk_raw(raw)
    return explained



def score_table(model, df: pd.DataFrame, *, with_reasons: bool = True, top: int = 3, lang: str = "en",
                cutoffs: BandCutoffs | None = None, chunk: int = 2000, with_shap: bool = False,
                n_threads: int | None = None, precision: str = "float64") -> pd.DataFrame:
    """Score every row of a table: the input's columns, then risk, risk_band, risk_low, risk_high, missing
    and reason_1..reason_top (and with ``with_shap`` every feature's SHAP value as ``shap_<feature>``,
    probability scale).

    Rows keep the input order. The model's feature columns must be present (PatientError otherwise);
    extra columns pass through untouched. ``n_threads`` goes to :func:`core.explain.explain` (a batch
    worker that owns one core passes 1); it changes speed only, never a number. ``precision`` "float32"
    solves the SHAP games in float32 (~1.35x faster, values within 1e-6 of the float64 default). A row
    with inputs not measured gets the mean risk over their conditional imputations, its range in
    risk_low..risk_high and the inputs' names in ``missing`` (comma-separated; its SHAP values are the
    same weighted mean); a complete row has no range and an empty ``missing``. A missing input is never
    a reason.
    """
    pre = model.preprocessor_
    cutoffs = cutoffs or model_bands(model)
    raw = pre.encode(df)
    out = df.copy()
    explained = with_reasons or with_shap
    top = top if with_reasons else 0
    risk, low, high = np.empty(len(df)), np.empty(len(df)), np.empty(len(df))
    shap_values = np.empty((len(df), len(pre.features))) if with_shap else None
    texts = [[""] * len(df) for _ in range(top)]
    # One BLAS thread: these thin products (rows x ~20 @ 20 x 10) gain nothing from a second thread,
    # and on a busy machine the hand-off made a 10k-row table up to 7x slower (bench/run.py).
    with single_thread_blas():
        for start in range(0, len(df), chunk if explained else max(len(df), 1)):
            part = raw[start:start + chunk] if explained else raw
            # one imputation per row gives its risk and its range (imputing is the slow part for many rows)
            pooled = _pooled_rows(model, part, explained, n_threads, precision, ranges=True)
            risk[start:start + len(part)], expl = pooled.risk, pooled.explanation
            low[start:start + len(part)], high[start:start + len(part)] = pooled.low, pooled.high
            if with_shap:
                shap_values[start:start + len(part)] = expl.shap_values
            for i in range(len(part) if top else 0):
                for k, reason in enumerate(reasons(expl, i, model.schema, pre, top=top, lang=lang)):
                    texts[k][start + i] = reason.text
    out["risk"] = risk
    out["risk_band"] = risk_band(risk, cutoffs)
    out["risk_low"], out["risk_high"] = low, high
    names = np.asarray(pre.feature_names, dtype=object)
    out["missing"] = [", ".join(names[row]) for row in np.isnan(raw)] if len(df) else []
    for k in range(top):
        out[f"reason_{k + 1}"] = texts[k]
    if with_shap:
        for j, name in enumerate(pre.feature_names):
            out[f"shap_{name}"] = shap_values[:, j]
    return out


@dataclass
class _Pooled:
    risk: np.ndarray
    explanation: Explanation | None
    low: np.ndarray | None = None   # with ranges: missing_ranges' risk_low/risk_high (NaN for complete rows)
    high: np.ndarray | None = None


def _risk_of_rows(model, raw: np.ndarray, with_reasons: bool, n_threads: int | None = None,
                  precision: str = "float64"):
    """(risk, pooled Explanation or None) of the rows of a raw matrix; rows with missing inputs are the mean
    over their conditional imputations, and their SHAP values the same weighted mean (still additive)."""
    pooled = _pooled_rows(model, raw, with_reasons, n_threads, precision)
    return pooled.risk, pooled.explanation


def _pooled_rows(model, raw: np.ndarray, with_reasons: bool, n_threads: int | None = None,
                 precision: str = "float64", ranges: bool = False) -> _Pooled:
    """As _risk_of_rows; with ``ranges`` also each row's range over its imputations (missing_ranges' numbers:
    the networks' risk of each distinct imputation, weighted 5th-95th percentile), from the same imputations."""
    pre = model.preprocessor_
    holes = np.isnan(raw).any(axis=1)
    imputer = conditional_imputer(model) if holes.any() else None
    whole = raw if imputer is None else raw[~holes]
    imp = _collapse(imputer.impute(pre, raw)) if imputer is not None else None
    low, high = (np.full(len(raw), np.nan), np.full(len(raw), np.nan)) if ranges else (None, None)
    imputed_risk = model.predict_risk_raw(imp.raw) if imp is not None and (ranges or not with_reasons) else None
    if ranges and imp is not None:
        _fill_ranges(imp, imputed_risk, low, high)
    if not with_reasons:
        if imputer is None:
            return _Pooled(model.predict_risk_raw(raw), None, low, high)
        risk = np.empty(len(raw))
        risk[~holes] = model.predict_risk_raw(whole) if len(whole) else []
        pooled = np.bincount(imp.row, weights=imp.weight * imputed_risk, minlength=len(raw))
        risk[holes] = pooled[holes]
        return _Pooled(risk, None, low, high)
    both = whole if imp is None else np.vstack([whole, imp.raw])
    per = explain(pre, model.networks_, both, model.background_, n_threads=n_threads, precision=precision,
                  background_weights=getattr(model, "background_weights_", None))
    reported = _reported_risk(model, both, per.output)
    if imp is None:
        return _Pooled(reported, per, low, high)
    n_whole = len(whole)
    shap = np.zeros((len(raw), per.shap_values.shape[1]))
    output = np.zeros(len(raw))
    risk = np.zeros(len(raw))
    shap[~holes], output[~holes], risk[~holes] = per.shap_values[:n_whole], per.output[:n_whole], reported[:n_whole]
    np.add.at(shap, imp.row, imp.weight[:, None] * per.shap_values[n_whole:])
    np.add.at(output, imp.row, imp.weight * per.output[n_whole:])
    np.add.at(risk, imp.row, imp.weight * reported[n_whole:])
    expl = Explanation(shap_values=shap, base_value=per.base_value, output=output, feature_names=per.feature_names,
                       raw=raw.copy(), method=per.method, background_size=per.background_size,
                       n_permutations=per.n_permutations)
    return _Pooled(risk, expl, low, high)


def _fill_ranges(imp: Imputations, risks: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    """low/high of each imputed row: the weighted 5th-95th percentile of its imputations' risks (``imp.row``
    ascending, as ConditionalImputer.impute and _collapse give it). Merged identical imputations give the
    same percentiles as unmerged ones: the rule depends only on each value's total weight."""
    bounds = np.flatnonzero(np.r_[True, imp.row[1:] != imp.row[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        low[imp.row[a]], high[imp.row[a]] = weighted_range(risks[a:b], imp.weight[a:b], RANGE_ALPHA)


def risk_of_rows(model, raw: np.ndarray) -> np.ndarray:
    """The reported risk of every row of a raw matrix: a row with inputs not measured is the mean over their
    conditional imputations (as patient_risk and score_table give it), never the risk at one filled-in value."""
    with single_thread_blas():
        return _risk_of_rows(model, np.atleast_2d(np.asarray(raw, dtype=np.float64)), False)[0]


def explain_rows(model, raw: np.ndarray) -> Explanation:
    """SHAP values of the rows of a raw matrix as the reasons use them: a row with inputs not measured gets
    the weighted mean over its conditional imputations (output: their mean risk; still additive). ``raw``
    keeps NaN where an input was not measured."""
    with single_thread_blas():
        return _risk_of_rows(model, np.atleast_2d(np.asarray(raw, dtype=np.float64)), True)[1]


def missing_ranges(model, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(risk_low, risk_high) of every row of a raw matrix: the 5th-95th weighted percentile of its risk over
    the conditional imputations of its missing inputs; NaN for a row with nothing missing."""
    raw = np.atleast_2d(raw)
    low, high = np.full(len(raw), np.nan), np.full(len(raw), np.nan)
    imputer = conditional_imputer(model)
    if imputer is None or not np.isnan(raw).any():
        return low, high
    imp = imputer.impute(model.preprocessor_, raw)
    _fill_ranges(imp, model.predict_risk_raw(imp.raw), low, high)
    return low, high


def pooled_member_risks(model, raw: np.ndarray) -> np.ndarray:
    """(members, rows): each ensemble member's risk of each row, a row with missing inputs as the weighted
    mean over its conditional imputations (as its reported risk is), for the ensemble's interval."""
    raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
    members = model.member_risks_raw(raw)
    imputer = conditional_imputer(model)
    holes = np.isnan(raw).any(axis=1)
    if imputer is None or not holes.any():
        return members
    imp = imputer.impute(model.preprocessor_, raw)
    per = model.member_risks_raw(imp.raw)
    pooled = np.stack([np.bincount(imp.row, weights=imp.weight * m, minlength=len(raw)) for m in per])
    members[:, holes] = pooled[:, holes]
    return members



def sensitivity(model, values: dict, feature: str, n: int = 60) -> pd.DataFrame:
    """The patient's risk as one feature moves across its plausible range, the others held fixed.

    Returns DataFrame(value, risk) with ``value`` in the model's units: ``n`` evenly spaced values of a
    measurement (the schema's plausible range, else the range seen in training), every whole step of a
    count or grade, every code of a coded feature. One vectorised numpy pass (no SHAP, no Keras).
    """
    pre = model.preprocessor_
    names = pre.feature_names
    if feature not in names:
        raise PatientError(f"{feature}: not a feature of this model")
    j = names.index(feature)
    f = pre.features[j]
    check_patient(values, model.schema, pre)
    if f.is_categorical:
        grid = list(pre.categories_[f.name])
        column = np.arange(len(grid), dtype=float)
    else:
        lo = f.min if f.min is not None else pre.raw_min_[j]
        hi = f.max if f.max is not None else pre.raw_max_[j]
        if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
            raise PatientError(f"{feature}: no range is known to vary it over")
        step = f.step or 0.0
        if f.kind == "ordinal" and step >= 1 and (hi - lo) / step + 1 <= max(n, 2):
            column = np.arange(lo, hi + step / 2, step, dtype=float)
        else:
            column = np.linspace(lo, hi, max(int(n), 2))
        grid = column.tolist()
    raw = np.array([pre.encode_value(k, values.get(g.name)) for k, g in enumerate(pre.features)], dtype=float)
    rows = np.tile(raw, (len(column), 1))
    rows[:, j] = column
    # Other inputs not measured: at each value, the mean risk over their conditional imputations given that
    # value (the patient's estimate there, as patient_risk gives it), never the risk at one filled-in value.
    risk, _ = _risk_of_rows(model, rows, False)
    return pd.DataFrame({"value": grid, "risk": risk})


def typical_patient(model, df: pd.DataFrame | None = None) -> dict:
    """A typical patient for a what-if form: per feature the cohort's median (a measurement, rounded to
    its input step) or most frequent code; the training split's values (the imputation fill) where the
    cohort has no such column or only missing values."""
    pre = model.preprocessor_
    out = {}
    for j, f in enumerate(pre.features):
        value = None
        if df is not None and f.name in df.columns:
            col = df[f.name].dropna()
            if f.is_categorical:
                known = [v for v in col if pre.encode_value(j, v) >= 0]
                if known:
                    value = pd.Series(known).mode().iloc[0]
            else:
                numbers = pd.to_numeric(col, errors="coerce").dropna()
                value = float(np.median(numbers)) if len(numbers) else None
                if value is not None and f.step:
                    # to the form's resolution: whole steps, or the step's decimals (0.1 mm -> 1 decimal)
                    decimals = max(0, -math.floor(math.log10(f.step))) if f.step < 1 else None
                    value = float(np.round(value, decimals)) if decimals is not None else \
                        float(np.round(value / f.step) * f.step)
        if value is None:
            value = pre.decode_value(j, pre.fill_[j])
        out[f.name] = value
    return out


def patient_from_row(model, df: pd.DataFrame, position: int) -> dict:
    """One cohort row (0-based position) as the model's feature values; missing values are None."""
    if not 0 <= position < len(df):
        raise PatientError(f"row {position + 1} is not in the cohort (it has {len(df)} rows)")
    row = df.iloc[position]
    out = {}
    for f in model.preprocessor_.features:
        if f.name not in df.columns:
            raise PatientError(f"the cohort has no column {f.name!r} that the model needs")
        value = row[f.name]
        out[f.name] = None if pd.isna(value) else (float(value) if isinstance(value, (int, float, np.number)) else value)
    return out

