"""Does a saved model hold up at another site? External validation on a second cohort with the same schema.

The second cohort is read and validated with the *model's* schema (same columns, codes, plausible ranges
and outcome rule), scored, and judged by the same code as the test split: AUC (DeLong interval), Brier,
calibration-in-the-large and slope, ECE, calibration curve with Wilson bands, and the decision curve.

A model that ranks patients well but whose risks are off on average at the new site (different
prevalence, referral pattern) can be updated by *recalibrating the intercept* (Steyerberg's "update
method 1"): one number added to every member's logit, fitted on the new site's outcomes, leaving the
slope and the ranking untouched. It is saved as a new model version; the original is never changed.
Its performance is never measured on the patients it was fitted on (there, calibration-in-the-large is
0 by construction): :func:`held_out_update` cross-fits it (each site patient scored by a shift fitted
on the other folds), and those are the numbers reported and saved with the updated model.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.cohort import Cohort, cohort_from_frame
from core.data.concepts import normalise_name, propose_mapping, propose_target, vocabulary
from core.data.read import read_table
from core.data.schema import Code, Feature, parse_rule
from core.errors import CohortError, CoreError
from core.i18n import tr
from core.metrics.calibration import calibration_curve_ci, calibration_summary
from core.metrics.decision import decision_curve
from core.metrics.discrimination import binary_metrics
from core.metrics.intervals import auc_interval, interval_fields, metric_intervals
from core.model.meta import as_bundle_meta
from core.model.recalibration import SITE_UPDATE_SOURCE, Calibration

PREVALENCE_GAP = 0.10  # absolute difference from the training prevalence worth a message
MIN_EXTERNAL = 30


@dataclass
class ExternalResult:
    name: str
    n: int
    prevalence: float
    training_prevalence: float | None
    metrics: dict                  # binary_metrics at 0.5
    auc_low: float
    auc_high: float
    calibration: dict              # calibration_summary (slope, intercept, ECE, Brier, means)
    curve: pd.DataFrame            # calibration_curve_ci
    decision: pd.DataFrame         # decision_curve
    # What the user must know, as {"code": ..., values}: prevalence_shift (prevalence, trained, direction),
    # citl (intercept), empty_columns (columns); message_text() says each in English.
    messages: list[dict] = field(default_factory=list)
    problems: list = field(default_factory=list)        # core.data Problems of the file
    y: np.ndarray | None = None
    risk: np.ndarray | None = None
    logits: np.ndarray | None = None  # (members, rows), uncalibrated: what a recalibration is fitted on
    # 95% intervals (core.metrics.metric_intervals: Brier, calibration slope and intercept, the proportions)
    intervals: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The JSON a model card / CLI reports (no patient rows)."""
        return {"name": self.name, "n": self.n, "prevalence": self.prevalence,
                "training_prevalence": self.training_prevalence,
                "roc_auc": self.metrics["roc_auc"], "auc_low": self.auc_low, "auc_high": self.auc_high,
                **{f"{name}_{end}": (self.intervals.get(name) or {}).get(end) for name in
                   ("brier", "calibration_intercept", "calibration_slope") for end in ("low", "high")},
                "brier": self.metrics["brier"], "calibration_intercept": self.calibration["calibration_intercept"],
                "calibration_slope": self.calibration["calibration_slope"], "ece": self.calibration["ece"],
                "mean_risk": self.calibration["mean_risk"], "messages": [message_text(m) for m in self.messages],
                "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


class ExternalFileError(CohortError):
    """A second site's file cannot be used: ``code`` and ``params`` say why, so that the dashboard says it
    in the session's language (:meth:`text`); ``str()`` is the English text."""

    def __init__(self, code: str, **params):
        self.code, self.params = code, params
        super().__init__(self.text("en"))

    def text(self, lang: str = "en") -> str:
        # literal keys: the translation table's coverage test finds every key core uses
        if self.code == "no_outcome":
            return tr("external.no_outcome", lang, **self.params)
        if self.code == "missing_columns":
            return tr("external.missing_columns", lang, **self.params)
        if self.code == "too_few":
            return tr("external.too_few", lang, **self.params)
        return tr("external.one_outcome", lang, **self.params)


def _standard_names(df: pd.DataFrame, schema) -> tuple[pd.DataFrame, list[str]]:
    """The file's columns renamed to the model's where the name differs but the concept and unit are the
    same ('RestingBP' for a model trained on 'trestbps'); a column in another unit than the model's is
    left alone (its values would need converting first), so that it is named as missing."""
    by_name = vocabulary().by_synonym  # a model from the Cleveland schema has no concepts: its names do
    wanted = {}
    for f in schema.features:
        concept = f.concept or getattr(by_name.get(normalise_name(f.name)), "id", None)
        if concept and f.role != "target" and f.name not in df.columns:
            wanted[concept] = f
    if not wanted:
        return df, []
    renames, notes = {}, []
    for m in propose_mapping(df.drop(columns=[c for c in df.columns if c in schema]), vocabulary()):
        feature = wanted.get(m.concept)
        if feature is None or m.column in renames:
            continue
        if (m.unit or None) != (feature.source_unit or None):
            continue
        renames[m.column] = feature.name
        notes.append(f"{m.column} → {feature.name}")
        del wanted[m.concept]
    return df.rename(columns=renames), notes


def _site_outcome(read, schema) -> pd.DataFrame | None:
    """The file with its own outcome column (Statlog's class 1/2, TenYearCHD, num...) put under the model's
    target as 0/1 (its own rule: class == 2, num > 0), or None when it has no recognisable outcome."""
    proposal = propose_target(read.df)
    if proposal is None:
        return None
    column, rule = proposal
    df = read.df.drop(columns=[column])
    df[schema.target] = parse_rule(rule)(read.df[column]).to_numpy()  # missing stays missing
    return df


def external_cohort(model, source, name: str | None = None, missing: str = "impute") -> Cohort:
    """Read a second site's file (path, bytes or file object) with the cohort reader (any layout it reads:
    CSV, TSV, Excel, UCI processed.*.data and Statlog heart.dat) and the model's schema: columns named
    differently for the same concept and unit take the model's names, and a recognised outcome column
    (Statlog class, TenYearCHD...) becomes the model's outcome by its own rule. ExternalFileError names the
    columns when the model's features or the outcome are not in it."""
    read = read_table(source, name=name)
    schema = model.schema
    df = read.df
    if schema.target and schema.target not in df.columns:
        site = _site_outcome(read, schema)
        if site is None:
            raise ExternalFileError("no_outcome", target=schema.target)
        df = site
        # the outcome is 0/1 now: the model's target read as 'present when > 0' whatever its own rule was
        target = schema[schema.target]
        schema = schema.model_copy(deep=True)
        schema.positive_rule = "> 0"
        schema.features = [f if f.name != target.name else Feature(
            name=target.name, role="target", kind="binary", label=target.label, label_zh=target.label_zh,
            codes=[Code(value=0.0, label="no"), Code(value=1.0, label="yes")]) for f in schema.features]
    df, _ = _standard_names(df, schema)
    absent = [f for f in schema.feature_names if f not in df.columns]
    if absent:
        raise ExternalFileError("missing_columns", columns=", ".join(absent),
                                has=", ".join(map(str, df.columns)))
    cohort = cohort_from_frame(df, schema, read.name, missing=missing)
    cohort.read = read
    return cohort


def validate_external(model, cohort: Cohort) -> ExternalResult:
    """Score ``cohort`` with ``model`` and judge the risks against its outcomes."""
    y = np.asarray(cohort.y, dtype=np.float64)
    if len(y) < MIN_EXTERNAL:
        raise ExternalFileError("too_few", minimum=MIN_EXTERNAL, n=len(y))
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() == 0:
        raise ExternalFileError("one_outcome")
    raw = model.preprocessor_.encode(cohort.df)
    risk = model.predict_risk_raw(raw)
    metrics = binary_metrics(y, risk)
    auc, low, high = auc_interval(y, risk)
    cal = calibration_summary(y, risk)
    prevalence = float(y.mean())
    trained = getattr(model, "prevalence_", None)
    messages = []
    if trained is not None and abs(prevalence - trained) >= PREVALENCE_GAP:
        messages.append({"code": "prevalence_shift", "prevalence": prevalence, "trained": float(trained),
                         "direction": "higher" if prevalence > trained else "lower"})
    elif math.isfinite(cal["calibration_intercept"]) and abs(cal["calibration_intercept"]) > 0.5:
        messages.append({"code": "citl", "intercept": cal["calibration_intercept"]})
    empty = [c for c in model.schema.feature_names if cohort.df[c].isna().all()]
    if empty:
        messages.append({"code": "empty_columns", "columns": empty})
    return ExternalResult(name=cohort.name, n=int(y.size), prevalence=prevalence, training_prevalence=trained,
                          metrics=metrics, auc_low=low, auc_high=high, calibration=cal,
                          curve=calibration_curve_ci(y, risk), decision=decision_curve(y, risk),
                          messages=messages, problems=list(cohort.problems), y=y, risk=risk,
                          logits=model.base_logits_raw(raw), intervals=metric_intervals(y, risk, 0.5))


def message_text(message: dict) -> str:
    """One message of ExternalResult.messages in English (the dashboard translates by ``code``)."""
    code = message.get("code")
    if code == "prevalence_shift":
        higher = message["direction"] == "higher"
        return (f"the outcome is {'more' if higher else 'less'} common here ({message['prevalence']:.0%}) than in "
                f"the training patients ({message['trained']:.0%}): expect risks that are "
                f"{'too low' if higher else 'too high'} on average; consider recalibrating the intercept")
    if code == "citl":
        return (f"risks are off on average at this site (calibration-in-the-large {message['intercept']:+.2f}); "
                "consider recalibrating the intercept")
    if code == "empty_columns":
        return ("columns with no values at this site (filled from the training patients): "
                + ", ".join(message["columns"]))
    return str(code)


def _intercept_shift(cal: Calibration, logits: np.ndarray, y: np.ndarray) -> float:
    """The number added to every member's (calibrated) logit that makes the mean risk fit ``y`` best."""
    from scipy.optimize import minimize_scalar
    a, b = (cal.a, cal.b) if cal.method == "platt" else (1.0, 0.0)
    eta = a * np.atleast_2d(logits) + b

    def nll(delta):
        p = np.clip(0.5 * (1 + np.tanh(0.5 * (eta + delta))).mean(axis=0), 1e-12, 1 - 1e-12)
        return float(-np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))

    result = minimize_scalar(nll, bounds=(-10, 10), method="bounded", options={"xatol": 1e-8})
    return float(result.x)


