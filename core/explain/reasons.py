"""Reasons in words: a patient's largest SHAP values as a clinician reads them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.schema import Schema
from core.explain.explanation import Explanation
from core.i18n import tr
from core.model.preprocess import Preprocessor

_NEGLIGIBLE = 1e-9  # a reason smaller than this (probability) is not a reason


@dataclass
class Reason:
    """One feature's contribution to one patient's risk, as a clinician reads it."""
    feature: str  # column name
    label: str  # clinical label in the chosen language
    value: str  # the patient's value in clinical units ('108 bpm', 'asymptomatic', 'missing')
    subject: str  # label with value, as the waterfall and the report name it: 'Chest pain type (asymptomatic)'
    shap: float  # contribution to the probability (0.09 = +9 percentage points)
    points: int  # shap * 100, rounded half away from zero
    text: str  # 'Max heart rate 108 bpm: +9 points'
    clinical_value: object = None  # the decoded value (108.0, a code, NaN)


# ---- public API ---------------------------------------------------------------------------------


def reasons(expl: Explanation, i: int, schema: Schema, preprocessor: Preprocessor, top: int = 3,
            lang: str = "en") -> list[Reason]:
    """The ``top`` features that move patient ``i``'s risk most, largest |SHAP| first.

    Features whose contribution is negligible (|shap| < 1e-9, e.g. ignored by the model) are left out,
    so fewer than ``top`` reasons may come back. So is a feature not measured (NaN in ``expl.raw``): a
    value nobody knows is never a reason (core.workflow.risk shows it as "not measured").
    """
    contrib = expl.shap_values[i]
    measured = ~np.isnan(expl.raw[i])
    order = [j for j in np.argsort(-np.abs(contrib), kind="stable") if measured[j]][:max(0, int(top))]
    out = []
    for j in order:
        shap_value = float(contrib[j])
        if abs(shap_value) < _NEGLIGIBLE:
            continue
        out.append(_reason(expl, i, int(j), shap_value, schema, preprocessor, lang))
    return out


def reasons_frame(expl: Explanation, schema: Schema, preprocessor: Preprocessor, top: int = 3,
                  lang: str = "en") -> pd.DataFrame:
    """Top reasons of every row as one table (row, rank, feature, label, value, shap, points, text)."""
    records = []
    for i in range(len(expl)):
        for rank, r in enumerate(reasons(expl, i, schema, preprocessor, top=top, lang=lang), start=1):
            records.append({"row": i, "rank": rank, "feature": r.feature, "label": r.label, "value": r.value,
                            "shap": r.shap, "points": r.points, "text": r.text})
    return pd.DataFrame(records, columns=["row", "rank", "feature", "label", "value", "shap", "points", "text"])


# ---- exact Shapley values -----------------------------------------------------------------------



def _reason(expl: Explanation, i: int, j: int, shap_value: float, schema: Schema,
            preprocessor: Preprocessor, lang: str) -> Reason:
    name = expl.feature_names[j]
    feature = schema[name]
    clinical = preprocessor.decode_value(j, float(expl.raw[i, j]))
    value_text = (feature.format_value(clinical, lang) if clinical is not None
                  else tr("value.unknown_code", lang))
    label = feature.display_label(lang)
    points = int(math.floor(abs(shap_value) * 100 + 0.5))
    sign = "+" if shap_value >= 0 else "-"
    amount = f"{sign}{points}" if points else f"{sign}<1"
    # A code reads as "Chest pain type (asymptomatic)"; a measurement as "Max heart rate 108 bpm".
    subject = (tr("reason.subject_coded", lang, label=label, value=value_text) if feature.is_coded
               else tr("reason.subject_measured", lang, label=label, value=value_text))
    text = (tr("reason.text_one", lang, subject=subject, amount=amount) if points <= 1
            else tr("reason.text", lang, subject=subject, amount=amount))
    return Reason(feature=name, label=label, value=value_text, subject=subject, shap=shap_value,
                  points=points if shap_value >= 0 else -points, text=text, clinical_value=clinical)
