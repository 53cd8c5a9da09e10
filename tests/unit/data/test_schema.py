"""The schema contract: outcome rules, inference on a non-Cleveland table, row formatting, Cleveland labels."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import CohortError
from core.data import CLEVELAND_COLUMNS, Feature, cleveland_schema, default_rule, infer_schema, parse_rule
from core.errors import format_rows


def test_parse_rule_greater_than_keeps_missing_missing():
    out = parse_rule("> 0")(pd.Series([0, 1, 4, np.nan]))
    assert out.iloc[:3].tolist() == [0.0, 1.0, 1.0]
    assert math.isnan(out.iloc[3])


def test_parse_rule_equals_text_and_quoted():
    series = pd.Series(["Yes", "No", " Yes", None])
    for rule in ("== Yes", "= 'Yes'", '== "Yes"'):
        out = parse_rule(rule)(series)
        assert out.iloc[:2].tolist() == [1.0, 0.0], rule
        assert math.isnan(out.iloc[3])


def test_parse_rule_in_list_and_not_equal():
    series = pd.Series([0, 1, 2, 3])
    assert parse_rule("in 1,2")(series).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert parse_rule("!= 0")(series).tolist() == [0.0, 1.0, 1.0, 1.0]
    assert parse_rule(">= 2")(series).tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("rule", ["", "bigger than 0", "0 <", "import os"])
def test_bad_rule_raises_cohort_error(rule):
    with pytest.raises(CohortError, match="not understood"):
        parse_rule(rule)


def test_numeric_rule_on_text_outcome_names_rows_not_values():
    with pytest.raises(CohortError) as info:
        parse_rule("> 0")(pd.Series(["1", "sick", "0"]))
    assert "rows" in str(info.value) and "2" in str(info.value)
    assert "sick" not in str(info.value)


def test_default_rule():
    assert default_rule(pd.Series([0, 1, 1])) == "> 0"
    assert default_rule(pd.Series(["No", "Yes"])) == "== Yes"
    assert default_rule(pd.Series([1, 2])) is None


def _small_frame():
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "patient_id": [f"P{i:03d}" for i in range(n)],  # identifier: many text values -> ignored
        "smoker": rng.choice(["Yes", "No"], n),
        "ward": rng.choice(["A", "B", "C"], n),
        "ldl": rng.normal(130, 20, n).round(1),
        "visits": rng.integers(0, 30, n),
        "constant": 1.0,
        "stroke": rng.choice([0, 1], n),
    })


def test_infer_schema_on_a_non_cleveland_frame():
    schema = infer_schema(_small_frame(), target="stroke")
    assert schema.source == "inferred"
    assert schema["smoker"].kind == "binary"
    assert sorted(schema["smoker"].code_values()) == ["No", "Yes"]
    assert schema["ward"].kind == "categorical"
    assert schema["ldl"].kind == "numeric"
    assert schema["ldl"].min <= _small_frame()["ldl"].min() and schema["ldl"].max >= _small_frame()["ldl"].max()
    assert schema["visits"].kind == "numeric" and schema["visits"].step == 1.0
    assert schema["patient_id"].role == "ignored"
    assert schema["constant"].role == "ignored"
    assert schema["stroke"].role == "target" and schema.positive_rule == "> 0"
    assert "stroke" not in schema.feature_names


def test_infer_schema_unknown_target_names_columns():
    with pytest.raises(CohortError, match="ldl"):
        infer_schema(_small_frame(), target="outcome")


def test_infer_schema_recognises_cleveland_columns():
    df = pd.DataFrame({c: [0.0, 1.0, 2.0] for c in CLEVELAND_COLUMNS})
    schema = infer_schema(df)
    assert schema.source == "uci-cleveland"
    assert schema.target == "num" and schema.positive_rule == "> 0"
    assert schema["chol"].unit == "mg/dl"


def test_format_rows():
    assert format_rows([0, 1, 2, 4]) == "1–3, 5"
    assert format_rows([]) == ""
    assert format_rows([9]) == "10"
    long = format_rows(list(range(0, 40, 2)), limit=3)
    assert long.startswith("1, 3, 5, …") and "(20 rows)" in long


def test_cleveland_schema_labels_units_codes():
    schema = cleveland_schema()
    assert [f.name for f in schema.features] == CLEVELAND_COLUMNS
    assert schema.target == "num"
    assert schema["trestbps"].unit == "mmHg"
    assert schema["age"].display_label("zh") == "年龄"
    assert schema["cp"].kind == "categorical" and schema["cp"].code_values() == [1.0, 2.0, 3.0, 4.0]
    assert schema["cp"].code_label(4.0) == "asymptomatic"
    assert schema["thal"].code_values() == [3.0, 6.0, 7.0]
    assert schema["num"].role == "target"
    assert "num" not in schema.feature_names and len(schema.feature_names) == 13


def test_feature_format_value():
    schema = cleveland_schema()
    assert schema["trestbps"].format_value(145.0) == "145 mmHg"
    assert schema["sex"].format_value(1.0) == "male"
    assert schema["sex"].format_value(0.0, lang="zh") == "女"
    assert schema["age"].format_value(float("nan")) == "missing"
    assert schema["age"].format_value(None, lang="zh") == "缺失"
    # a value is shown at the precision it is used (issue 18.10): 77.77 years is not "78 years"
    assert Feature(name="oldpeak", step=0.1, unit="mm").format_value(2.34) == "2.34 mm"
    assert Feature(name="oldpeak", step=0.1, unit="mm").format_value(2.0) == "2.0 mm"
    assert schema["age"].format_value(77.77) == "77.77 years"
    assert schema["chol"].format_value(201.08412) == "201.08 mg/dl"  # at most two decimals beyond the unit's
    # a unit in words is translated; a symbol clinicians read in both languages stays
    assert schema["age"].format_value(56.0, lang="zh") == "56 岁"
    assert schema["trestbps"].format_value(145.0, lang="zh") == "145 mmHg"


def test_a_feature_says_what_kind_of_value_it_holds():
    code = [{"value": 1.0, "label": "one"}]
    cases = [  # kind, codes -> (is_measurement, is_categorical, is_coded)
        ("numeric", [], (True, False, False)),
        ("numeric", code, (True, False, False)),  # codes on a measurement are ignored, as everywhere
        ("ordinal", [], (True, False, False)),
        ("ordinal", code, (True, False, True)),  # 'ca': scaled like a number, read as '1 vessel'
        ("binary", [], (False, True, True)),
        ("binary", code, (False, True, True)),
        ("categorical", [], (False, True, True)),
        ("categorical", code, (False, True, True)),
    ]
    for kind, codes, expected in cases:
        f = Feature(name="x", kind=kind, codes=codes)
        assert (f.is_measurement, f.is_categorical, f.is_coded) == expected, (kind, codes)
    schema = cleveland_schema()
    assert [f.name for f in schema.model_features if f.is_coded] == ["sex", "cp", "fbs", "restecg", "exang",
                                                                      "slope", "ca", "thal"]
    assert "is_coded" not in schema.model_dump_json()  # knowledge, not a field saved in a bundle


def test_feature_knowledge_is_asked_of_the_feature():
    """One definition of a coded feature, a measurement: no module tests Feature.kind against a tuple of kinds
    (reasons and the what-ifs once read a code-less binary feature differently)."""
    from conftest import ROOT
    sources = [*ROOT.joinpath("core").rglob("*.py"), *ROOT.joinpath("ui").glob("*.py"),
               *ROOT.joinpath("pages").glob("*.py")]
    own_kinds = {"schema.py", "concepts.py"}  # where kinds are defined: Feature's, and a vocabulary Concept's
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sources if p.name not in own_kinds
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if "kind in (" in line and "row[" not in line]  # row["kind"]: the schema editor's text, not a Feature
    assert found == []