def recalibrate_intercept(model, result: ExternalResult):
    """A copy of ``model`` whose risks are shifted on the logit scale to fit ``result``'s site on average
    (slope and ranking unchanged). The original model is not modified."""
    cal = getattr(model, "calibration_", None) or Calibration()
    if cal.method == "isotonic":
        raise CoreError("this model uses isotonic calibration; an intercept update needs a model with "
                        "Platt or no recalibration")
    delta = _intercept_shift(cal, result.logits, result.y)
    new_cal = Calibration(method="platt", a=cal.a if cal.method == "platt" else 1.0,
                          b=(cal.b if cal.method == "platt" else 0.0) + delta, n=result.n,
                          source=f"{SITE_UPDATE_SOURCE}{result.name}", chosen_by="user")
    updated = copy.copy(model)
    updated.metadata_ = copy.deepcopy(getattr(model, "metadata_", {}))
    updated.set_calibration(new_cal)
    return updated


UPDATE_FOLDS = 5
UPDATE_METHOD = "5-fold cross-fitting"


def held_out_update(model, result: ExternalResult, folds: int = UPDATE_FOLDS, seed: int = 0) -> dict:
    """How the intercept update does on site patients it was not fitted on: the site's patients in
    ``folds`` stratified folds; for each fold the shift is fitted on the other folds and scores this one.
    Returns the pooled out-of-fold metrics: ``metrics`` (binary_metrics at 0.5, with n), ``calibration``
    (calibration_summary), ``auc_low`` / ``auc_high``, ``site``, ``method``, ``n``; ``risk`` (per patient,
    not for saving)."""
    from sklearn.model_selection import StratifiedKFold
    cal = getattr(model, "calibration_", None) or Calibration()
    if cal.method == "isotonic":
        raise CoreError("this model uses isotonic calibration; an intercept update needs a model with "
                        "Platt or no recalibration")
    y = np.asarray(result.y, dtype=np.float64)
    z = np.atleast_2d(result.logits)
    k = int(min(folds, np.bincount(y.astype(int), minlength=2).min()))
    if k < 2:
        raise CohortError("checking the update on held-out patients needs at least 2 site patients with and "
                          "2 without the outcome")
    a, b = (cal.a, cal.b) if cal.method == "platt" else (1.0, 0.0)
    risk = np.empty(y.size)
    for fit_rows, held in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(z.T, y):
        delta = _intercept_shift(cal, z[:, fit_rows], y[fit_rows])
        risk[held] = (0.5 * (1 + np.tanh(0.5 * (a * z[:, held] + b + delta)))).mean(axis=0)
    _, low, high = auc_interval(y, risk)
    method = UPDATE_METHOD if k == folds else f"{k}-fold cross-fitting"
    # The updated model's metrics are saved as its own: each with its 95% interval (or too few patients),
    # as the training split's test metrics are (a site of 200 patients is small).
    metrics = binary_metrics(y, risk)
    intervals = metric_intervals(y, risk, 0.5)
    metrics.update(interval_fields(intervals))
    return {"site": result.name, "method": method, "n": int(y.size), "metrics": metrics,
            "calibration": calibration_summary(y, risk), "intervals": intervals,
            "auc_low": low, "auc_high": high, "risk": risk}


