"""Feature schema: what each column of a cohort means in the clinic.

A schema names, for every column, its role (feature / target / ignored), its kind, a clinical label
(English and Chinese), a unit, a plausible range and, for codes, what each code means. The Cleveland
schema ships in ``assets/cleveland_schema.json``; for any other CSV :func:`infer_schema` builds one.

Kinds:
- ``numeric``: a measurement (mmHg, mg/dl, bpm, ...), scaled for the network.
- ``ordinal``: a count or grade with meaningful order (e.g. ``ca`` vessels 0-3): scaled like a number,
  shown with its code meanings.
- ``binary``: two codes (0/1, "Yes"/"No"); one input of the network.
- ``categorical``: unordered codes (chest-pain type); one-hot encoded.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator

from core.errors import CohortError, format_rows
from core.i18n import tr, unit_text
from core.metrics.discrimination import rank_auc

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CLEVELAND_COLUMNS = [
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
]

STATLOG_CLASS = "class"  # the UCI Statlog heart file's outcome: 1 = absent, 2 = present
Kind = Literal["numeric", "ordinal", "binary", "categorical"]
# The clinically sensible way to change a modifiable feature: a measurement down or up; codes toward the
# start or the end of the feature's ``codes`` list (fasting blood sugar "yes" -> "no" is "decrease").
Direction = Literal["decrease", "increase"]
# Which way clinical knowledge says a feature moves the probability of disease: "increases" means higher values
# (or, for codes, a code later in ``codes``; "yes" after "no") raise it. Checked against the model's own average
# direction (core.evaluate.directions) so a contradiction is said, never advised.
RiskDirection = Literal["increases", "decreases"]
Role = Literal["feature", "target", "ignored"]
CodeValue = Union[float, str]


class Code(BaseModel):
    """One code of a coded column and what it means."""
    value: CodeValue
    label: str
    label_zh: str | None = None


class Feature(BaseModel):
    name: str  # the column name exactly as the file gives it
    role: Role = "feature"
    kind: Kind = "numeric"
    label: str = ""
    label_zh: str | None = None
    unit: str | None = None
    min: float | None = None  # plausible range: values outside become missing, with a warning
    max: float | None = None
    codes: list[Code] = Field(default_factory=list)
    # May a treatment change it, and which way is clinically sensible. What-ifs move a feature only when
    # both are set (age, sex, symptoms and test results are not modifiable). Inferred schemas leave both
    # unset unless the clinical vocabulary knows the concept.
    modifiable: bool = False
    direction: Direction | None = None
    risk_direction: RiskDirection | None = None  # clinical direction of risk (None: not clearly ordered)
    step: float | None = None  # input step in the form (1 for bpm, 0.1 for mm)
    # What the column means in the clinic (assets/concepts.json) and how the file records it. The model
    # works in ``unit``; a file holding another unit (age in days, cholesterol in mmol/L) is converted on
    # reading, training and scoring alike: model value = file value * source_factor + source_offset.
    concept: str | None = None
    standard_code: str | None = None  # "LOINC 8480-6"
    source_unit: str | None = None
    source_factor: float = 1.0
    source_offset: float = 0.0
    not_measured: list[float] = Field(default_factory=list)  # file values that mean "not measured"
    negative_not_measured: bool = False
    excluded: str | None = None  # why a column is kept out of the model's inputs by default (identifier...)

    @property
    def is_measurement(self) -> bool:
        """A number the network scales: a measurement (numeric) or a count or grade (ordinal)."""
        return self.kind in ("numeric", "ordinal")

    @property
    def is_categorical(self) -> bool:
        """Binary or categorical: its values are codes, fed to the network by code (0/1 or one-hot)."""
        return self.kind in ("binary", "categorical")

    @property
    def is_coded(self) -> bool:
        """Read as a code's meaning ('asymptomatic', '2 vessels'): every categorical feature, and an ordinal
        one with code labels (scaled like a number, shown by its code). The one definition for reasons,
        what-ifs, the form and the figures."""
        return self.is_categorical or (self.kind == "ordinal" and bool(self.codes))

    @property
    def actionable(self) -> bool:
        """Modifiable with a known clinical direction: the only features a what-if may move."""
        return self.modifiable and self.direction is not None

    def allowed_move(self, old, new) -> bool:
        """Does ``old`` -> ``new`` go the clinically sensible way (numbers by value, codes by their order
        in ``codes``)? False for a feature that is not actionable."""
        if not self.actionable:
            return False
        if self.codes and self.is_categorical:
            order = self.code_values()
            i = next((k for k, c in enumerate(order) if same_value(c, old)), None)
            k = next((k for k, c in enumerate(order) if same_value(c, new)), None)
            if i is None or k is None:
                return False
            step = k - i
        else:
            try:
                step = float(new) - float(old)
            except (TypeError, ValueError):
                return False
        return step < 0 if self.direction == "decrease" else step > 0

    def display_label(self, lang: str = "en") -> str:
        if lang == "zh" and self.label_zh:
            return self.label_zh
        return self.label or self.name

    def code_label(self, value, lang: str = "en") -> str:
        for code in self.codes:
            if same_value(code.value, value):
                return (code.label_zh if lang == "zh" and code.label_zh else code.label)
        return str(value)

    def code_values(self) -> list:
        return [c.value for c in self.codes]

    def format_value(self, value, lang: str = "en") -> str:
        """A value as a clinician reads it: '145 mmHg', 'typical angina', 'missing'."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return tr("value.missing", lang)
        if self.is_coded:
            if self.codes:
                return self.code_label(value, lang)
            return str(value)
        text = number_text(float(value), 0 if (self.step or 1) >= 1 else 1)
        unit = unit_text(self.unit, lang)
        return f"{text} {unit}" if unit else text

    def display_unit(self, lang: str = "en") -> str:
        """The unit as written in ``lang`` ('岁' for years; mmHg stays mmHg)."""
        return unit_text(self.unit, lang)


