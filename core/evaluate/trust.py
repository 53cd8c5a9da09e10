"""Can this risk be trusted? The pieces the Trust page and the patient page put together.

* :func:`model_splits`: the train / validation / test patients a model was trained on, recovered from
  the cohort (``core.model.split`` is seeded and stratified, so the same cohort and configuration give
  the same split) — refused when the cohort is not the one the model learned from.
* :func:`recalibrate`: a copy of the model with core.calibration fitted on cross-fitted (out-of-fold)
  risks of the training split — not the validation split, whose patients chose the early-stopping epoch.
* :func:`calibration_report`: calibration before and after, on the test split.
* :func:`patient_uncertainty`: how much the ensemble's networks disagree on one patient, and whether
  widely (a flag; not a calibrated interval).
* :func:`ood_check`: is this patient unlike the training patients? Squared Mahalanobis distance of the
  network inputs (standardised measurements, one-hot codes) from the training mean, against a threshold
  set out of sample (core.model.estimator.input_reference: cross-fitted distances, so that about 1% of new
  patients like the training ones are flagged); the features that contribute most are named.
"""
from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import CohortError
from core.evaluate.subgroups import default_columns, subgroup_table
from core.metrics.bootstrap import N_BOOT, bootstrap_intervals
from core.metrics.calibration import calibration_curve_ci, calibration_summary
from core.metrics.decision import decision_curve, grid_ends, useful_ranges
from core.metrics.intervals import auc_interval
from core.model.bands import model_bands
from core.model.config import split
from core.model.estimator import OOD_METHOD, input_reference
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


CALIBRATION_FOLDS = 5
CROSS_FITTED = "5-fold cross-fitted risks of the training split"


def cross_fitted_logits(model, df: pd.DataFrame, y, splits: Splits, folds: int = CALIBRATION_FOLDS,
                        seed: int = 0) -> np.ndarray:
    """Out-of-fold output logits of the training patients: the training split in ``folds`` stratified
    folds; for each, a network of the model's configuration (one member) trained on the other folds,
    stopping early on the validation split as the model did, scores the held-out fold. Each training
    patient's logit comes from a network that never saw them; the validation patients, who chose the
    training epoch, are not scored, so a calibration fitted on these is fitted on neither."""
    from sklearn.model_selection import StratifiedKFold

    from core.model.estimator import RiskModel
    y = np.asarray(y, dtype=float)
    train, val = np.asarray(splits.train), np.asarray(splits.val)
    y_train = y[train]
    k = int(min(folds, np.bincount(y_train.astype(int), minlength=2).min()))
    if k < 2:
        raise CohortError("calibration needs at least 2 training patients with and 2 without the outcome")
    config = model.config.model_copy(update={"members": 1})
    has_val = len(val) > 0
    out = np.empty(len(train))
    for fit_rows, held in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(train, y_train):
        net = RiskModel(model.schema, config).fit(
            df.iloc[train[fit_rows]], y_train[fit_rows],
            df.iloc[val] if has_val else None, y[val] if has_val else None)
        out[held] = net.base_logits_raw(net.preprocessor_.encode(df.iloc[train[held]]))[0]
    return out


def recalibrate(model, cohort, splits: Splits, method: str = "auto", seed: int = 0):
    """A copy of ``model`` recalibrated on cross-fitted risks of its training split (the original is not
    modified). Not on the validation split: its patients chose the early-stopping epoch, so their risks
    are already tuned to them; not on the test split, which judges the result. The map is fitted on one
    network's out-of-fold logits and applied to every member of the model (see cross_fitted_logits)."""
    df = cohort.df.reset_index(drop=True)
    y = np.asarray(cohort.y, dtype=float)
    if len(splits.train) == 0:
        raise CohortError("the model has no training split to recalibrate on")
    logits = cross_fitted_logits(model, df, y, splits, seed=seed)
    cal = fit_calibration(logits[None, :], y[splits.train], method=method, seed=seed, source=CROSS_FITTED)
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
    crosses_band: bool     # the disagreement spans a risk-band cut-off
    # What low-high is: how much the networks disagree, not a confidence interval whose coverage has
    # been checked (bootstrap members trained on one split are not calibrated to outcome rates).
    kind: str = "disagreement"
    interval: str = ("10th-90th percentile of the ensemble members' risks (their disagreement; "
                     "not a calibrated interval)")

    @property
    def alert(self) -> str | None:
        """What the patient page raises: "warning" when the disagreement spans a band cut-off and is wide,
        "info" when it spans a cut-off, None otherwise. Width alone raises nothing: on Cleveland (5 members,
        seeds 0-2) a range wider than WIDE_INTERVAL held for 16-31 of 46 test patients, so a warning on width
        fired for a third to two thirds of patients (alarm fatigue), while a range inside one band leaves a
        band-based decision unchanged; the range itself is shown for every patient."""
        if not self.crosses_band:
            return None
        return "warning" if self.wide else "info"


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
    threshold: float              # flags about 1% of new patients like the training ones (out of sample)
    unusual: bool
    features: list[str] = field(default_factory=list)  # the features that contribute most, largest first
    share: list[float] = field(default_factory=list)   # their share of the distance


