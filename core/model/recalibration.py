"""Are the risks right on average and across their range — and recalibration when they are not.

Recalibration is fitted on the validation split (never the test split) and saved in the bundle as plain
JSON numbers (nothing executes on load):

* ``platt``: ``risk = sigmoid(a * z + b)`` with ``z`` the network's output logit (logistic regression on
  logit(p)). For an ensemble the same ``a, b`` are applied to every member and the members' calibrated
  risks are averaged (``a, b`` fitted jointly for that mean), so for one network this is exactly Platt
  scaling. Why per member: ``a * z + b`` folds into each network's last layer (weights x a, bias x a + b),
  so the calibrated model *is* an ensemble of plain networks and the SHAP explainer explains the
  calibrated risk exactly, still additive (``base + sum(shap) == calibrated risk``).
* ``isotonic``: a monotone step-free (linearly interpolated) map of the ensemble's mean risk, stored as
  its threshold arrays (``x``, ``y``). It cannot be folded into the networks: with isotonic calibration
  SHAP values explain the *uncalibrated* output (they add up to it, not to the calibrated risk), which
  the dashboard says. It needs many patients; the automatic choice considers it only from 200 validation
  patients on.
* ``none``.

``method="auto"`` picks, by the Brier score of 5-fold cross-validation *within* the validation split
(the in-sample Brier would always favour the most flexible map), the lowest of none / Platt (/ isotonic)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.errors import CohortError
from core.metrics.discrimination import as_outcome, logistic_fit, logit

METHODS = ("none", "platt", "isotonic")
ISOTONIC_MIN_AUTO = 200  # validation patients before "auto" tries isotonic


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))




SITE_UPDATE_SOURCE = "external intercept update: "


@dataclass
class Calibration:
    """A fitted recalibration map (``method`` none / platt / isotonic) with its JSON parameters."""
    method: str = "none"
    a: float = 1.0                      # platt: slope on the member logit
    b: float = 0.0                      # platt: intercept
    x: list[float] = field(default_factory=list)  # isotonic thresholds (uncalibrated risk)
    y: list[float] = field(default_factory=list)  # isotonic values (calibrated risk)
    n: int = 0                          # patients it was fitted on
    source: str = ""                    # "validation split", "external: <name>", ...
    chosen_by: str = "user"             # "user" or "validation brier (5-fold cv)"
    cv_brier: dict = field(default_factory=dict)  # method -> cross-validated Brier (auto only)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"calibration method must be one of {METHODS}")

    @property
    def site_update(self) -> str | None:
        """The site whose patients an intercept update was fitted on (core.evaluate.recalibrate_intercept),
        else None. Stored as a Platt map with the slope kept, but not Platt scaling: the pages say which."""
        prefix = SITE_UPDATE_SOURCE
        return self.source[len(prefix):] if self.method == "platt" and self.source.startswith(prefix) else None

    # ---- application ------------------------------------------------------------------------------
    def apply_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated risk from member logits (members x rows, or rows): mean over members of the
        per-member map for Platt; isotonic of the mean risk."""
        z = np.atleast_2d(np.asarray(logits, dtype=np.float64))
        if self.method == "platt":
            return _sigmoid(self.a * z + self.b).mean(axis=0)
        p = _sigmoid(z).mean(axis=0)
        return self.apply_risk(p) if self.method == "isotonic" else p

    def apply_risk(self, p: np.ndarray) -> np.ndarray:
        """The map applied to a risk (for Platt: exact for one network; use apply_logits for ensembles)."""
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            return _sigmoid(self.a * logit(p) + self.b)
        if self.method == "isotonic":
            return np.interp(p, np.asarray(self.x), np.asarray(self.y))
        return p

    @property
    def folds_into_networks(self) -> bool:
        """True when the calibrated model is again a set of plain networks (SHAP explains it exactly)."""
        return self.method in ("none", "platt")

    # ---- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"method": self.method, "n": int(self.n), "source": self.source, "chosen_by": self.chosen_by,
               "cv_brier": {k: float(v) for k, v in self.cv_brier.items()}}
        if self.method == "platt":
            out.update(a=float(self.a), b=float(self.b))
        if self.method == "isotonic":
            out.update(x=[float(v) for v in self.x], y=[float(v) for v in self.y])
        return out

    @classmethod
    def from_dict(cls, data: dict | None) -> "Calibration":
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise ValueError("calibration must be a JSON object")
        method = str(data.get("method", "none"))
        cal = cls(method=method, n=int(data.get("n") or 0), source=str(data.get("source") or ""),
                  chosen_by=str(data.get("chosen_by") or "user"),
                  cv_brier={str(k): float(v) for k, v in (data.get("cv_brier") or {}).items() if v is not None})
        if method == "platt":
            cal.a, cal.b = float(data["a"]), float(data["b"])
            if not (math.isfinite(cal.a) and math.isfinite(cal.b)):
                raise ValueError("Platt parameters must be finite numbers")
        elif method == "isotonic":
            x = np.asarray(data["x"], dtype=np.float64)
            y = np.asarray(data["y"], dtype=np.float64)
            if x.ndim != 1 or x.shape != y.shape or x.size < 1 or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0) \
                    or not (np.all(np.isfinite(x)) and np.all((y >= 0) & (y <= 1))):
                raise ValueError("isotonic calibration needs increasing thresholds x and risks y in [0, 1]")
            cal.x, cal.y = x.tolist(), y.tolist()
        return cal


