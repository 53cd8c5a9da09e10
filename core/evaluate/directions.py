"""Which way the model moves the risk, feature by feature, and where that contradicts clinical knowledge.

The model's direction for a feature is a partial-dependence contrast over its saved training background:
every background patient is scored with the feature set to its low end and to its high end (a measurement's
lower and upper quartile in training, else its min and max; a code's first and last code in the schema's
order), all else as each patient had it; the difference of the mean estimates is the model's average effect.
Quartiles rather than the extremes: the ends of a training range hold a few patients, so a contrast there
is mostly extrapolation.

``Feature.risk_direction`` is the clinical one ("increases": higher values, or later codes, raise the
probability of disease). Where the two disagree (the demo model's risk falling with age), the pages, the
model card and the report say so: an artefact of the training data, never a finding or advice.
The what-if search uses the same contrast for its modifiable features
(:func:`core.workflow.counterfactual.direction_conflicts`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from core.data.schema import same_value
from core.i18n import tr

# A difference of mean estimates below half a percentage point is no direction at all: the demo model's
# cholesterol moved its mean 0.2 point the "wrong" way, noise that no sentence should call a contradiction.
DIRECTION_MARGIN = 0.005


@dataclass
class ModelDirection:
    """The model's average effect of moving one feature from its low end to its high end."""
    feature: str
    low: object  # clinical value at the low end (lower quartile, or the first code)
    high: object
    risk_low: float  # mean estimate over the training background with the feature set to ``low``
    risk_high: float
    n_train: int
    expected: str | None = None  # the clinical direction ("increases" / "decreases"), None if unknown

    @property
    def effect(self) -> float:
        return self.risk_high - self.risk_low

    @property
    def model_direction(self) -> str | None:
        if abs(self.effect) <= DIRECTION_MARGIN:
            return None
        return "increases" if self.effect > 0 else "decreases"

    @property
    def contradicts(self) -> bool:
        return self.expected is not None and self.model_direction not in (None, self.expected)

    def sentence(self, schema, lang: str = "en") -> str:
        return contradiction_sentence(self, schema, lang)


def code_rank(pre, j: int, index: float) -> int | None:
    """Where the code at ``index`` of the preprocessor's categories stands in the schema's ``codes`` list."""
    f = pre.features[j]
    cats = pre.categories_[f.name]
    k = int(index)
    if not 0 <= k < len(cats):
        return None
    order = f.code_values() or cats
    return next((i for i, c in enumerate(order) if same_value(c, cats[k])), None)


def training_background(model) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's saved training background (raw, imputed; empty when the model has none) and its row
    weights (a saved bundle keeps cluster centres, each standing for its share of the training patients)."""
    pre = model.preprocessor_
    background = getattr(model, "background_", None)
    if background is None or np.asarray(background).size == 0:
        return np.empty((0, len(pre.features))), None
    weights = getattr(model, "background_weights_", None)
    weights = None if weights is None or len(weights) != len(background) else np.asarray(weights, dtype=float)
    return pre.impute_raw(np.asarray(background, dtype=float)), weights


def _quantiles(values: np.ndarray, weights: np.ndarray | None, qs) -> list[float]:
    """Weighted quantiles (the lower one at each q): a saved bundle's background rows are cluster centres,
    each standing for its share of the training patients."""
    order = np.argsort(values)
    v = values[order]
    w = np.ones(len(v)) if weights is None else weights[order]
    cum = np.cumsum(w) / w.sum()
    return [float(v[min(int(np.searchsorted(cum, q)), len(v) - 1)]) for q in qs]


def _on_step(value: float, step: float | None) -> float:
    # a centre's mean age (52.75) is no patient's value: the contrast uses values on the input's step grid
    return float(np.round(value / step) * step) if step else float(value)


def model_directions(model, features: list[str] | None = None,
                     expected: dict[str, str | None] | None = None) -> list[ModelDirection]:
    """The model's average direction for ``features`` (default: every input with a clinical
    ``risk_direction``), in input order. ``expected`` overrides the schema's clinical direction by name.
    Empty when the model has no training background (or no preprocessor: a stand-in)."""
    pre, schema = getattr(model, "preprocessor_", None), model.schema
    if pre is None:
        return []
    background, weights = training_background(model)
    if len(background) == 0:
        return []
    n_train = int(getattr(model, "n_train_", None) or len(background))
    expected = dict(expected or {})
    out = []
    for j, f in enumerate(pre.features):
        sf = schema[f.name] if f.name in schema else f
        clinical = expected[f.name] if f.name in expected else sf.risk_direction
        if (features is None and clinical is None) or (features is not None and f.name not in features):
            continue
        if f.is_categorical:
            cats = pre.categories_[f.name]
            ranked = sorted((r, k) for k in range(len(cats)) if (r := code_rank(pre, j, k)) is not None)
            if len(ranked) < 2:
                continue
            low_raw, high_raw = float(ranked[0][1]), float(ranked[-1][1])
        else:
            seen = background[:, j]
            low_raw, high_raw = (_on_step(q, f.step) for q in _quantiles(seen, weights, (0.25, 0.75)))
            if high_raw <= low_raw:
                low_raw, high_raw = float(seen.min()), float(seen.max())
            if high_raw <= low_raw:
                continue
        mean = []
        for value in (low_raw, high_raw):
            rows = background.copy()
            rows[:, j] = value
            mean.append(float(np.average(model.predict_risk_raw(rows), weights=weights)))
        out.append(ModelDirection(feature=f.name, low=pre.decode_value(j, low_raw),
                                  high=pre.decode_value(j, high_raw), risk_low=mean[0], risk_high=mean[1],
                                  n_train=n_train, expected=clinical))
    return out


def directions_to_json(directions: list[ModelDirection]) -> list[dict]:
    """Plain JSON for the bundle's metadata (the model card has no model to compute them from)."""
    def plain(v):
        return v.item() if isinstance(v, np.generic) else v
    return [{k: plain(v) for k, v in asdict(d).items()} for d in directions]


def directions_from_json(items) -> list[ModelDirection]:
    names = {f.name for f in fields(ModelDirection)}
    return [ModelDirection(**{k: v for k, v in item.items() if k in names}) for item in items or []
            if isinstance(item, dict) and names <= set(item) | {"expected"}]


def direction_contradictions(model) -> list[ModelDirection]:
    """The features whose average direction in this model is the opposite of the clinical one."""
    return [d for d in model_directions(model) if d.contradicts]


def _lower_first(text: str) -> str:
    # "Age" reads "age" mid-sentence; "ST depression" keeps its capitals
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def contradiction_sentence(direction: ModelDirection, schema, lang: str = "en") -> str:
    """'In this model, higher age lowers the estimate (...), contrary to clinical knowledge: an artefact of
    the training data, not a finding.' From the translation table."""
    f = schema[direction.feature]
    verb = tr("direction.raises", lang) if direction.effect > 0 else tr("direction.lowers", lang)
    label = f.display_label(lang)
    words = {"feature": label, "feature_lower": _lower_first(label), "verb": verb,
             "low": f.format_value(direction.low, lang), "high": f.format_value(direction.high, lang),
             "risk_low": f"{direction.risk_low:.1%}", "risk_high": f"{direction.risk_high:.1%}",
             "n": direction.n_train}
    if f.is_categorical:
        return tr("direction.contradiction_coded", lang, **words)
    return tr("direction.contradiction_numeric", lang, **words)
