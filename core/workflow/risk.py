"""One patient or a table of patients: risk, risk band, checks of the inputs and reasons in words."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.schema import Schema
from core.errors import PatientError
from core.explain.reasons import reasons
from core.explain.shapley import explain, single_thread_blas
from core.model.bands import BandCutoffs, model_bands, risk_band

__all__ = ["BandCutoffs", "risk_band", "check_patient", "patient_risk", "score_table", "PatientRisk",
           "PatientCheck", "sensitivity", "typical_patient", "patient_from_row"]


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
class PatientRisk:
    risk: float
    risk_band: str
    check: PatientCheck
    explanation: object | None = None  # core.explain.Explanation for this one patient
    reasons: list = field(default_factory=list)

    @property
    def explained_risk(self) -> float:
        """What the reasons add up to (base value + SHAP values): the networks' output. It is ``risk``
        except under isotonic recalibration, which cannot be folded into the networks (see _reported_risk)."""
        if self.explanation is None:
            raise ValueError("this risk was computed without reasons")
        return float(self.explanation.output[0])


def patient_risk(model, values: dict, *, with_reasons: bool = True, lang: str = "en",
                 cutoffs: BandCutoffs | None = None, top: int = 3) -> PatientRisk:
    """Risk of one patient from raw clinical values (dict feature name -> value), with SHAP reasons.
    ``cutoffs``: the risk bands (default: the model's own)."""
    schema, pre = model.schema, model.preprocessor_
    check = check_patient(values, schema, pre)
    raw = np.array([[pre.encode_value(j, values.get(f.name)) for j, f in enumerate(pre.features)]])
    if with_reasons:
        expl = explain(pre, model.networks_, raw, model.background_)
        risk = float(_reported_risk(model, raw, expl.output)[0])
        why = reasons(expl, 0, schema, pre, top=top, lang=lang)
    else:
        expl, why = None, []
        risk = float(model.predict_risk_raw(raw)[0])
    band = risk_band(risk, cutoffs or model_bands(model))
    return PatientRisk(risk=risk, risk_band=band, check=check, explanation=expl, reasons=why)


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
    """Score every row of a table: the input's columns, then risk, risk_band and reason_1..reason_top
    (and with ``with_shap`` every feature's SHAP value as ``shap_<feature>``, probability scale).

    Rows keep the input order. The model's feature columns must be present (PatientError otherwise);
    extra columns pass through untouched. ``n_threads`` goes to :func:`core.explain.explain` (a batch
    worker that owns one core passes 1); it changes speed only, never a number. ``precision`` "float32"
    solves the SHAP games in float32 (~1.35x faster, values within 1e-6 of the float64 default).
    """
    pre = model.preprocessor_
    cutoffs = cutoffs or model_bands(model)
    raw = pre.encode(df)
    out = df.copy()
    if not (with_reasons or with_shap):
        # One BLAS thread: these thin products (rows x ~20 @ 20 x 10) gain nothing from a second thread,
        # and on a busy machine the hand-off made a 10k-row table up to 7x slower (bench/run.py).
        with single_thread_blas():
            risk = model.predict_risk_raw(raw)
        out["risk"] = risk
        out["risk_band"] = risk_band(risk, cutoffs)
        return out
    top = top if with_reasons else 0
    risk = np.empty(len(df))
    shap_values = np.empty((len(df), len(pre.features))) if with_shap else None
    texts = [[""] * len(df) for _ in range(top)]
    for start in range(0, len(df), chunk):
        part = raw[start:start + chunk]
        expl = explain(pre, model.networks_, part, model.background_, n_threads=n_threads, precision=precision)
        risk[start:start + len(part)] = _reported_risk(model, part, expl.output)
        if with_shap:
            shap_values[start:start + len(part)] = expl.shap_values
        for i in range(len(part) if top else 0):
            for k, reason in enumerate(reasons(expl, i, model.schema, pre, top=top, lang=lang)):
                texts[k][start + i] = reason.text
    out["risk"] = risk
    out["risk_band"] = risk_band(risk, cutoffs)
    for k in range(top):
        out[f"reason_{k + 1}"] = texts[k]
    if with_shap:
        for j, name in enumerate(pre.feature_names):
            out[f"shap_{name}"] = shap_values[:, j]
    return out


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
    return pd.DataFrame({"value": grid, "risk": model.predict_risk_raw(rows)})


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
