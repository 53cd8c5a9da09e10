"""The clinical concept vocabulary (``assets/concepts.json``) and mapping a file's columns to it.

A concept is what a column *means* in the clinic, whatever the export calls it: systolic blood pressure is
``trestbps`` in the UCI files, ``ap_hi`` in one registry, ``sysBP`` in another and 收缩压 in a Chinese
hospital's. Each concept carries a standard code (LOINC, else SNOMED CT; left out where none was
checked), labels in English and Chinese, the canonical unit the model works in and the other units an export
may use (with the factor to the canonical one), a plausible range, the values that mean "not measured",
code meanings, its clinical role and, for a treatable risk factor, the direction a treatment moves it.

:func:`propose_mapping` matches columns by name and synonyms and then checks the values: a column whose name
says cholesterol but whose values are 2-15 is cholesterol in mmol/L; one whose values fit no unit (codes
1/2/3) is not mapped, and says why. :func:`apply_mapping` turns a confirmed mapping into schema features.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from core.data.schema import ASSETS, Code, Feature, Kind, Schema, default_rule, infer_schema

VOCABULARY_PATH = ASSETS / "concepts.json"
ClinicalRole = Literal["demographic", "history", "symptom", "test", "treatable"]


class StandardCode(BaseModel):
    system: Literal["LOINC", "SNOMED CT"]
    code: str = Field(pattern=r"^(\d{1,7}-\d|\d{6,18})$")  # LOINC nnnnn-n or a SNOMED CT identifier
    display: str

    @property
    def text(self) -> str:
        return f"{self.system} {self.code}"


class UnitConversion(BaseModel):
    """Another unit of the same measurement: ``canonical = value * factor + offset``."""
    unit: str
    factor: float = Field(gt=0)
    offset: float = 0.0
    typical: tuple[float, float]  # where a cohort's median falls when recorded in this unit


class ConceptCode(BaseModel):
    value: float
    label: str
    label_zh: str
    synonyms: list[str] = Field(default_factory=list)  # text an export writes for it: 男, M, Male; 是, Y, yes

    def spellings(self) -> set[str]:
        return {_code_key(s) for s in (self.label, self.label_zh, *self.synonyms)}


def _code_key(text) -> str:
    return unicodedata.normalize("NFKC", str(text)).strip().lower()


class Concept(BaseModel):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    label_zh: str
    clinical_role: ClinicalRole
    kind: Kind
    code: StandardCode | None = None
    unit: str | None = None
    typical: tuple[float, float] | None = None  # a cohort's median in the canonical unit
    units: list[UnitConversion] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    step: float | None = None
    not_measured: list[float] = Field(default_factory=list)
    negative_not_measured: bool = False
    codes: list[ConceptCode] = Field(default_factory=list)
    direction: Literal["decrease", "increase"] | None = None  # what a treatment aims for (Feature.direction)
    risk_direction: Literal["increases", "decreases"] | None = None  # clinical direction of risk (Feature's)
    synonyms: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind in ("binary", "categorical") and not self.codes:
            raise ValueError(f"{self.id}: a {self.kind} concept needs its codes")
        if self.kind == "numeric" and (self.unit is None or self.typical is None):
            raise ValueError(f"{self.id}: a measurement needs its canonical unit and typical range")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"{self.id}: plausible range {self.min}-{self.max} is empty")
        if self.direction and self.clinical_role != "treatable":
            raise ValueError(f"{self.id}: only a treatable risk factor has a direction of change")
        return self

    @property
    def modifiable(self) -> bool:
        return self.clinical_role == "treatable"

    def unit_conversion(self, unit: str | None) -> UnitConversion:
        if unit is None or unit == self.unit:
            return UnitConversion(unit=self.unit or "", factor=1.0, typical=self.typical or (0.0, 0.0))
        for u in self.units:
            if u.unit == unit:
                return u
        raise ValueError(f"{self.id}: unit {unit!r} is not one of {self.unit_names}")

    @property
    def unit_names(self) -> list[str]:
        return ([self.unit] if self.unit else []) + [u.unit for u in self.units]


class Vocabulary(BaseModel):
    version: int
    concepts: list[Concept]

    @model_validator(mode="after")
    def _unique(self):
        ids = [c.id for c in self.concepts]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate concept ids")
        seen: dict[str, str] = {}
        for c in self.concepts:
            for s in c.synonyms:
                key = normalise_name(s)
                if key in seen and seen[key] != c.id:
                    raise ValueError(f"synonym {s!r} belongs to both {seen[key]} and {c.id}")
                seen[key] = c.id
        return self

    def __getitem__(self, concept_id: str) -> Concept:
        for c in self.concepts:
            if c.id == concept_id:
                return c
        raise KeyError(concept_id)

    @functools.cached_property
    def by_synonym(self) -> dict[str, Concept]:
        return {normalise_name(s): c for c in self.concepts for s in c.synonyms}


@functools.lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    return Vocabulary.model_validate_json(VOCABULARY_PATH.read_text(encoding="utf-8"))


def normalise_name(name: str) -> str:
    """'RestingBP', 'resting_bp', ' Resting BP (mmHg)' -> 'restingbp'; Chinese kept as written."""
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    text = re.sub(r"[(（\[].*?[)）\]]", "", text)  # a unit in brackets: 'chol (mmol/L)'
    return re.sub(r"[\s_\-.:/]+", "", text)


# A unit written into a column's name ('age_days', 'totChol_mmol', 'chol (mmol/L)', 'age in days'), keyed
# by the unit with separators removed, to the vocabulary's unit name. Hand-written: no library maps an
# export's ad-hoc unit abbreviations to UCUM-like names.
NAME_UNITS = {
    "days": "days", "day": "days", "years": "years", "year": "years", "yrs": "years", "yr": "years",
    "months": "months", "mmol": "mmol/L", "mmoll": "mmol/L", "mgdl": "mg/dl",
    "umoll": "µmol/L", "µmoll": "µmol/L", "umol": "µmol/L", "kg": "kg", "lb": "lb", "lbs": "lb",
    "cm": "cm", "m": "m", "in": "in", "inch": "in", "inches": "in", "bpm": "bpm", "mmhg": "mmHg",
    "pct": "%", "percent": "%", "%": "%", "mmolmol": "mmol/mol"}
_SEPARATORS = re.compile(r"[\s_\-.]+")


def _unit_key(text: str) -> str:
    return re.sub(r"[\s_\-./]+", "", text)


def split_unit(name: str) -> tuple[str, str | None]:
    """(stem, unit) of a column name whose end says its unit: 'age_days' -> ('age', 'days'),
    'totChol_mmol' -> ('totchol', 'mmol/L'), 'Chol [mg/dL]' -> ('chol', 'mg/dl'), 'age in days' ->
    ('age', 'days'); (name, None) when it names no unit."""
    written = unicodedata.normalize("NFKC", str(name)).strip()
    text = written.lower()
    bracket = re.fullmatch(r"(.*?)\s*[(（\[]([^)）\]]*)[)）\]]\s*", text)
    if bracket and bracket.group(1).strip():
        unit = NAME_UNITS.get(_unit_key(bracket.group(2)))
        return (bracket.group(1).strip(), unit) if unit else (text, None)
    # camelCase words are words too ('totCholMmol', 'ageDays'): a separator before each inner capital
    # (marked with \0, dropped from the stem: 'totCholMmol' -> 'totchol', as 'totChol_mmol')
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "\0", written).lower()
    # every separator from the right: 'ldl_mg_dl' is ('ldl', 'mg_dl'), not ('ldl_mg', 'dl')
    for sep in reversed(list(re.finditer(r"[\s_\-.\0]+", split))):
        stem, tail = split[:sep.start()].replace("\0", ""), _unit_key(split[sep.end():].replace("\0", ""))
        if not stem.strip():
            continue
        if tail in NAME_UNITS:
            return re.sub(r"[\s_\-.]+in$", "", stem), NAME_UNITS[tail]  # 'age in days': stem 'age'
        if tail.startswith("in") and tail[2:] in NAME_UNITS:  # 'age in days'
            return stem, NAME_UNITS[tail[2:]]
    return text, None


def _name_unit(concept: Concept, unit: str | None) -> str | None:
    """The concept's own spelling of a unit read from a column name (mg/dl vs mg/dL), None if not its."""
    for u in concept.unit_names:
        if unit is not None and u.lower() == unit.lower():
            return u
    return None


