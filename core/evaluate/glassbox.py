"""A glass-box second opinion: logistic regression on the same training split, read as odds ratios.

The design is core.evaluate.LogisticBaseline's (median / most-frequent imputation and standardisation
fitted on the training split), with each coded feature reference-coded (its first code is the reference,
e.g. female, typical angina) so every coefficient is an odds ratio against something a clinician can
name: per one standard deviation of a measurement, or this code versus the reference. The coefficients
are an *unpenalised* maximum-likelihood fit (Newton-Raphson), and their 95% intervals come from the
inverse of the Hessian (observed information) at the optimum: exp(beta +- 1.96 se). When the training
patients separate perfectly on some feature the unpenalised estimate is infinite; then the penalised
baseline's coefficients are shown without intervals (``penalised`` = True).

Per patient, a feature's logistic contribution is its coefficients times (patient - training mean) on
the design, in log-odds: the logistic analogue of a SHAP value, so the two models' reasons can be set
side by side. Features where the two disagree in direction, or rank very differently, are flagged.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.data.schema import Schema, same_value
from core.errors import CohortError
from core.evaluate.cv import LogisticBaseline
from core.explain.shapley import explain
from core.i18n import tr
from core.metrics.discrimination import logistic_fit
from core.metrics.intervals import Z95

SEPARATED_LOGODDS = 15.0  # |log-odds| per SD or per code beyond which a fit is taken as separated
RANK_GAP = 4  # a top-3 reason of one model ranked this many places lower by the other: flagged
NEGLIGIBLE_SHAP = 0.005  # half a percentage point: too small to have a direction worth comparing
NEGLIGIBLE_LOGODDS = 0.05


def feature_label(f, lang: str) -> str:
    return (f.label_zh if lang == "zh" and f.label_zh else f.label) or f.name


def _code_label(f, text: str, lang: str) -> str:
    for code in f.codes:
        try:
            same = float(code.value) == float(text)
        except (TypeError, ValueError):
            same = str(code.value) == text
        if same:
            return (code.label_zh if lang == "zh" and code.label_zh else code.label) or text
    return text


class GlassBox:
    """Unpenalised logistic regression with reference coding; fit on the MLP's training split."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def fit(self, df: pd.DataFrame, y) -> "GlassBox":
        self.baseline_ = LogisticBaseline(self.schema).fit(df, y)
        y = np.asarray(y, dtype=np.float64)
        prepare = self.baseline_.pipeline_.named_steps["prepare"]
        self.columns_ = []  # (feature, kind, code text or None) per design column kept
        keep = []
        position = 0
        for name in self.baseline_.numeric_:
            self.columns_.append((name, "numeric", None))
            keep.append(position)
            position += 1
        self.reference_ = {}
        if self.baseline_.coded_:
            encoder = prepare.named_transformers_["coded"].named_steps["onehotencoder"]
            for name, cats in zip(self.baseline_.coded_, encoder.categories_):
                self.reference_[name] = str(cats[0])
                for k, cat in enumerate(cats):
                    if k > 0:  # the first code is the reference: its column is dropped
                        self.columns_.append((name, "code", str(cat)))
                        keep.append(position)
                    position += 1
        self.keep_ = np.asarray(keep, dtype=int)
        X = self._design(df)
        self.mean_ = X.mean(axis=0)
        if "numeric" in prepare.named_transformers_:
            scaler = prepare.named_transformers_["numeric"].named_steps["standardscaler"]
            self.sd_ = dict(zip(self.baseline_.numeric_, scaler.scale_.tolist()))
        else:
            self.sd_ = {}
        design = np.column_stack([np.ones(len(X)), X])
        beta = logistic_fit(design, y, np.zeros(len(X)), iterations=200)
        # Quasi-complete separation: Newton's method stops at huge but finite log-odds (an odds ratio of
        # millions per SD or per code, with a standard error to match) instead of failing; that is no
        # estimate either, so it is treated as separation (it crashed the odds-ratio table with an overflow).
        if beta is not None and np.max(np.abs(beta[1:]), initial=0.0) > SEPARATED_LOGODDS:
            beta = None
        self.penalised_ = beta is None
        if beta is None:
            # Perfect separation: the MLE is infinite. Fall back to the penalised baseline's coefficients.
            logistic = self.baseline_.pipeline_.named_steps["logistic"]
            beta = np.concatenate([[logistic.intercept_[0]], logistic.coef_[0][self.keep_]])
            self.se_ = np.full(len(beta), np.nan)
        else:
            eta = design @ beta
            p = 1 / (1 + np.exp(-eta))
            hessian = (design * (p * (1 - p))[:, None]).T @ design
            try:
                self.se_ = np.sqrt(np.clip(np.diag(np.linalg.inv(hessian)), 0, None))
            except np.linalg.LinAlgError:
                self.se_ = np.full(len(beta), np.nan)
        self.intercept_, self.coef_ = float(beta[0]), np.asarray(beta[1:], dtype=np.float64)
        self.se_coef_ = self.se_[1:]
        return self

    def _design(self, df: pd.DataFrame) -> np.ndarray:
        prepare = self.baseline_.pipeline_.named_steps["prepare"]
        X = prepare.transform(self.baseline_._frame(df))
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        return np.asarray(X, dtype=np.float64)[:, self.keep_]

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        eta = self.intercept_ + self._design(df) @ self.coef_
        return 1 / (1 + np.exp(-eta))

    def contributions(self, df: pd.DataFrame) -> pd.DataFrame:
        """(rows x features) log-odds contribution of each feature versus the average training patient."""
        per_column = (self._design(df) - self.mean_) * self.coef_
        names = [f.name for f in self.schema.model_features]
        out = pd.DataFrame(0.0, index=range(len(df)), columns=names)
        for k, (name, _, _) in enumerate(self.columns_):
            out[name] += per_column[:, k]
        return out

    def odds_ratios(self, lang: str = "en") -> pd.DataFrame:
        """One row per coefficient: feature, label, term (per 1 SD with its size in units / code vs the
        reference), odds ratio, 95% interval, log-odds coefficient, and ``no_interval``: why the interval is
        missing ("" when there is one; "separated" when the data separate the outcome, so the unpenalised
        estimate is infinite and the penalised one has no valid Wald interval; "not_estimable" when the
        information matrix is singular for that term, e.g. a code no training patient has)."""
        rows = []
        for k, (name, kind, code) in enumerate(self.columns_):
            f = self.schema[name]
            if kind == "numeric":
                unit = f" {f.display_unit(lang)}" if f.unit else ""  # the unit in the language
                term = tr("glassbox.per_sd", lang, sd=f"{self.sd_.get(name, float('nan')):.3g}", unit=unit)
            else:
                versus = _code_label(f, self.reference_[name], lang)
                term = tr("glassbox.versus", lang, code=_code_label(f, code, lang), reference=versus)
            beta, se = float(self.coef_[k]), float(self.se_coef_[k])
            ok = math.isfinite(se)
            why = "" if ok else ("separated" if self.penalised_ else "not_estimable")
            rows.append({"feature": name, "label": feature_label(f, lang), "term": term, "coef": beta,
                         "odds_ratio": float(np.exp(beta)), "low": float(np.exp(beta - Z95 * se)) if ok else float("nan"),
                         "high": float(np.exp(beta + Z95 * se)) if ok else float("nan"), "se": se, "no_interval": why})
        return pd.DataFrame(rows)