def update_summary(held_out: dict) -> dict:
    """held_out_update's result as JSON-ready numbers (no per-patient risks), labelled as held out."""
    m, c = held_out["metrics"], held_out["calibration"]
    return {"site": held_out["site"], "evaluated_on": f"held-out site patients ({held_out['method']})",
            "method": held_out["method"], "n": held_out["n"], "roc_auc": m["roc_auc"],
            "auc_low": held_out["auc_low"], "auc_high": held_out["auc_high"], "brier": m["brier"],
            **{f"{name}_{end}": m.get(f"{name}_{end}") for name in ("brier", "calibration_intercept",
                                                                    "calibration_slope") for end in ("low", "high")},
            "calibration_intercept": c["calibration_intercept"], "calibration_slope": c["calibration_slope"],
            "ece": c["ece"], "mean_risk": c["mean_risk"], "observed_rate": c["observed_rate"]}


def external_extra(meta, result: ExternalResult, recalibrated: bool = False,
                   held_out: dict | None = None) -> dict:
    """The ``extra`` of ``meta`` (a BundleMeta, or a dict of its shape) with this external validation
    appended to ``external_validations`` (a new dict; ``meta`` is not changed); with ``held_out``
    (held_out_update) also the updated model's held-out site performance (``after_update`` of the entry,
    and ``site_update``: what the updated model's card reports as its metrics)."""
    extra = copy.deepcopy(as_bundle_meta(meta).extra.model_dump(exclude_none=True))
    entry = result.summary()
    entry["recalibrated"] = bool(recalibrated)
    if held_out is not None:
        entry["after_update"] = update_summary(held_out)
        extra["site_update"] = entry["after_update"]
    extra.setdefault("external_validations", []).append(entry)
    return extra


__all__ = [
    "UPDATE_FOLDS",
    "UPDATE_METHOD",
    "ExternalFileError",
    "ExternalResult",
    "external_cohort",
    "external_extra",
    "held_out_update",
    "message_text",
    "recalibrate_intercept",
    "update_summary",
    "validate_external",
]