_REBUILT_REFERENCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reference(model) -> dict:
    """The model's out-of-distribution reference; for a bundle saved before it existed, rebuilt from the
    stored training background and kept here (never written onto the model: a loaded bundle is shared
    read-only between sessions)."""
    ref = getattr(model, "input_reference_", None)
    if ref is None or ref.get("method") != OOD_METHOD:
        # A bundle saved before the reference existed, or with the in-sample threshold (too low: it
        # flagged 2-3% of new patients, not 1%): rebuilt from the stored training background rows.
        stored, ref = ref, _REBUILT_REFERENCES.get(model)
        if ref is None:
            ref = input_reference(model.preprocessor_.transform_raw(model.background_))
            if not math.isfinite(ref["d2_99"]) and stored is not None:
                ref = stored  # too few background rows to rebuild from (cluster centres): keep what it has
            _REBUILT_REFERENCES[model] = ref
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


__all__ = ["Splits", "model_splits", "uncalibrated_risk_raw", "recalibrate", "cross_fitted_logits", "CROSS_FITTED",
           "calibration_report", "Uncertainty", "patient_uncertainty", "OODResult", "ood_check", "WIDE_INTERVAL",
           "INTERVAL", "trust_summary"]


def trust_summary(model, df_test: pd.DataFrame, y_test, lang: str = "en") -> dict:
    """What the model card reports from the Trust checks, as JSON-ready numbers (no patient rows): test AUC
    with its interval; calibration before / in force, the in-force slope, intercept and Brier with
    bootstrap 95% intervals; the decision curve's useful ranges (as they are, with the thresholds examined)
    and net benefit at 10/20/30% with bootstrap intervals; the default subgroups (sex, age bands)."""
    y_test = np.asarray(y_test, dtype=float)
    report = calibration_report(model, df_test, y_test)
    risk = report["risk_after"]
    auc, low, high = auc_interval(y_test, risk)
    points = (0.1, 0.2, 0.3)
    curve = decision_curve(y_test, risk, thresholds=list(points))
    full = decision_curve(y_test, risk)
    first, last = grid_ends(full)
    boot = bootstrap_intervals(y_test, risk, thresholds=points)
    nb_rows = curve[["threshold", "net_benefit", "treat_all"]].to_dict(orient="records")
    for row in nb_rows:
        b = boot[f"net_benefit@{row['threshold']:g}"]
        row["low"], row["high"] = b["low"], b["high"]
    tables = [subgroup_table(df_test, y_test, risk, c, model.schema, lang=lang) for c in default_columns(model.schema)]
    subgroups = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return {"n_test": int(y_test.size), "roc_auc": auc, "auc_low": low, "auc_high": high,
            "calibration_method": report["method"],
            "calibration_before": report["before"], "calibration_after": report["after"],
            "intervals": {k: {"low": boot[k]["low"], "high": boot[k]["high"]}
                          for k in ("calibration_slope", "calibration_intercept", "brier")},
            "interval_method": f"bootstrap, {N_BOOT} resamples of the test patients, 2.5th-97.5th percentile",
            "decision": {"useful_ranges": useful_ranges(full), "thresholds_from": first, "thresholds_to": last,
                         "net_benefit": nb_rows},
            "subgroups": subgroups.to_dict(orient="records"),
            "members": int(getattr(model, "n_members_", 1))}

