"""Can this risk be trusted? The pieces the Trust page and the patient page put together.

* :func:`model_splits`: the train / validation / test patients a model was trained on, recovered from
  the cohort (``core.model.split`` is seeded and stratified, so the same cohort and configuration give
  the same split) — refused when the cohort is not the one the model learned from.
* :func:`recalibrate`: a copy of the model with core.calibration fitted on the validation split.
* :func:`calibration_report`: calibration before and after, on the test split.
* :func:`patient_uncertainty`: the ensemble's interval for one patient and whether it is wide.
* :func:`ood_check`: is this patient unlike the training patients? Squared Mahalanobis distance of the
  network inputs (standardised measurements, one-hot codes) from the training mean, against the 99th
  percentile of the training patients' own distances; the features that contribute most are named.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import CohortError
from core.evaluate.subgroups import default_columns, subgroup_table
from core.metrics.calibration import calibration_curve_ci, calibration_summary
from core.metrics.decision import decision_curve, useful_range
from core.metrics.intervals import auc_interval
from core.model.bands import model_bands
from core.model.config import split
from core.model.estimator import input_reference
from core.model.recalibration import Calibration, fit_calibration

WIDE_INTERVAL = 0.15  # an interval (10th-90th percentile of members) wider than 15 points is "wide"
INTERVAL = (10.0, 90.0)


@dataclass
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def model_splits(model, cohort, fingerprint: str | None) -> Splits:
    """The positions of the model's train / validation / test patients in ``cohort``.

    ``fingerprint``: the data fingerprint recorded with the model (bundle metadata ``data_fingerprint``).
    CohortError when the cohort is another table (its split would mix training and test patients)."""
    if not fingerprint or fingerprint != cohort.fingerprint:
        raise CohortError("the active cohort is not the table this model was trained on, so its test split "
                          "cannot be recovered; load that cohort, or use external validation for another one")
    train, val, test = split(np.asarray(cohort.y, dtype=float), model.config)
    return Splits(train, val, test)


def uncalibrated_risk_raw(model, raw: np.ndarray) -> np.ndarray:
    """The ensemble's mean risk before any recalibration."""
    X = model.preprocessor_.transform_raw(np.atleast_2d(np.asarray(raw, dtype=np.float64)))
    return np.mean([net.proba(X) for net in model.base_networks_], axis=0)


def recalibrate(model, cohort, splits: Splits, method: str = "auto", seed: int = 0):
    """A copy of ``model`` recalibrated on its validation split (the original is not modified)."""
    df = cohort.df.reset_index(drop=True)
    y = np.asarray(cohort.y, dtype=float)
    if len(splits.val) == 0:
        raise CohortError("the model has no validation split to recalibrate on")
    logits = model.base_logits_raw(model.preprocessor_.encode(df.iloc[splits.val]))
    cal = fit_calibration(logits, y[splits.val], method=method, seed=seed)
    updated = copy.copy(model)
    updated.metadata_ = copy.deepcopy(getattr(model, "metadata_", {}))
    updated.set_calibration(cal)
    return updated


