"""A cohort: the clean table, its outcome, schema and validation problems.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.read import ReadResult, read_table
from core.data.concepts import infer_clinical_schema
from core.data.schema import Schema, parse_rule
from core.data.validation import Problem, validate
from core.errors import CohortError


@dataclass
class Cohort:
    name: str
    df: pd.DataFrame  # clean: impossible values missing, rows without an outcome dropped
    y: np.ndarray  # 1.0 = outcome present
    schema: Schema
    problems: list[Problem]
    synthetic: bool = False
    read: ReadResult | None = None
    rows_in: int = 0
    fingerprint: str = field(init=False)

    def __post_init__(self):
        self.fingerprint = table_fingerprint(self.df)

    @property
    def n(self) -> int:
        return int(len(self.y))

    @property
    def prevalence(self) -> float:
        return float(np.mean(self.y)) if len(self.y) else float("nan")


def table_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of the table as canonical CSV (columns in order, round-trip floats, empty = missing)."""
    canonical = df.to_csv(index=False, lineterminator="\n", na_rep="")  # floats: shortest round-trip repr
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cohort_from_frame(df: pd.DataFrame, schema: Schema, name: str, synthetic: bool = False,
                      missing: str = "impute") -> Cohort:
    result = validate(df, schema, missing=missing)
    return Cohort(name, result.df, result.y, result.schema or schema, result.problems, synthetic,
                  rows_in=result.rows_in)


def load_cohort(source, *, target: str | None = None, positive_rule: str | None = None,
                schema: Schema | None = None, missing: str = "impute", name: str | None = None,
                include: list[str] | None = None) -> Cohort:
    """Read, understand (schema given or inferred; Cleveland recognised) and validate a cohort file.

    ``include`` puts back columns the inference kept out of the inputs (identifiers, dates, leakage)."""
    read = read_table(source, name=name)
    if schema is None:
        # ±inf would widen an inferred plausible range to infinity; validate reports them instead.
        finite = read.df.replace([np.inf, -np.inf], np.nan)
        schema = infer_clinical_schema(finite, target=target, positive_rule=positive_rule)
        for column in include or []:
            if column not in schema or column == schema.target:
                raise CohortError(f"--include: {column!r} is not a column that can be an input; columns are "
                                  f"{[f.name for f in schema.features if f.role != 'target']}")
            schema[column].role, schema[column].excluded = "feature", None
    elif target is not None or positive_rule is not None:
        schema = _retarget(schema, target, positive_rule)
    cohort = cohort_from_frame(read.df, schema, read.name, missing=missing)
    cohort.read = read
    return cohort


def _retarget(schema: Schema, target: str | None, positive_rule: str | None) -> Schema:
    schema = schema.model_copy(deep=True)
    if target is not None and target != schema.target:
        if target not in schema:
            raise CohortError(f"target column {target!r} is not in the schema; columns are "
                              f"{[f.name for f in schema.features]}")
        if schema.target in schema:
            schema[schema.target].role = "ignored"  # the old outcome must not become a feature
        schema[target].role = "target"
        schema.target = target
        schema.positive_rule = None
    if positive_rule is not None:
        parse_rule(positive_rule)  # refuse a bad rule now, with its own message
        schema.positive_rule = positive_rule
    return schema
