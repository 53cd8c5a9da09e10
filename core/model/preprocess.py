"""Preprocessing that travels with the model: raw clinical values in, network inputs out.

Two steps, both fitted on the training split only and saved as plain JSON (nothing executes on load):

1. ``encode``: a cohort table -> a float matrix of *raw* features, one column per clinical feature, in
   schema order. Measurements stay in their units (mmHg, mg/dl, ...); a coded feature becomes the index
   of its code in ``categories_`` (-1 for a code never seen in training); missing stays NaN.
   SHAP values are computed over this matrix, so they belong to the clinical features themselves.
2. ``transform_raw``: raw matrix -> network inputs: missing values imputed (median / most frequent),
   numbers standardised, categorical codes one-hot (an unseen code: all zeros), binary as 0/1.
   That single fill is for training and for the network's inputs only: a patient's risk with a missing
   input is the mean over its conditional imputations (``imputer_``, core.model.imputation; used by
   core.workflow.risk), never the risk at the median.

Every output column depends on exactly one raw feature (``slices_``): the explainer relies on this to
attribute a one-hot group to its one original feature and to compute exact Shapley values fast.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.schema import Feature, Schema, same_value
from core.errors import PatientError
from core.model.imputation import ConditionalImputer
from core.model.privacy import training_range


class Preprocessor:
    """Fit on the training split, then ``transform`` any table or ``transform_raw`` any raw matrix."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.features: list[Feature] = schema.model_features

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame) -> "Preprocessor":
        self.categories_: dict[str, list] = {}
        for f in self.features:
            if f.is_categorical:
                self.categories_[f.name] = _categories(f, df[f.name])
        raw = self.encode(df)
        self.fill_: list[float] = []
        self.center_: list[float] = []
        self.scale_: list[float] = []
        self.raw_min_: list[float] = []
        self.raw_max_: list[float] = []
        for j, f in enumerate(self.features):
            col = raw[:, j]
            seen = col[~np.isnan(col) & (col >= 0)]
            if f.is_measurement:
                fill = float(np.median(seen)) if seen.size else 0.0
                center = float(seen.mean()) if seen.size else 0.0
                scale = float(seen.std()) if seen.size > 1 and seen.std() > 0 else 1.0
            else:
                counts = np.bincount(seen.astype(int), minlength=len(self.categories_[f.name]))
                fill = float(np.argmax(counts)) if seen.size else 0.0
                center, scale = 0.0, 1.0
            self.fill_.append(fill)
            self.center_.append(center)
            self.scale_.append(scale)
            if f.kind == "numeric" and seen.size:
                # Rounded percentiles, not the extremes: a saved model must not give away one patient's value.
                lo, hi = training_range(seen)
            else:
                lo, hi = (float(seen.min()), float(seen.max())) if seen.size else (float("nan"), float("nan"))
            self.raw_min_.append(lo)
            self.raw_max_.append(hi)
        self._build_slices()
        self.imputer_: ConditionalImputer | None = ConditionalImputer.fit(raw, [f.kind for f in self.features])
        return self

    def _build_slices(self) -> None:
        self.slices_: list[slice] = []
        self.output_names_: list[str] = []
        start = 0
        for f in self.features:
            if f.kind == "categorical":
                cats = self.categories_[f.name]
                width = len(cats)
                self.output_names_ += [f"{f.name}={c}" for c in cats]
            else:
                width = 1
                self.output_names_.append(f.name)
            self.slices_.append(slice(start, start + width))
            start += width
        self.n_outputs_ = start

    # ---- raw encoding --------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Table of raw clinical values -> raw float matrix (codes as category indices)."""
        missing = [f.name for f in self.features if f.name not in df.columns]
        if missing:
            raise PatientError(f"columns the model needs are missing: {missing}")
        out = np.empty((len(df), len(self.features)), dtype=np.float64)
        for j, f in enumerate(self.features):
            col = df[f.name]
            if f.is_categorical:
                out[:, j] = self._code_index(f, col)
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def _code_index(self, f: Feature, col: pd.Series) -> np.ndarray:
        cats = self.categories_[f.name]
        result = np.full(len(col), -1.0)
        values = col.to_numpy(dtype=object)
        isna = pd.isna(col).to_numpy()
        result[isna] = np.nan
        numeric_cats = all(isinstance(c, float) for c in cats)
        if numeric_cats:
            nums = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            for k, c in enumerate(cats):
                result[nums == c] = k
        else:
            text = np.array([str(v).strip() if not m else "" for v, m in zip(values, isna)], dtype=object)
            for k, c in enumerate(cats):
                result[text == str(c)] = k
        return result

    def decode_value(self, j: int, raw_value: float):
        """Raw matrix entry -> the clinical value (a code for coded features)."""
        f = self.features[j]
        if np.isnan(raw_value):
            return float("nan")
        if f.is_categorical:
            k = int(raw_value)
            return self.categories_[f.name][k] if 0 <= k < len(self.categories_[f.name]) else None
        return float(raw_value)

    def encode_value(self, j: int, value) -> float:
        """One clinical value -> its raw-matrix entry."""
        f = self.features[j]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return float("nan")
        if f.is_categorical:
            for k, c in enumerate(self.categories_[f.name]):
                if same_value(c, value):
                    return float(k)
            return -1.0
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PatientError(f"{f.name}: {value!r} is not a number") from None

    # ---- network inputs ------------------------------------------------------------------------
    def impute_raw(self, raw: np.ndarray) -> np.ndarray:
        filled = np.array(raw, dtype=np.float64, copy=True)
        nan = np.isnan(filled)
        if nan.any():
            filled[nan] = np.take(np.asarray(self.fill_), np.nonzero(nan)[1])
        return filled

    def transform_raw(self, raw: np.ndarray) -> np.ndarray:
        raw = self.impute_raw(np.atleast_2d(raw))
        out = np.zeros((raw.shape[0], self.n_outputs_), dtype=np.float32)
        for j, f in enumerate(self.features):
            sl = self.slices_[j]
            col = raw[:, j]
            if f.kind == "categorical":
                idx = col.astype(np.int64)
                ok = (idx >= 0) & (idx < sl.stop - sl.start)
                out[np.nonzero(ok)[0], sl.start + idx[ok]] = 1.0
            elif f.kind == "binary":
                out[:, sl.start] = (col == 1).astype(np.float32)
            else:
                out[:, sl.start] = (col - self.center_[j]) / self.scale_[j]
        return out

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.transform_raw(self.encode(df))

    def encode_feature_values(self, j: int, values: np.ndarray) -> np.ndarray:
        """Network inputs of feature j alone (rows x its slice width), for values of its raw column."""
        f = self.features[j]
        col = np.asarray(values, dtype=np.float64)
        col = np.where(np.isnan(col), self.fill_[j], col)
        width = self.slices_[j].stop - self.slices_[j].start
        if f.kind == "categorical":
            out = np.zeros((col.size, width), dtype=np.float64)
            idx = col.astype(np.int64)
            ok = (idx >= 0) & (idx < width)
            out[np.nonzero(ok)[0], idx[ok]] = 1.0
            return out
        if f.kind == "binary":
            return (col == 1).astype(np.float64)[:, None]
        return ((col - self.center_[j]) / self.scale_[j])[:, None]

    # ---- persistence (plain JSON) --------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "feature_names": self.feature_names,
            "categories": self.categories_,
            "fill": self.fill_, "center": self.center_, "scale": self.scale_,
            "raw_min": self.raw_min_, "raw_max": self.raw_max_,
            **({"conditional_imputation": self.imputer_.for_saving([f.kind for f in self.features]).to_dict()}
               if getattr(self, "imputer_", None) else {}),
        }

    @classmethod
    def from_dict(cls, schema: Schema, data: dict) -> "Preprocessor":
        pre = cls(schema)
        if pre.feature_names != list(data["feature_names"]):
            raise ValueError("preprocessing does not match the schema's features")
        pre.categories_ = {k: list(v) for k, v in data["categories"].items()}
        for name in ("fill", "center", "scale", "raw_min", "raw_max"):
            setattr(pre, name + "_", [float(x) for x in data[name]])
        pre._build_slices()
        # bundles saved before conditional imputation have none (core.workflow.risk then uses the background)
        imputation = data.get("conditional_imputation")
        pre.imputer_ = ConditionalImputer.from_dict(imputation, len(pre.features)) if imputation else None
        return pre


def _categories(f: Feature, col: pd.Series) -> list:
    """Codes of a coded feature: the schema's codes first (so every documented code has a column),
    then any other code seen in training."""
    cats: list = list(f.code_values())
    seen = col.dropna()
    numeric = all(isinstance(c, float) for c in cats) if cats else pd.to_numeric(seen, errors="coerce").notna().all()
    if numeric:
        cats = [float(c) for c in cats]
        extra = sorted(set(pd.to_numeric(seen, errors="coerce").dropna().astype(float)) - set(cats))
    else:
        cats = [str(c) for c in cats]
        extra = sorted(set(seen.astype(str).str.strip()) - set(cats))
    return cats + list(extra)
