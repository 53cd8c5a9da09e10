"""Does the model work as well for everyone? Discrimination and calibration by subgroup.

Per subgroup: patients, events, prevalence, mean predicted risk, AUC with a 95% interval that keeps its
width at small n (DeLong's standard error on the logit scale, Newcombe's score interval where the risks
separate the group perfectly: core.metrics.auc_interval), calibration-in-the-large (the logistic
intercept with logit(risk) as offset: > 0 = risks too low in this group) and the observed/expected ratio.
A group with fewer than MIN_PER_CLASS patients with, or without, the outcome gets no AUC, interval or
calibration at all (``too_few``): "1.000 (1.000-1.000)" from 10 patients with 2 events said nothing true.
Subgroups under 30 patients are flagged (``small``), never hidden.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.data.schema import Schema
from core.errors import CohortError
from core.i18n import tr
from core.metrics.discrimination import logistic_fit, logit
from core.metrics.intervals import MIN_PER_CLASS, auc_interval, delong_auc

SMALL_GROUP = 30
AGE_BANDS = (45, 55, 65)  # <45, 45-54, 55-64, >=65 years






def _code_label(f, value, lang: str) -> str:
    for code in f.codes:
        try:
            same = float(code.value) == float(value)
        except (TypeError, ValueError):
            same = str(code.value) == str(value)
        if same:
            return (code.label_zh if lang == "zh" and code.label_zh else code.label) or str(value)
    return str(value)


def _number_text(v: float) -> str:
    return f"{v:g}"


def subgroup_labels(df: pd.DataFrame, column: str, schema: Schema | None = None, bands=None,
                    lang: str = "en") -> pd.Series:
    """One label per row: the code's label for a coded column; a band for a number (``bands`` edges, the
    age bands for a column called age, else tertiles); "missing" where the value is missing."""
    if column not in df.columns:
        raise CohortError(f"there is no column {column!r} to form subgroups by")
    f = schema[column] if schema is not None and column in schema else None
    col = df[column]
    missing = tr("value.missing", lang)
    coded = f is not None and f.is_categorical
    if coded or (f is None and not pd.api.types.is_numeric_dtype(col)):
        labels = [missing if pd.isna(v) else (_code_label(f, v, lang) if f is not None else str(v)) for v in col]
        return pd.Series(labels, index=df.index, dtype=object)
    values = pd.to_numeric(col, errors="coerce").astype(float)
    if bands is None:
        if column.lower() == "age":
            bands = AGE_BANDS
        else:
            seen = values.dropna()
            bands = sorted(set(np.round(np.quantile(seen, [1 / 3, 2 / 3]), 6))) if len(seen) else []
    edges = list(bands)
    names = []
    for i in range(len(edges) + 1):
        if i == 0:
            names.append(f"< {_number_text(edges[0])}" if edges else tr("subgroup.all", lang))
        elif i == len(edges):
            names.append(f"≥ {_number_text(edges[-1])}")
        else:
            names.append(f"{_number_text(edges[i - 1])}–<{_number_text(edges[i])}")
    ids = np.searchsorted(np.asarray(edges, dtype=float), values.to_numpy(), side="right")
    labels = [missing if math.isnan(v) else names[k] for v, k in zip(values.to_numpy(), ids)]
    return pd.Series(pd.Categorical(labels, categories=[*names, missing], ordered=True), index=df.index)


def subgroup_metrics(y, p, groups) -> pd.DataFrame:
    """One row per subgroup (in the groups' order; "all patients" first is the caller's choice)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    groups = pd.Series(groups).reset_index(drop=True)
    if not (len(y) == len(p) == len(groups)):
        raise CohortError("subgroups need one outcome, one risk and one group per patient")
    order = list(groups.cat.categories) if isinstance(groups.dtype, pd.CategoricalDtype) else \
        list(dict.fromkeys(groups.tolist()))
    rows = []
    for name in order:
        mask = (groups == name).to_numpy()
        n = int(mask.sum())
        if n == 0:
            continue
        yg, pg = y[mask], p[mask]
        events = int(yg.sum())
        too_few = min(events, n - events) < MIN_PER_CLASS
        auc = low = high = citl = ratio = float("nan")
        if not too_few:
            auc, low, high = auc_interval(yg, pg)
            fit = logistic_fit(np.ones((n, 1)), yg, logit(pg))
            citl = float(fit[0]) if fit is not None else float("nan")
            ratio = events / float(pg.sum()) if pg.sum() > 0 else float("nan")
        rows.append({"group": str(name), "n": n, "events": events, "prevalence": events / n,
                     "mean_risk": float(pg.mean()), "auc": auc, "auc_low": low, "auc_high": high,
                     "calibration_in_the_large": citl, "observed_expected": ratio,
                     "small": n < SMALL_GROUP, "too_few": too_few})
    return pd.DataFrame(rows, columns=["group", "n", "events", "prevalence", "mean_risk", "auc", "auc_low",
                                       "auc_high", "calibration_in_the_large", "observed_expected", "small",
                                       "too_few"])


def subgroup_table(df: pd.DataFrame, y, p, column: str, schema: Schema | None = None, bands=None,
                   lang: str = "en") -> pd.DataFrame:
    """subgroup_metrics by ``column`` (see subgroup_labels), with a ``column`` column first."""
    groups = subgroup_labels(df.reset_index(drop=True), column, schema, bands, lang)
    table = subgroup_metrics(y, p, groups)
    table.insert(0, "column", column)
    return table


def default_columns(schema: Schema) -> list[str]:
    """The subgroups every report shows: sex and age where the schema has them."""
    names = [f.name for f in schema.model_features]
    return [c for c in ("sex", "age") if c in names]


__all__ = [
    "AGE_BANDS",
    "MIN_PER_CLASS",
    "SMALL_GROUP",
    "auc_interval",
    "default_columns",
    "delong_auc",
    "subgroup_labels",
    "subgroup_metrics",
    "subgroup_table",
]
