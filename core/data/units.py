"""Clinical units a clinician may prefer over the model's: values are converted *before* the model sees them.

The model always works in the schema's unit (Cleveland: cholesterol in mg/dl). A form may show a value in
another unit; :func:`to_model` turns what was typed into the model's unit and :func:`from_model` turns a
stored value back for display.

Total cholesterol: 1 mmol/L = 38.67 mg/dl (molar mass of cholesterol 386.65 g/mol).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.data.schema import Feature

CHOLESTEROL_MG_DL_PER_MMOL_L = 38.67


@dataclass(frozen=True)
class Conversion:
    """``model value = shown value * factor + offset``."""
    model_unit: str
    unit: str
    factor: float
    decimals: int  # resolution worth typing in this unit
    offset: float = 0.0


# Keyed by what the measurement is (the same unit pair means another factor for glucose: 18.0).
_CHOLESTEROL = (Conversion("mg/dl", "mg/dl", 1.0, 0), Conversion("mg/dl", "mmol/L", CHOLESTEROL_MG_DL_PER_MMOL_L, 2))
# Units a clinician types a value in (a form never asks for age in days); decimals worth typing.
_FORM_DECIMALS = {"mmol/L": 2, "µmol/L": 0, "mmol/mol": 0, "m": 2, "in": 1, "lb": 0}


def _is_cholesterol(feature: Feature) -> bool:
    text = f"{feature.name} {feature.label}".lower()
    return feature.concept is None and "chol" in text and (feature.unit or "").lower() == "mg/dl"


def _concept_conversions(feature: Feature) -> list[Conversion]:
    """The vocabulary's other units for a mapped feature, for the form (model unit first)."""
    if not feature.concept:
        return []
    from core.data.concepts import vocabulary
    try:
        concept = vocabulary()[feature.concept]
    except KeyError:  # a bundle from a newer vocabulary: its own unit only
        return []
    if concept.unit != feature.unit:
        return []
    own = Conversion(feature.unit or "", feature.unit or "", 1.0, 0 if (feature.step or 1) >= 1 else 1)
    return [own] + [Conversion(feature.unit or "", u.unit, u.factor, _FORM_DECIMALS[u.unit], u.offset)
                    for u in concept.units if u.unit in _FORM_DECIMALS]


def unit_options(feature: Feature) -> list[str]:
    """Units this feature can be entered in; the model's own unit first. [] when it has no unit."""
    if _is_cholesterol(feature):
        return [c.unit for c in _CHOLESTEROL]
    conversions = _concept_conversions(feature)
    if len(conversions) > 1:
        return [c.unit for c in conversions]
    return [feature.unit] if feature.unit else []


def conversion(feature: Feature, unit: str | None) -> Conversion:
    """How ``unit`` maps to the feature's model unit; ValueError for a unit the feature cannot take."""
    model_unit = feature.unit or ""
    if unit is None or unit == model_unit:
        return Conversion(model_unit, model_unit, 1.0, 0 if (feature.step or 1) >= 1 else 1)
    candidates = _CHOLESTEROL if _is_cholesterol(feature) else _concept_conversions(feature)
    for c in candidates:
        if c.unit == unit:
            return c
    raise ValueError(f"{feature.name}: unit {unit!r} is not one of {unit_options(feature) or [model_unit]}")


def to_model(value: float | None, feature: Feature, unit: str | None) -> float | None:
    """A value typed in ``unit`` -> the model's unit (None / NaN stay missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return value
    c = conversion(feature, unit)
    return float(value) * c.factor + c.offset


def from_model(value: float | None, feature: Feature, unit: str | None) -> float | None:
    """A value in the model's unit -> ``unit``, rounded to that unit's resolution."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return value
    c = conversion(feature, unit)
    if c.factor == 1.0 and c.offset == 0.0:
        return float(value)
    return round((float(value) - c.offset) / c.factor, c.decimals)


def input_range(feature: Feature, unit: str | None) -> tuple[float | None, float | None, float]:
    """(min, max, step) of the plausible range in ``unit``.

    The bounds are rounded *inwards* to the unit's resolution, so that any value the widget allows
    converts back inside the model's plausible range (80 mg/dl = 2.0688 mmol/L -> 2.07, not 2.07 - ε).
    """
    c = conversion(feature, unit)
    if c.factor == 1.0 and c.offset == 0.0:
        return feature.min, feature.max, float(feature.step or 1.0)
    scale = 10 ** c.decimals
    lo = None if feature.min is None else math.ceil((feature.min - c.offset) / c.factor * scale - 1e-9) / scale
    hi = None if feature.max is None else math.floor((feature.max - c.offset) / c.factor * scale + 1e-9) / scale
    return lo, hi, 1.0 / scale