def calibration_report(model, df: pd.DataFrame, y, n_bins: int = 10) -> dict:
    """Calibration of the uncalibrated and of the in-force risks on the same patients (e.g. the test
    split): summaries (slope, intercept, ECE, Brier) and curves with Wilson bands."""
    raw = model.preprocessor_.encode(df)
    y = np.asarray(y, dtype=float)
    before = uncalibrated_risk_raw(model, raw)
    after = model.predict_risk_raw(raw)
    bins = max(2, min(n_bins, len(y) // 10 or 2))  # about 10 patients a bin at least
    return {"method": getattr(model, "calibration_", Calibration()).method,
            "before": calibration_summary(y, before), "after": calibration_summary(y, after),
            "curve_before": calibration_curve_ci(y, before, n_bins=bins),
            "curve_after": calibration_curve_ci(y, after, n_bins=bins),
            "risk_before": before, "risk_after": after, "n_bins": bins}


@dataclass
class Uncertainty:
    risk: float
    low: float
    high: float
    members: int
    wide: bool             # high - low > WIDE_INTERVAL
    crosses_band: bool     # the interval spans a risk-band cut-off
    interval: str = "10th-90th percentile of the ensemble members' risks"


def patient_uncertainty(model, raw: np.ndarray, cutoffs=None) -> Uncertainty:
    """The ensemble's risk for one patient (raw row) with its member interval."""
    cutoffs = cutoffs or model_bands(model)
    risk, low, high = model.predict_interval_raw(np.atleast_2d(raw), *INTERVAL)
    r, lo, hi = float(risk[0]), float(low[0]), float(high[0])
    members = int(getattr(model, "n_members_", 1))
    crosses = any(lo < c <= hi for c in (cutoffs.low, cutoffs.high))
    return Uncertainty(r, lo, hi, members, wide=members > 1 and hi - lo > WIDE_INTERVAL,
                       crosses_band=members > 1 and crosses)


@dataclass
class OODResult:
    distance2: float              # squared Mahalanobis distance of the patient
    threshold: float              # 99th percentile of the training patients'
    unusual: bool
    features: list[str] = field(default_factory=list)  # the features that contribute most, largest first
    share: list[float] = field(default_factory=list)   # their share of the distance


def _reference(model) -> dict:
    ref = getattr(model, "input_reference_", None)
    if ref is None:  # a bundle saved before the reference existed: the stored training background
        ref = input_reference(model.preprocessor_.transform_raw(model.background_))
        model.input_reference_ = ref
    return ref


def ood_check(model, raw: np.ndarray, top: int = 3) -> OODResult:
    """Is one patient (raw row) unlike the training patients? See the module docstring."""
    pre = model.preprocessor_
    ref = _reference(model)
    x = pre.transform_raw(np.atleast_2d(np.asarray(raw, dtype=np.float64)))[0].astype(np.float64)
    mean = np.asarray(ref["mean"])
    precision = np.asarray(ref["precision"])
    d = x - mean
    per_column = d * (precision @ d)  # sums to the squared distance
    d2 = float(per_column.sum())
    per_feature = np.array([per_column[s].sum() for s in pre.slices_])
    threshold = float(ref["d2_99"])
    unusual = d2 > threshold
    names, shares = [], []
    if unusual and d2 > 0:
        order = np.argsort(-per_feature, kind="stable")
        for j in order[:top]:
            if per_feature[j] <= 0.1 * d2 / max(1, len(order)):
                break
            names.append(pre.feature_names[j])
            shares.append(float(per_feature[j] / d2))
    return OODResult(d2, threshold, unusual, names, shares)


__all__ = ["Splits", "model_splits", "uncalibrated_risk_raw", "recalibrate", "calibration_report", "Uncertainty",
           "patient_uncertainty", "OODResult", "ood_check", "WIDE_INTERVAL", "INTERVAL", "trust_summary"]


def trust_summary(model, df_test: pd.DataFrame, y_test, lang: str = "en") -> dict:
    """What the model card reports from the Trust checks, as JSON-ready numbers (no patient rows): test AUC
    with its DeLong interval, calibration before / in force, the decision curve's useful range and net
    benefit at 10/20/30%, and the default subgroups (sex, age bands)."""
    y_test = np.asarray(y_test, dtype=float)
    report = calibration_report(model, df_test, y_test)
    risk = report["risk_after"]
    auc, low, high = auc_interval(y_test, risk)
    curve = decision_curve(y_test, risk, thresholds=[0.1, 0.2, 0.3])
    full = decision_curve(y_test, risk)
    useful = useful_range(full)
    tables = [subgroup_table(df_test, y_test, risk, c, model.schema, lang=lang) for c in default_columns(model.schema)]
    subgroups = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return {"n_test": int(y_test.size), "roc_auc": auc, "auc_low": low, "auc_high": high,
            "calibration_method": report["method"],
            "calibration_before": report["before"], "calibration_after": report["after"],
            "decision": {"useful_from": useful[0] if useful else None, "useful_to": useful[1] if useful else None,
                         "net_benefit": curve[["threshold", "net_benefit", "treat_all"]].to_dict(orient="records")},
            "subgroups": subgroups.to_dict(orient="records"),
            "members": int(getattr(model, "n_members_", 1))}

