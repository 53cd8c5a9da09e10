"""Validation of a cohort table against its schema (pandera reports the failures).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.read import MIN_ROWS, MISSING_MARKERS
from core.data.schema import Schema, default_rule
from core.errors import CohortError, format_rows


@dataclass
class Problem:
    column: str
    rule: str  # text | infinite | range | code | missing | outcome-missing
    rows: list[int]  # 1-based data rows of the table that was validated
    count: int
    severity: str  # 'error' | 'warning'
    action: str
    detail: str = ""

    @property
    def message(self) -> str:
        if not self.rows:  # a whole column (identifier, date, leakage)
            return f"{self.column}: {self.detail} → {self.action}"
        rows = format_rows([r - 1 for r in self.rows])
        return f"{self.column}: {self.detail}, {'row' if self.count == 1 else 'rows'} {rows} → {self.action}"


@dataclass
class ValidationResult:
    df: pd.DataFrame
    y: np.ndarray
    problems: list[Problem]
    rows_in: int
    rows_out: int
    rule: str = ""
    schema: Schema | None = None  # the schema the table fits: all-missing features dropped from the inputs

    def report_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"column": p.column, "rule": p.rule, "count": p.count, "rows": format_rows([r - 1 for r in p.rows]),
              "severity": p.severity, "action": p.action} for p in self.problems],
            columns=["column", "rule", "count", "rows", "severity", "action"])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _problem(column, rule, mask, severity, action, what) -> Problem:
    rows = (np.flatnonzero(np.asarray(mask, dtype=bool)) + 1).tolist()
    return Problem(column, rule, rows, len(rows), severity, action, f"{_plural(len(rows), what[0])}{what[1]}")


def _range_text(f) -> str:
    unit = f" {f.unit}" if f.unit else ""
    fmt = lambda v: f"{v:g}"  # noqa: E731 - a bound of the schema, not a patient value
    if f.min is not None and f.max is not None:
        return f" outside {fmt(f.min)}–{fmt(f.max)}{unit}"
    return f" below {fmt(f.min)}{unit}" if f.min is not None else f" above {fmt(f.max)}{unit}"


Rule = Callable[[pd.Series], pd.Series]


def _code_rule(f) -> Rule:
    codes = f.code_values()
    if all(isinstance(c, float) for c in codes):
        values = [float(c) for c in codes]
        return lambda s: pd.to_numeric(s, errors="coerce").isin(values)
    texts = [str(c) for c in codes]
    return lambda s: s.astype(str).str.strip().isin(texts)


def _rules(schema: Schema) -> dict[str, list[tuple[str, Rule]]]:
    """Column -> (check name, test of the non-missing cells) for every model feature."""
    rules = {}
    for f in schema.model_features:
        checks: list[tuple[str, Rule]] = []
        if f.is_measurement:
            lo = -np.inf if f.min is None else f.min
            hi = np.inf if f.max is None else f.max
            checks.append(("infinite", lambda s: ~np.isinf(s)))
            if f.min is not None or f.max is not None:  # inf is reported once, as infinite
                checks.append(("range", lambda s, lo=lo, hi=hi: np.isinf(s) | s.between(lo, hi)))
        if f.is_coded and f.codes:
            checks.append(("code", _code_rule(f)))
        rules[f.name] = checks
    return rules


def _failures(rules: dict[str, list[tuple[str, Rule]]], data: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(column, check) -> positions of the rows that fail it (pandera, lazily: all failures at once).

    A cohort that breaks no rule (the usual case, the demo cohort always) is answered without pandera:
    importing it costs ~0.4 s (it pulls in hypothesis and typeguard when they are installed), a seventh
    of the first page's budget. Both paths apply the same rules to the same non-missing cells."""
    if all(bool(rule(data[col].dropna()).all()) for col, checks in rules.items() for _, rule in checks):
        return {}
    import pandera.pandas as pa
    columns = {col: pa.Column(nullable=True, checks=[pa.Check(rule, name=name) for name, rule in checks])
               for col, checks in rules.items()}
    pschema = pa.DataFrameSchema(columns, strict=False)
    try:
        pschema.validate(data, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases.dropna(subset=["index"])
        return {(col, check): np.unique(part["index"].astype(int).to_numpy())
                for (col, check), part in fc.groupby(["column", "check"])}
    return {}


def _strip_markers(data: pd.DataFrame, columns: list[str]) -> None:
    """Text cells stripped and missing markers ("?", "NA", ...) made missing, in place."""
    for col in columns:
        if not pd.api.types.is_numeric_dtype(data[col]):
            cells = data[col].astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
            data[col] = cells.where(~cells.isin(MISSING_MARKERS), np.nan)


def _code_text(f, code) -> str:
    """A code of the schema as the file should hold it, with its meaning: '3 = normal'."""
    value = int(code) if isinstance(code, float) and code.is_integer() else code
    label = f.code_label(code)
    return str(value) if label == str(value) else f"{value} = {label}"


def _check_values(data: pd.DataFrame, schema: Schema) -> list[Problem]:
    """Text in numeric columns (errors), ±inf, impossible values and unknown codes (warnings: the cells
    are set to missing in ``data``, whose index must be 0..n-1)."""
    rows_in = len(data)
    problems: list[Problem] = []
    for f in schema.model_features:
        if f.is_measurement:
            numbers = pd.to_numeric(data[f.name], errors="coerce").astype(float)
            text = numbers.isna() & data[f.name].notna()
            if text.any():
                problems.append(_problem(f.name, "text", text, "error", "refused: fix the file",
                                         ("text value", " in a numeric column")))
            data[f.name] = numbers
    problems += _not_measured(data, schema)
    order = {f.name: k for k, f in enumerate(schema.features)}
    failures = _failures(_rules(schema), data)
    for (col, check), positions in sorted(failures.items(), key=lambda item: order[item[0][0]]):
        f = schema[col]
        mask = np.zeros(rows_in, dtype=bool)
        mask[positions] = True
        if check == "infinite":
            what = ("infinite value", "")
        elif check == "range":
            converted = f" (converted from {f.source_unit})" if f.source_unit else ""
            what = ("value", _range_text(f) + converted)
        else:
            what = ("unknown code", f" (known: {', '.join(_code_text(f, c) for c in f.code_values())})")
        problems.append(_problem(col, check, mask, "warning", "set to missing", what))
        data.loc[mask, col] = np.nan
    for f in schema.model_features:  # numeric codes as floats, once unknown codes (text too) are gone
        if f.codes and all(isinstance(c, float) for c in f.code_values()):
            data[f.name] = pd.to_numeric(data[f.name], errors="coerce").astype(float)
    problems += _cross_column(data, schema)
    return problems


def _not_measured(data: pd.DataFrame, schema: Schema) -> list[Problem]:
    """Values that mean "not measured" in the file (0 mmHg, cholesterol 0, -9, 999, negative) become missing,
    then a column recorded in another unit is converted to the model's (age in days -> years), in place."""
    problems = []
    for f in schema.model_features:
        if not f.not_measured and not f.negative_not_measured and not f.source_unit:
            continue
        numbers = pd.to_numeric(data[f.name], errors="coerce")
        if f.is_categorical and numbers.isna().gt(data[f.name].isna()).any():
            continue  # text codes: the vocabulary's numbers do not apply
        sentinel = numbers.isin(f.not_measured)
        negative = (numbers < 0) & ~sentinel if f.negative_not_measured else pd.Series(False, index=numbers.index)
        codes = ", ".join(f"{v:g}" for v in f.not_measured)
        for mask, what in ((sentinel, f" coded as not measured (one of {codes})"),
                           (negative, " below 0 (not measured)")):
            if mask.any():
                problems.append(_problem(f.name, "not-measured", mask.to_numpy(), "warning", "set to missing",
                                         ("value", what)))
        numbers = numbers.astype(float).where(~(sentinel | negative))
        if f.source_unit:
            numbers = numbers * f.source_factor + f.source_offset
        if f.is_measurement or f.source_unit:
            data[f.name] = numbers
        else:
            data[f.name] = data[f.name].where(~(sentinel | negative))
    return problems


def _concept_column(schema: Schema, concept: str) -> str | None:
    for f in schema.model_features:
        if f.concept == concept:
            return f.name
    return None


def _cross_column(data: pd.DataFrame, schema: Schema) -> list[Problem]:
    """Rules between columns: a diastolic pressure at or above the systolic one, and a height and weight
    giving a BMI outside 10-80 kg/m², cannot both be right; both values become missing."""
    problems = []
    sbp, dbp = _concept_column(schema, "systolic_bp"), _concept_column(schema, "diastolic_bp")
    if sbp and dbp:
        mask = (data[dbp] >= data[sbp]).to_numpy()
        if mask.any():
            problems.append(_problem(f"{sbp}, {dbp}", "diastolic≥systolic", mask, "warning",
                                     "both set to missing", ("row", " with diastolic at or above systolic pressure")))
            data.loc[mask, [sbp, dbp]] = np.nan
    height, weight = _concept_column(schema, "height"), _concept_column(schema, "weight")
    if height and weight:
        bmi = data[weight] / (data[height] / 100.0) ** 2
        mask = ((bmi < 10) | (bmi > 80)).to_numpy()
        if mask.any():
            problems.append(_problem(f"{height}, {weight}", "bmi", mask, "warning", "both set to missing",
                                     ("row", " whose height and weight give a BMI outside 10–80 kg/m²")))
            data.loc[mask, [height, weight]] = np.nan
    return problems


def _drop_empty(data: pd.DataFrame, schema: Schema, keep: np.ndarray) -> tuple[Schema, list[Problem]]:
    """A feature with no value left in any patient (all missing, or all 'not measured') leaves the model's
    inputs with a report line: imputing it would invent one value for everyone."""
    empty = [f.name for f in schema.model_features if not data.loc[keep, f.name].notna().any()]
    if not empty or not keep.any():  # no row with an outcome: refused below with that reason
        return schema, []
    schema = schema.model_copy(deep=True)
    problems = []
    for name in empty:
        schema[name].role = "ignored"
        schema[name].excluded = "no value in any patient"
        problems.append(_problem(name, "all-missing", keep, "warning", "dropped from the model's inputs",
                                 ("missing value", " (no patient has one)")))
    return schema, problems


def _excluded(schema: Schema, rows: int) -> list[Problem]:
    """One report line per column kept out of the inputs by default (identifier, date, leakage)."""
    return [Problem(f.name, "excluded", [], 0, "warning",
                    "dropped from the model's inputs" if f.excluded.startswith("no value") else
                    "kept out of the model's inputs (can be put back)", f.excluded)
            for f in schema.features if f.role == "ignored" and f.excluded]


def check_features(df: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, list[Problem]]:
    """A table of patients to score, checked as a training cohort is: text in a numeric column, ±inf,
    values outside the plausible range and codes the schema does not know, then missing values; each a
    Problem naming column, rows and rule (never a value). Returns the feature columns with the offending
    cells missing. The caller decides what to refuse; the outcome column is not needed."""
    absent = [n for n in schema.feature_names if n not in df.columns]
    if absent:
        raise CohortError(f"columns the model needs are not in the file: {absent}; columns are {list(df.columns)}")
    names = [f.name for f in schema.model_features]
    data = df[names].copy().reset_index(drop=True)
    _strip_markers(data, names)
    problems = _check_values(data, schema)
    for f in schema.model_features:
        absent_values = data[f.name].isna().to_numpy()
        if absent_values.any():
            coded = f.is_categorical
            problems.append(_problem(f.name, "missing", absent_values, "warning",
                                     f"imputed from the training split's {'most frequent value' if coded else 'median'}",
                                     ("missing value", "")))
    return data, problems


def validate(df: pd.DataFrame, schema: Schema, missing: str = "impute") -> ValidationResult:
    """Check a table against a schema; return a clean copy, the 0/1 outcome and what was changed."""
    if missing not in ("impute", "drop"):
        raise CohortError(f"missing-value policy {missing!r} is not 'impute' or 'drop'")
    columns = list(df.columns)
    dupes = sorted({str(c) for c in columns if columns.count(c) > 1})
    if dupes:
        raise CohortError(f"duplicate column names: {dupes}")
    target = schema.target
    if not target:
        raise CohortError(f"no target column is chosen; columns are {columns}")
    if target not in df.columns:
        raise CohortError(f"target column {target!r} is not in the file; columns are {columns}")
    absent = [n for n in schema.feature_names if n not in df.columns]
    if absent:
        raise CohortError(f"columns the schema needs are not in the file: {absent}; columns are {columns}")
    rows_in = len(df)
    if rows_in < MIN_ROWS:
        raise CohortError(f"only {_plural(rows_in, 'row')}; at least {MIN_ROWS} are needed to train and test a model")
    if not schema.model_features:
        raise CohortError(f"no feature columns to learn from; columns are {columns}")
    data = df.copy().reset_index(drop=True)  # row labels become positions; the caller's frame is untouched
    _strip_markers(data, [f.name for f in schema.model_features] + [target])
    problems = _check_values(data, schema)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        exc = CohortError("; ".join(p.message for p in errors))
        exc.problems = problems
        raise exc

    outcome, rule = _outcome(data, schema)
    keep = outcome.notna().to_numpy().copy()
    if not keep.all():
        problems.append(_problem(target, "outcome-missing", ~keep, "warning", "rows dropped",
                                 ("row", " without an outcome")))
    excluded = _excluded(schema, rows_in)
    schema, dropped = _drop_empty(data, schema, keep)
    problems += dropped + excluded
    if not schema.model_features:
        raise CohortError(f"no feature column has any value to learn from; columns are {columns}")
    drop = np.zeros(rows_in, dtype=bool)
    for f in schema.model_features:
        absent_values = data[f.name].isna().to_numpy() & keep
        if absent_values.any():
            coded = f.is_categorical
            action = ("rows dropped" if missing == "drop" else
                      f"imputed from the training split's {'most frequent value' if coded else 'median'}")
            problems.append(_problem(f.name, "missing", absent_values, "warning", action, ("missing value", "")))
            drop |= absent_values
    if missing == "drop":
        keep &= ~drop
    clean = data[keep].reset_index(drop=True)
    y = outcome[keep].to_numpy(dtype=float)
    if len(clean) < MIN_ROWS:
        why = "; ".join(p.message for p in problems if p.action == "rows dropped")
        raise CohortError(f"only {_plural(len(clean), 'usable row')} of {rows_in}"
                          f"{f' ({why})' if why else ''}; at least {MIN_ROWS} are needed")
    if np.unique(y).size < 2:
        kind = "positive" if y[0] == 1 else "negative"
        raise CohortError(f"only one outcome class: all {len(y)} rows are {kind} ({target} {rule})")
    return ValidationResult(clean, y, problems, rows_in, len(clean), rule, schema)


def _outcome(data: pd.DataFrame, schema: Schema) -> tuple[pd.Series, str]:
    target, rule = schema.target, schema.positive_rule
    if rule is None:
        distinct = data[target].dropna().nunique()
        rule = default_rule(data[target]) if distinct <= 2 else None
        if rule is None:
            raise CohortError(f"target {target!r} has {distinct} distinct values; say which mean the outcome "
                              "with a rule such as '> 0', '== Yes' or 'in 1,2'")
    return schema.model_copy(update={"positive_rule": rule}).outcome(data), rule