def odds_ratio_contradictions(glass: GlassBox, ors: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``glass.odds_ratios()`` whose odds ratio lies on the side of 1 that clinical knowledge
    rules out (``Feature.risk_direction``): e.g. an odds ratio per SD of age below 1. For a code, the expected
    side follows the schema's code order (later codes raise the risk when "increases"). Column ``certain``:
    the whole 95% interval is on that side (a contradiction); otherwise the interval includes 1 (no evidence
    of the expected direction in these patients, nor of the opposite). Rows without an interval are left out:
    a penalised estimate's side is not evidence."""
    keep, certain = [], []
    for k, (name, kind, code) in enumerate(glass.columns_):
        f = glass.schema[name]
        row = ors.iloc[k]
        wrong = sure = False
        if f.risk_direction is not None and not row["no_interval"] and np.isfinite(row["low"]):
            later = 1
            if kind != "numeric":
                position = {text: next((i for i, c in enumerate(f.codes) if same_value(c.value, text)), None)
                            for text in (code, glass.reference_[name])}
                at, ref = position[code], position[glass.reference_[name]]
                later = 0 if at is None or ref is None or at == ref else (1 if at > ref else -1)
            expected = later if f.risk_direction == "increases" else -later
            if expected > 0:
                wrong, sure = row["odds_ratio"] < 1.0, row["high"] < 1.0
            elif expected < 0:
                wrong, sure = row["odds_ratio"] > 1.0, row["low"] > 1.0
        keep.append(bool(wrong))
        certain.append(bool(sure))
    out = ors.assign(certain=certain)
    return out[np.array(keep, dtype=bool)] if len(out) else out


def rank_order(values: np.ndarray) -> np.ndarray:
    """1 = largest |value|; ties keep feature order."""
    order = np.argsort(-np.abs(values), kind="stable")
    ranks = np.empty(len(values), dtype=int)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def compare_global(model, glass: GlassBox, df: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """Per feature on the patients of ``df``: the MLP's mean |SHAP| (probability) and its rank; the
    logistic model's mean |contribution| (log-odds) and rank; and for measurements the direction of each
    (does a higher value raise the risk?): the sign of the correlation of value and SHAP for the MLP, the
    sign of the coefficient for logistic regression."""
    pre = model.preprocessor_
    raw = pre.encode(df)
    expl = explain(pre, model.networks_, raw, model.background_,
                   background_weights=getattr(model, "background_weights_", None))
    mlp = np.abs(expl.shap_values).mean(axis=0)
    contrib = glass.contributions(df)
    names = pre.feature_names
    lr = np.abs(contrib[names].to_numpy()).mean(axis=0)
    coef = {name: glass.coef_[k] for k, (name, kind, _) in enumerate(glass.columns_) if kind == "numeric"}
    rows = []
    mlp_rank, lr_rank = rank_order(mlp), rank_order(lr)
    for j, name in enumerate(names):
        f = pre.features[j]
        mlp_dir = lr_dir = 0
        if f.is_measurement:
            x, s = raw[:, j], expl.shap_values[:, j]
            ok = ~np.isnan(x)
            if ok.sum() > 2 and np.std(x[ok]) > 0 and np.std(s[ok]) > 0:
                mlp_dir = int(np.sign(np.corrcoef(x[ok], s[ok])[0, 1]))
            lr_dir = int(np.sign(coef.get(name, 0.0)))
        rows.append({"feature": name, "label": feature_label(f, lang), "mlp_mean_abs_shap": float(mlp[j]),
                     "mlp_rank": int(mlp_rank[j]), "lr_mean_abs_logodds": float(lr[j]), "lr_rank": int(lr_rank[j]),
                     "mlp_direction": mlp_dir, "lr_direction": lr_dir,
                     "disagree": bool(mlp_dir and lr_dir and mlp_dir != lr_dir)})
    return pd.DataFrame(rows).sort_values("mlp_rank", kind="stable").reset_index(drop=True)




def fit_glassbox(schema: Schema, df_train: pd.DataFrame, y_train) -> GlassBox:
    y = np.asarray(y_train, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise CohortError("the training patients all have the same outcome; logistic regression needs both")
    return GlassBox(schema).fit(df_train, y)


__all__ = ["GlassBox", "fit_glassbox", "compare_global", "odds_ratio_contradictions", "rank_order", "feature_label",
           "NEGLIGIBLE_SHAP",
           "NEGLIGIBLE_LOGODDS", "RANK_GAP"]