def number_text(value: float, decimals: int, extra: int = 2) -> str:
    """A number at the unit's resolution, or with up to ``extra`` more decimals when it has them: a value
    is shown at the precision it is used (77.77 years is not shown as 78; issue 18.10)."""
    for d in range(decimals, decimals + extra + 1):
        text = f"{value:.{d}f}"
        if abs(float(text) - value) <= 1e-9 * max(1.0, abs(value)):
            return text
    return text


def same_value(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


_RULE = re.compile(r"^\s*(>=|<=|==|!=|>|<|=|in)\s*(.+?)\s*$", re.IGNORECASE)


def parse_rule(rule: str):
    """Parse a positive-outcome rule such as ``> 0``, ``== "Yes"``, ``in 1,2,3``.

    Returns a function Series -> boolean Series (missing outcome stays missing: NaN in, NaN out).
    No eval: the rule is parsed, so a rule from a user cannot run code.
    """
    match = _RULE.match(rule or "")
    if not match:
        raise CohortError(f"outcome rule {rule!r} is not understood; write e.g. '> 0', '== Yes' or 'in 1,2'")
    op, operand = match.group(1).lower(), match.group(2)
    if op == "=":
        op = "=="
    if op == "in":
        values = [_parse_literal(v) for v in operand.split(",") if v.strip()]
    else:
        values = [_parse_literal(operand)]
    numeric_ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}

    def apply(series: pd.Series) -> pd.Series:
        missing = series.isna()
        if op in numeric_ops:
            if not isinstance(values[0], float):
                raise CohortError(f"outcome rule {rule!r} compares with text; use '==' for text")
            numbers = pd.to_numeric(series, errors="coerce")
            bad = numbers.isna() & ~missing
            if bad.any():
                raise CohortError(
                    f"outcome rule {rule!r} needs numbers but the outcome column has text "
                    f"in {int(bad.sum())} rows ({format_rows(np.flatnonzero(bad.to_numpy()))})")
            out = numeric_ops[op](numbers.to_numpy(dtype=float), values[0])
        else:
            hits = np.zeros(len(series), dtype=bool)
            for v in values:
                hits |= np.array([(not m) and same_value(x, v) for x, m in zip(series, missing)])
            out = ~hits if op == "!=" else hits
        result = pd.Series(out.astype(float), index=series.index)
        result[missing] = np.nan
        return result

    apply.rule = rule
    return apply


def _parse_literal(text: str) -> CodeValue:
    text = text.strip().strip("'\"")
    try:
        return float(text)
    except ValueError:
        return text




