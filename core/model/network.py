"""The trained MLP as plain numpy: the interactive scoring and SHAP paths run here, not in TensorFlow.

A Keras call costs milliseconds of dispatch for one row; the same 10-5-1 network in numpy is tens of
microseconds, and needs no TensorFlow import. ``Network`` holds the weights copied out of the Keras model
after training (or after loading a bundle) and reproduces ``model(x, training=False)`` to float precision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _relu(z):
    return np.maximum(z, 0.0)


def _sigmoid(z):
    # Split by sign so large |z| never overflows exp.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


ACTIVATIONS = {"relu": _relu, "tanh": np.tanh, "sigmoid": _sigmoid}


@dataclass
class Network:
    """Dense layers (W: inputs x units, b: units); hidden ``activation``; sigmoid output of one unit."""
    layers: list[tuple[np.ndarray, np.ndarray]]
    activation: str = "relu"

    def __post_init__(self):
        self.layers = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in self.layers]
        self._act = ACTIVATIONS[self.activation]

    @property
    def first(self) -> tuple[np.ndarray, np.ndarray]:
        return self.layers[0]

    def logit_from_first(self, z1: np.ndarray) -> np.ndarray:
        """Output logit given the first layer's pre-activation (..., units1)."""
        h = self._act(z1)
        for W, b in self.layers[1:-1]:
            h = self._act(h @ W + b)
        if len(self.layers) == 1:  # no hidden layer: logistic regression
            return z1[..., 0]
        W, b = self.layers[-1]
        return (h @ W + b)[..., 0]

    def logit(self, X: np.ndarray) -> np.ndarray:
        W, b = self.layers[0]
        return self.logit_from_first(np.asarray(X, dtype=np.float64) @ W + b)

    def proba(self, X: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logit(X))

    def proba_from_first(self, z1: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logit_from_first(z1))

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, (W, b) in enumerate(self.layers):
            out[f"W{i}"], out[f"b{i}"] = W, b
        return out