# ---- mapping -----------------------------------------------------------------------------------
class ColumnMapping(BaseModel):
    """What one column is proposed (or confirmed) to be, and why."""
    column: str
    concept: str | None = None
    unit: str | None = None  # the unit the file holds; None = the concept's canonical unit
    evidence: list[str] = Field(default_factory=list)
    text_codes: dict[str, float] | None = None  # a text-coded column: the file's text -> the concept's code


def _numbers(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _measured(concept: Concept, values: np.ndarray) -> np.ndarray:
    """The values left once the ones that mean 'not measured' are set aside."""
    keep = ~np.isin(values, concept.not_measured)
    if concept.negative_not_measured:
        keep &= values >= 0
    return values[keep]


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def detect_unit(concept: Concept, series: pd.Series) -> tuple[str | None, str | None, str]:
    """(unit, verdict, evidence) for a measurement column: the canonical unit or the accepted unit whose
    typical range holds the column's median (verdict 'ok'); verdict 'codes' or 'none' when the values fit
    no unit (codes 1/2/3 in a 'cholesterol' column): such a column is not mapped."""
    values = _measured(concept, _numbers(series))
    if values.size == 0:
        return concept.unit, "ok", "no measured values to check the unit"
    median = float(np.median(values))
    distinct = np.unique(values)
    if concept.kind == "numeric" and distinct.size <= 5 and np.all(distinct == np.round(distinct)):
        return None, "codes", (f"values {', '.join(_fmt(v) for v in distinct)} only: codes, not a measurement "
                               "in any unit")
    spread = f"values {_fmt(float(values.min()))}–{_fmt(float(values.max()))}, median {_fmt(median)}"
    candidates = [(concept.unit, concept.typical)] + [(u.unit, u.typical) for u in concept.units]
    for unit, typical in candidates:
        if typical is not None and typical[0] <= median <= typical[1]:
            return unit, "ok", f"{spread}: fits {unit}"
    return None, "none", f"{spread}: fits none of {', '.join(u for u, _ in candidates)}"


def _text_codes(concept: Concept, texts: list[str]) -> dict[str, float] | None:
    """The file's text codes -> the concept's codes when every one is a spelling of one of them (男/女,
    M/F, Male/Female, 是/否, Y/N, yes/no), else None."""
    out = {}
    for text in texts:
        matches = [c.value for c in concept.codes if _code_key(text) in c.spellings()]
        if len(matches) != 1:
            return None
        out[text] = matches[0]
    return out


def _codes_fit(concept: Concept, series: pd.Series) -> tuple[bool, str, dict[str, float] | None]:
    values = series.dropna()
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        distinct = sorted(values.astype(str).str.strip().unique())
        text_codes = _text_codes(concept, distinct)
        if text_codes is not None:
            meant = ", ".join(f"{k} = {concept_code_label(concept, v)}" for k, v in text_codes.items())
            return True, f"text codes {meant}: {concept.label}'s codes", text_codes
        return False, f"text codes ({', '.join(distinct[:6])}): their meaning is not the vocabulary's", None
    distinct = set(np.unique(numbers.to_numpy(dtype=float)).tolist()) - set(concept.not_measured)
    known = {c.value for c in concept.codes}
    if distinct <= known:
        return True, f"codes {', '.join(_fmt(v) for v in sorted(distinct))} are {concept.label}'s codes", None
    found = ", ".join(_fmt(v) for v in sorted(distinct)[:6])
    return False, f"codes {found} are not {concept.label}'s ({', '.join(_fmt(v) for v in sorted(known))})", None


def concept_code_label(concept: Concept, value: float) -> str:
    return next(c.label for c in concept.codes if c.value == value)


def propose_column(column: str, series: pd.Series, vocab: Vocabulary | None = None) -> ColumnMapping:
    vocab = vocab or vocabulary()
    stem, named_unit = split_unit(column)
    concept = vocab.by_synonym.get(normalise_name(column))
    if concept is None or (named_unit and vocab.by_synonym.get(normalise_name(stem)) is not concept):
        named_unit = None  # a unit only counts when the rest of the name is the same concept ('height_cm')
    if concept is None and stem != column:
        concept = vocab.by_synonym.get(normalise_name(stem))  # 'age_days' -> 'age', its unit 'days'
        named_unit = split_unit(column)[1] if concept is not None else None
    if concept is None:
        return ColumnMapping(column=column, evidence=["name matches no concept: inferred from the values"])
    evidence = [f"name {column!r}: {concept.label}" + (f" ({concept.code.text})" if concept.code else "")]
    if concept.kind == "numeric":
        unit, verdict, why = detect_unit(concept, series)
        evidence.append(why)
        name_unit = _name_unit(concept, named_unit)
        if named_unit is not None and name_unit is None:
            evidence.append(f"the name says {named_unit}, which is not a unit of {concept.label} "
                            f"({', '.join(concept.unit_names)})")
            return ColumnMapping(column=column, evidence=evidence + ["not mapped: inferred from the values"])
        if verdict != "ok":
            return ColumnMapping(column=column, evidence=evidence + ["not mapped: inferred from the values"])
        if name_unit is not None:
            if not _measured(concept, _numbers(series)).size:
                unit = name_unit  # no values to judge: the name is the only evidence
                evidence.append(f"the name says {name_unit}")
            elif name_unit == unit:
                evidence.append(f"the name says {name_unit}: agrees with the values")
            else:
                # The values win: they are what the model converts, and a header copied from another
                # export's template says the wrong unit more often than 200 patients' values fit the wrong
                # unit's range; converting by the name would turn 240 mg/dl into 9,281. Both are shown.
                evidence.append(f"the name says {name_unit} but the values fit {unit}: read as {unit} "
                                "(check the export)")
        return ColumnMapping(column=column, concept=concept.id, unit=None if unit == concept.unit else unit,
                             evidence=evidence)
    fits, why, text_codes = _codes_fit(concept, series)
    evidence.append(why)
    if not fits:
        return ColumnMapping(column=column, evidence=evidence + ["not mapped: inferred from the values"])
    return ColumnMapping(column=column, concept=concept.id, evidence=evidence, text_codes=text_codes)


def propose_mapping(df: pd.DataFrame, vocab: Vocabulary | None = None) -> list[ColumnMapping]:
    """One proposal per column; a concept is given to one column only (the first that claims it)."""
    vocab = vocab or vocabulary()
    taken: set[str] = set()
    out = []
    for col in df.columns:
        m = propose_column(col, df[col], vocab)
        if m.concept in taken:
            taken_note = f"{vocab[m.concept].label} is already an earlier column: inferred from the values"
            m = ColumnMapping(column=col, evidence=[*m.evidence, taken_note])
        if m.concept:
            taken.add(m.concept)
        out.append(m)
    return out


# Outcome columns of well-known cohorts (Framingham TenYearCHD, UCI num/class/target, Kaggle cardio and
# HeartDisease, heart-failure DEATH_EVENT), normalised as normalise_name does.
OUTCOME_NAMES = ("tenyearchd", "target", "num", "class", "cardio", "heartdisease", "outcome", "deathevent",
                 "output", "chd", "cvd", "label", "diagnosis", "结局", "结果", "是否患病")


def propose_target(df: pd.DataFrame) -> tuple[str, str] | None:
    """(column, positive rule) of the column whose name is a well-known outcome and whose values are binary
    (0/1, yes/no, Statlog's 1 = absent / 2 = present) or UCI's num 0-4 (> 0 = disease); None when no
    column is both, so that the user chooses."""
    by_key = {normalise_name(c): c for c in df.columns}
    for key in OUTCOME_NAMES:
        column = by_key.get(key)
        if column is None:
            continue
        values = df[column].dropna()
        numbers = pd.to_numeric(values, errors="coerce")
        if len(values) == 0:
            continue
        if numbers.notna().all():
            distinct = set(np.unique(numbers.to_numpy(dtype=float)).tolist())
            if distinct == {0.0, 1.0} or (key == "num" and {0.0, 1.0} <= distinct <= {0.0, 1.0, 2.0, 3.0, 4.0}):
                return column, "> 0"
            if distinct == {1.0, 2.0}:
                return column, "== 2"
            continue
        rule = default_rule(values)
        if rule is not None:
            return column, rule
    return None


def concept_feature(column: str, concept: Concept, unit: str | None = None, base: Feature | None = None,
                    text_codes: dict[str, float] | None = None) -> Feature:
    """The schema feature of a column that holds ``concept`` in ``unit`` (None: the canonical unit); with
    ``text_codes`` (file text -> concept code) the codes are the file's text with the concept's meaning, in
    the concept's order (female before male, no before yes)."""
    conv = concept.unit_conversion(unit)
    codes = [Code(value=float(c.value), label=c.label, label_zh=c.label_zh) for c in concept.codes]
    if text_codes:
        codes = [Code(value=text, label=c.label, label_zh=c.label_zh) for c in concept.codes
                 for text, v in text_codes.items() if v == c.value]
    fields = {
        "name": column, "role": base.role if base is not None else "feature", "kind": concept.kind,
        "label": concept.label, "label_zh": concept.label_zh, "unit": concept.unit,
        "min": concept.min, "max": concept.max,
        "codes": codes,
        "modifiable": concept.modifiable, "step": concept.step, "concept": concept.id,
        "standard_code": concept.code.text if concept.code else None,
        "source_unit": None if conv.factor == 1.0 and conv.offset == 0.0 else conv.unit,
        "source_factor": conv.factor, "source_offset": conv.offset,
        "not_measured": list(concept.not_measured), "negative_not_measured": concept.negative_not_measured}
    # the counterfactual search's field: a number (or codes, in their order) goes down or up
    fields["direction"] = concept.direction
    fields["risk_direction"] = concept.risk_direction
    return Feature(**fields)


def apply_mapping(features: list[Feature], mappings: list[ColumnMapping],
                  vocab: Vocabulary | None = None) -> list[Feature]:
    """Inferred features with each mapped column replaced by its concept's feature (role kept)."""
    vocab = vocab or vocabulary()
    by_column = {m.column: m for m in mappings if m.concept}
    out = []
    for f in features:
        m = by_column.get(f.name)
        out.append(concept_feature(f.name, vocab[m.concept], m.unit, base=f, text_codes=m.text_codes) if m else f)
    return out


def infer_clinical_schema(df: pd.DataFrame, target: str | None = None, positive_rule: str | None = None,
                          mapping: list[ColumnMapping] | None = None) -> Schema:
    """:func:`~core.data.schema.infer_schema` with every column that matches a concept (``mapping``, by
    default :func:`propose_mapping`'s) given the concept's label, unit, range, codes and unit conversion."""
    if mapping is None:
        mapping = propose_mapping(df.drop(columns=[target]) if target in df.columns else df)
    mapping = [m for m in mapping if m.column != target]
    return infer_schema(df, target=target, positive_rule=positive_rule,
                        map_features=lambda features: apply_mapping(features, mapping))