class Schema(BaseModel):
    """All columns of a cohort, the target column and the rule that makes it a binary outcome."""
    features: list[Feature]
    target: str | None = None
    positive_rule: str | None = None
    source: str = "inferred"  # 'uci-cleveland' for the shipped schema
    outcome_label: str | None = None  # what the outcome means ("10-year coronary heart disease")
    outcome_label_zh: str | None = None

    @field_validator("features")
    @classmethod
    def _unique_names(cls, v):
        names = [f.name for f in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names in schema: {dupes}")
        return v

    @model_validator(mode="after")
    def _cleveland_directions(self):
        # Bundles saved before features had a direction marked trestbps, chol and fbs modifiable with no
        # direction; for the Cleveland columns the shipped schema knows it (a what-if needs it to move them).
        if self.source == "uci-cleveland" and any(f.modifiable and f.direction is None for f in self.features):
            shipped = {f.name: f for f in cleveland_schema().features}
            for f in self.features:
                if f.modifiable and f.direction is None and f.name in shipped:
                    f.modifiable, f.direction = shipped[f.name].modifiable, shipped[f.name].direction
        # Bundles saved before features had a risk direction: the shipped schema knows the Cleveland ones.
        if self.source == "uci-cleveland" and all(f.risk_direction is None for f in self.features):
            shipped = {f.name: f for f in cleveland_schema().features}
            for f in self.features:
                if f.name in shipped and f.kind == shipped[f.name].kind:
                    f.risk_direction = shipped[f.name].risk_direction
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features if f.role == "feature"]

    @property
    def model_features(self) -> list[Feature]:
        return [f for f in self.features if f.role == "feature"]

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(f.name == name for f in self.features)

    def outcome(self, df: pd.DataFrame) -> pd.Series:
        """The binary outcome (1.0 / 0.0 / NaN) derived from the target by the positive rule."""
        if not self.target:
            raise CohortError("no target column is chosen")
        if self.target not in df.columns:
            raise CohortError(f"target column {self.target!r} is not in the file; columns are {list(df.columns)}")
        return parse_rule(self.positive_rule or "> 0")(df[self.target])

    def outcome_name(self, lang: str = "en") -> str | None:
        """What the risk is a risk of, for a cohort that is not the UCI one: the user's words, else the
        target and its rule ('cardio > 0'). None for the UCI layouts (their own wording applies)."""
        if self.source == "uci-cleveland":
            return None
        if lang == "zh" and self.outcome_label_zh:
            return self.outcome_label_zh
        if self.outcome_label:
            return self.outcome_label
        return f"{self.target} {self.positive_rule or ''}".strip() if self.target else None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        return cls.model_validate_json(text)


def cleveland_schema() -> Schema:
    """The shipped schema of the UCI Cleveland heart-disease file (heart-disease.names)."""
    return Schema.from_json((ASSETS / "cleveland_schema.json").read_text(encoding="utf-8"))


def is_cleveland(columns) -> bool:
    return set(CLEVELAND_COLUMNS[:-1]).issubset(set(columns))


def infer_schema(df: pd.DataFrame, target: str | None = None, positive_rule: str | None = None,
                 max_codes: int = 10, map_features: Callable[[list[Feature]], list[Feature]] | None = None
                 ) -> Schema:
    """Infer a schema for a cohort that is not the Cleveland file.

    numeric vs coded is decided from the values: a column of text is coded; a numeric column with two
    distinct values is binary; an integer column with at most ``max_codes`` distinct values is categorical
    when it has at most 4 values (grades beyond that are treated as numbers). The plausible range is the
    observed range widened by half its width (the user edits it on the cohort page).
    Columns with one value, or text with more than ``max_codes`` distinct values (identifiers, free text),
    are ignored.

    ``map_features`` may replace inferred features by better-known ones (the clinical vocabulary does:
    :func:`core.data.concepts.infer_clinical_schema`). Identifiers, dates and near-perfect predictors of
    the outcome are kept out of the inputs, with the reason in ``Feature.excluded``.
    """
    if target is not None and target not in df.columns:
        raise CohortError(f"target column {target!r} is not in the file; columns are {list(df.columns)}")
    if is_cleveland(df.columns):
        base = cleveland_schema()
        known = {f.name: f for f in base.features}
        features = []
        for col in df.columns:
            if col in known:
                features.append(known[col].model_copy())
            elif col == STATLOG_CLASS:
                features.append(Feature(name=col, kind="binary", label="Heart disease", label_zh="心脏病",
                                        codes=[Code(value=1.0, label="absent", label_zh="无"),
                                               Code(value=2.0, label="present", label_zh="有")]))
            else:
                features.append(_infer_feature(col, df[col], max_codes))
        default_target = "num" if "num" in df.columns else (STATLOG_CLASS if STATLOG_CLASS in df.columns else None)
        target = target or default_target
        default_rule_ = {"num": "> 0", STATLOG_CLASS: "== 2"}.get(target) if target == default_target else None
        schema = Schema(features=features, target=target, positive_rule=positive_rule or default_rule_,
                        source="uci-cleveland", outcome_label="heart disease present",
                        outcome_label_zh="存在心脏病")
    else:
        features = [_infer_feature(col, df[col], max_codes) for col in df.columns]
        if map_features is not None:
            features = map_features(features)
        features = [_exclude_identifier(f, df[f.name]) if f.concept is None or df[f.name].isna().all() else f
                    for f in features]
        schema = Schema(features=features, target=target, positive_rule=positive_rule)
    if schema.target:
        tf = schema[schema.target]
        tf.role = "target"
        tf.excluded = None
        if schema.positive_rule is None:
            schema.positive_rule = default_rule(df[schema.target])
        if schema.source != "uci-cleveland":
            _exclude_leakage(schema, df)
    return schema