# ---- fitting ----------------------------------------------------------------------------------------


def _nll_platt(params, z, y):
    a, b = params
    eta = a * z + b  # (members, rows)
    if z.shape[0] == 1:
        e = eta[0]
        return float(np.sum(np.logaddexp(0.0, e) - y * e))
    p = np.clip(_sigmoid(eta).mean(axis=0), 1e-12, 1 - 1e-12)
    return float(-np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))


def fit_platt(logits, y) -> Calibration:
    """Platt scaling on member logits (members x rows, or rows for one network)."""
    from scipy.optimize import minimize

    z = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    y = as_outcome(y)
    if z.shape[1] != y.size:
        raise CohortError(f"{z.shape[1]} risks for {y.size} outcomes")
    if y.min() == y.max():
        raise CohortError("calibration needs patients with and without the outcome in the validation split")
    # Logistic regression of y on the logit of the mean risk: exact for one network, the start otherwise.
    lp = logit(_sigmoid(z).mean(axis=0))
    beta = logistic_fit(np.column_stack([np.ones_like(lp), lp]), y, np.zeros_like(lp))
    if beta is None:
        raise CohortError("the validation risks separate the outcomes perfectly; Platt scaling is undefined")
    a, b = float(beta[1]), float(beta[0])
    if z.shape[0] > 1:
        result = minimize(_nll_platt, x0=[a, b], args=(z, y), method="L-BFGS-B")
        if result.success and np.all(np.isfinite(result.x)):
            a, b = float(result.x[0]), float(result.x[1])
    return Calibration(method="platt", a=a, b=b, n=int(y.size))


def fit_isotonic(risk, y) -> Calibration:
    from sklearn.isotonic import IsotonicRegression
    p = np.asarray(risk, dtype=np.float64).ravel()
    y = as_outcome(y)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return Calibration(method="isotonic", x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist(), n=int(y.size))


def _fit(method: str, z: np.ndarray, y: np.ndarray) -> Calibration:
    if method == "platt":
        return fit_platt(z, y)
    if method == "isotonic":
        return fit_isotonic(_sigmoid(z).mean(axis=0), y)
    return Calibration(method="none", n=int(y.size))


def fit_calibration(logits, y, method: str = "auto", seed: int = 0, source: str = "validation split") -> Calibration:
    """Fit ``method`` (none / platt / isotonic / auto) on member logits and outcomes of the validation split."""
    z = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    y = as_outcome(y)
    if method != "auto":
        if method not in METHODS:
            raise CohortError(f"calibration method must be auto or one of {', '.join(METHODS)}")
        cal = _fit(method, z, y)
        cal.source, cal.chosen_by = source, "user"
        return cal
    from sklearn.model_selection import StratifiedKFold
    candidates = ["none", "platt"] + (["isotonic"] if y.size >= ISOTONIC_MIN_AUTO else [])
    k = int(min(5, np.bincount(y.astype(int), minlength=2).min()))
    if k < 2:
        raise CohortError("calibration needs at least 2 patients with and 2 without the outcome in the validation split")
    scores = {}
    folds = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(z.T, y))
    for m in candidates:
        squared = np.empty(y.size)
        try:
            for fit_rows, held in folds:
                cal = _fit(m, z[:, fit_rows], y[fit_rows])
                squared[held] = (cal.apply_logits(z[:, held]) - y[held]) ** 2
        except CohortError:  # e.g. a fold the risks separate perfectly: this method is not a candidate
            continue
        scores[m] = float(squared.mean())
    best = min(scores, key=scores.get)
    cal = _fit(best, z, y)
    cal.source, cal.chosen_by, cal.cv_brier = source, "validation brier (5-fold cv)", scores
    return cal
