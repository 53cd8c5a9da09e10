"""What an explanation is (SHAP values of n patients) and the tables made from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_BACKGROUND = 500  # background_sample never returns more rows than this


@dataclass
class Explanation:
    """SHAP values of n patients, on the probability scale.

    shap_values: (n, p) contribution of each clinical feature to the predicted probability.
    base_value: mean model output (probability) over the background rows.
    output: (n,) model output (probability) of each patient; ``base_value + shap_values.sum(1) == output``.
    raw: (n, p) the patients' raw-matrix values (Preprocessor.encode), in ``feature_names`` order.
    method: "exact" or "permutation".
    """
    shap_values: np.ndarray
    base_value: float
    output: np.ndarray
    feature_names: list[str]
    raw: np.ndarray
    method: str
    background_size: int = 0
    n_permutations: int | None = None

    @property
    def data(self) -> np.ndarray:  # shap's own name for the explained values
        return self.raw

    def __len__(self) -> int:
        return self.shap_values.shape[0]




def background_sample(raw_train: np.ndarray, size: int = 100, seed: int = 0) -> np.ndarray:
    """A deterministic subsample of the training raw matrix to explain against.

    At most ``min(size, 500)`` rows, all rows if there are fewer; rows keep their training order, so
    the same data, size and seed always give the same background.
    """
    raw = np.atleast_2d(np.asarray(raw_train, dtype=np.float64))
    size = max(1, min(int(size), MAX_BACKGROUND))
    if raw.shape[0] <= size:
        return raw.copy()
    idx = np.sort(np.random.default_rng(seed).choice(raw.shape[0], size=size, replace=False))
    return raw[idx]


def global_importance(expl: Explanation) -> pd.DataFrame:
    """Mean |SHAP| per feature (probability scale), most important first."""
    mean_abs = np.abs(expl.shap_values).mean(axis=0) if len(expl) else np.zeros(len(expl.feature_names))
    frame = pd.DataFrame({"feature": expl.feature_names, "mean_abs_shap": mean_abs})
    return frame.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def shap_frame(expl: Explanation) -> pd.DataFrame:
    """Tidy table for plots: one line per (row, feature) with its raw value and SHAP value."""
    n, p = expl.shap_values.shape
    return pd.DataFrame({
        "row": np.repeat(np.arange(n), p),
        "feature": np.tile(np.asarray(expl.feature_names, dtype=object), n),
        "value": expl.raw.reshape(-1),
        "shap_value": expl.shap_values.reshape(-1),
    })