_ID_NAME = re.compile(
    r"^(id|ids|no|nr|num_?id|.*_id|id_.*|patient_?(id|no|number)|mrn|record(_?(id|no|number))?|"
    r"subject(_?id)?|case(_?(id|no))?|index|seqn|unnamed:? ?\d*|"
    r"编号|病历号|住院号|门诊号|序号|患者编号|病案号|身份证号)$", re.IGNORECASE)
_DATE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?)?\s*$")


def _exclude_identifier(f: Feature, series: pd.Series) -> Feature:
    """Record numbers, patient ids, MRN-like codes and dates identify a patient or a visit, not a risk: kept
    out of the model's inputs by default, with the reason (the user may put one back)."""
    values = series.dropna()
    if values.empty:
        return f.model_copy(update={"role": "ignored", "excluded": "no value in any patient"})
    reason = None
    text = values.astype(str).str.strip()
    if _ID_NAME.match(str(f.name).strip()):
        reason = "identifier: its name is that of a record number or patient id"
    elif text.str.match(_DATE).mean() > 0.9:
        reason = "date: a visit or birth date is not a risk factor"
    elif len(values) == len(series) and values.nunique() == len(values) and len(values) >= 20:
        numbers = pd.to_numeric(values, errors="coerce")
        # Integers count only when in file order (record numbers): 25 distinct heart rates are no identifier.
        record_numbers = (numbers.notna().all() and bool(np.all(np.mod(numbers, 1) == 0))
                          and (numbers.is_monotonic_increasing or numbers.is_monotonic_decreasing))
        if not numbers.notna().all() or record_numbers:
            reason = "identifier: a different value in every row"
    if reason is None:
        return f
    return f.model_copy(update={"role": "ignored", "excluded": reason})


LEAKAGE_AUC = 0.98


def _exclude_leakage(schema: Schema, df: pd.DataFrame) -> None:
    """A column that alone separates the outcome almost perfectly (AUC > 0.98) is almost always recorded
    after it (a diagnosis code, a follow-up result): kept out by default, with its AUC, in place."""
    try:
        y = schema.outcome(df).to_numpy()
    except CohortError:
        return
    for f in schema.model_features:
        x = pd.to_numeric(df[f.name], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 10 or np.unique(y[ok]).size < 2 or np.unique(x[ok]).size < 2:
            continue
        auc = rank_auc(y[ok], x[ok])  # numpy: importing scikit-learn's metrics costs seconds on an upload
        auc = max(auc, 1 - auc)
        if auc > LEAKAGE_AUC:
            f.role = "ignored"
            f.excluded = f"leakage: alone it predicts the outcome almost perfectly (AUC {auc:.3f})"


def default_rule(series: pd.Series) -> str | None:
    """A rule a user would expect for a target: 0/1 -> '> 0', Yes/No -> '== Yes'. None if unclear."""
    values = series.dropna().unique()
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    if len(values) and numbers.notna().all():
        return "> 0" if numbers.min() == 0 else None
    lowered = {str(v).strip().lower(): str(v) for v in values}
    for yes in ("yes", "true", "y", "positive", "1", "是", "有"):
        if yes in lowered and len(lowered) == 2:
            return f"== {lowered[yes]}"
    return None


def _infer_feature(name: str, series: pd.Series, max_codes: int) -> Feature:
    values = series.dropna()
    numbers = pd.to_numeric(values, errors="coerce")
    label = str(name).replace("_", " ").strip().capitalize()
    if len(values) == 0 or values.nunique() <= 1:
        return Feature(name=name, role="ignored", kind="numeric", label=label)
    if numbers.notna().mean() < 0.5:  # mostly text: a coded column
        uniques = sorted(values.astype(str).str.strip().unique())
        if len(uniques) > max_codes:
            return Feature(name=name, role="ignored", kind="categorical", label=label)
        kind = "binary" if len(uniques) == 2 else "categorical"
        return Feature(name=name, kind=kind, label=label, codes=[Code(value=u, label=u) for u in uniques])
    numbers = numbers.dropna()
    uniques = np.sort(numbers.unique())
    integer = bool(np.all(np.equal(np.mod(uniques, 1), 0)))
    if len(uniques) == 2:
        return Feature(name=name, kind="binary", label=label,
                       codes=[Code(value=float(u), label=_fmt(u)) for u in uniques])
    if integer and len(uniques) <= 4:
        return Feature(name=name, kind="categorical", label=label,
                       codes=[Code(value=float(u), label=_fmt(u)) for u in uniques])
    lo, hi = float(uniques[0]), float(uniques[-1])
    pad = (hi - lo) / 2
    # A non-negative measurement stays non-negative.
    low = lo - pad if lo < 0 else max(0.0, lo - pad)
    return Feature(name=name, kind="numeric", label=label, min=low, max=hi + pad, step=1.0 if integer else 0.1)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)
