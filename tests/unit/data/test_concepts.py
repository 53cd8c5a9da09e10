"""The clinical vocabulary (assets/concepts.json) and what it does to files with each trait of #15."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import trait_files as tf
from pydantic import ValidationError

from core.data import load_cohort, read_table
from core.data.concepts import VOCABULARY_PATH, Vocabulary, propose_mapping, vocabulary

REQUIRED = ["age", "sex", "systolic_bp", "diastolic_bp", "total_cholesterol", "hdl_cholesterol", "ldl_cholesterol",
            "triglycerides", "fasting_glucose", "hba1c", "bmi", "height", "weight", "heart_rate", "smoking",
            "cigs_per_day", "diabetes", "bp_treatment", "hypertension", "prior_stroke", "chest_pain_type",
            "resting_ecg", "max_heart_rate", "exercise_angina", "st_depression", "st_slope", "vessels", "thallium",
            "creatinine", "egfr", "family_history"]


def test_the_vocabulary_file_validates_and_has_every_concept_of_the_issue():
    vocab = vocabulary()
    ids = {c.id for c in vocab.concepts}
    assert set(REQUIRED) <= ids
    for c in vocab.concepts:
        assert c.label and c.label_zh and c.synonyms
        if c.clinical_role == "treatable" and c.kind == "numeric":
            assert c.direction == "decrease", c.id
    assert vocab["systolic_bp"].code.text == "LOINC 8480-6"
    assert vocab["total_cholesterol"].code.text == "LOINC 2093-3"
    assert vocab["diabetes"].code.text == "SNOMED CT 73211009"


@pytest.mark.parametrize("concept, unit, factor", [
    ("total_cholesterol", "mmol/L", 38.67), ("hdl_cholesterol", "mmol/L", 38.67), ("ldl_cholesterol", "mmol/L", 38.67),
    ("fasting_glucose", "mmol/L", 18.016), ("triglycerides", "mmol/L", 88.57), ("age", "days", 1 / 365.25),
    ("age", "months", 1 / 12), ("height", "m", 100.0), ("height", "in", 2.54), ("weight", "lb", 0.45359237)])
def test_unit_factors(concept, unit, factor):
    assert vocabulary()[concept].unit_conversion(unit).factor == pytest.approx(factor)


def test_a_broken_vocabulary_is_refused():
    data = json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))
    data["concepts"][0]["code"]["code"] = "not a code"
    with pytest.raises(ValidationError):
        Vocabulary.model_validate(data)
    data = json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))
    data["concepts"][1]["synonyms"].append("age")  # one name for two concepts
    with pytest.raises(ValidationError, match="synonym"):
        Vocabulary.model_validate(data)
    data = json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))
    sex = next(c for c in data["concepts"] if c["id"] == "sex")
    sex["direction"] = "decrease"  # sex is not a treatment target
    with pytest.raises(ValidationError, match="direction"):
        Vocabulary.model_validate(data)


@pytest.mark.parametrize("name", ["trestbps", "RestingBP", "sysBP", "ap_hi", "SBP", "systolic", "收缩压", "shousuoya",
                                  "Systolic BP (mmHg)"])
def test_systolic_pressure_is_found_under_its_export_names(name):
    df = pd.DataFrame({name: np.linspace(100, 170, 30)})
    (m,) = propose_mapping(df)
    assert m.concept == "systolic_bp" and m.unit is None
    assert any("name" in e for e in m.evidence) and any("mmHg" in e for e in m.evidence)


def test_value_ranges_choose_the_unit_and_codes_are_not_measurements():
    df = pd.DataFrame({"age": np.linspace(10000, 30000, 40), "chol": np.linspace(2, 15, 40),
                       "cholesterol": [1, 2, 3, 1] * 10, "glucose": np.linspace(4, 9, 40)})
    by = {m.column: m for m in propose_mapping(df)}
    assert (by["age"].concept, by["age"].unit) == ("age", "days")
    assert (by["chol"].concept, by["chol"].unit) == ("total_cholesterol", "mmol/L")
    assert by["cholesterol"].concept is None and "codes" in " ".join(by["cholesterol"].evidence)
    assert (by["glucose"].concept, by["glucose"].unit) == ("fasting_glucose", "mmol/L")


def messages(cohort) -> str:
    return "\n".join(p.message for p in cohort.problems)


def test_zeros_meaning_not_measured_become_missing_with_a_report_line():
    cohort = load_cohort(tf.csv_bytes(tf.zeros_for_missing()), target="outcome", name="zeros.csv")
    chol = cohort.schema["totChol"]
    assert (chol.concept, chol.unit, chol.min, chol.max) == ("total_cholesterol", "mg/dl", 80, 700)
    text = messages(cohort)
    assert "totChol: 3 values coded as not measured (one of 0, -9, -1, 999, 9999)" in text
    assert "rows 3, 6, 10 → set to missing" in text
    assert "sysBP: 1 value coded as not measured" in text
    assert (cohort.df["totChol"] > 0).all() | cohort.df["totChol"].isna().any()
    assert not (cohort.df["totChol"] == 0).any()


def test_mmol_cholesterol_is_converted_to_mg_dl():
    raw = tf.mmol_cholesterol()
    cohort = load_cohort(tf.csv_bytes(raw), target="outcome", name="mmol.csv")
    f = cohort.schema["totChol"]
    assert (f.unit, f.source_unit, f.source_factor) == ("mg/dl", "mmol/L", 38.67)
    assert cohort.df["totChol"].to_numpy() == pytest.approx(raw["totChol"].to_numpy() * 38.67)


def test_age_in_days_becomes_years():
    raw = tf.age_in_days()
    cohort = load_cohort(tf.csv_bytes(raw), target="outcome", name="days.csv")
    assert cohort.schema["age"].source_unit == "days" and cohort.schema["age"].unit == "years"
    assert cohort.df["age"].between(18, 110).all()
    assert cohort.df["age"].to_numpy() == pytest.approx(raw["age"].to_numpy() / 365.25)


def test_record_numbers_and_dates_are_kept_out_and_can_be_put_back():
    cohort = load_cohort(tf.csv_bytes(tf.record_numbers()), target="outcome", name="ids.csv")
    assert "id" not in cohort.schema.feature_names and "visit_date" not in cohort.schema.feature_names
    assert cohort.schema["id"].excluded.startswith("identifier")
    assert cohort.schema["visit_date"].excluded.startswith("date")
    text = messages(cohort)
    assert "id: identifier" in text and "kept out of the model's inputs (can be put back)" in text
    schema = cohort.schema.model_copy(deep=True)
    schema["id"].role, schema["id"].excluded = "feature", None
    from core.data import cohort_from_frame
    back = cohort_from_frame(tf.record_numbers(), schema, name="ids.csv")
    assert "id" in back.schema.feature_names


def test_a_near_perfect_predictor_is_kept_out_as_leakage():
    df = tf.base()
    df["followup_event"] = df["outcome"] * 10 + np.random.default_rng(0).normal(0, 0.1, len(df))
    cohort = load_cohort(tf.csv_bytes(df), target="outcome", name="leak.csv")
    assert "followup_event" not in cohort.schema.feature_names
    assert "leakage" in cohort.schema["followup_event"].excluded and "AUC" in cohort.schema["followup_event"].excluded


def test_impossible_pressures_and_diastolic_above_systolic():
    cohort = load_cohort(tf.csv_bytes(tf.impossible_pressures()), target="outcome", name="cardio.csv")
    text = messages(cohort)
    assert "ap_hi: 1 value outside 60–260 mmHg, row 4 → set to missing" in text
    assert "ap_hi: 1 value below 0 (not measured), row 7 → set to missing" in text
    assert "ap_hi, ap_lo: 1 row with diastolic at or above systolic pressure, row 9 → both set to missing" in text
    assert cohort.df.loc[8, ["ap_hi", "ap_lo"]].isna().all()


def test_height_and_weight_giving_an_impossible_bmi():
    df = tf.base()
    rng = np.random.default_rng(2)
    df["height"] = rng.normal(168, 8, len(df)).round()
    df["weight"] = rng.normal(75, 10, len(df)).round()
    df.loc[5, ["height", "weight"]] = [120, 200]  # BMI 139
    cohort = load_cohort(tf.csv_bytes(df), target="outcome", name="bmi.csv")
    assert "height, weight: 1 row whose height and weight give a BMI outside 10–80 kg/m², row 6" in messages(cohort)


def test_an_all_missing_column_is_dropped_with_a_report_line():
    cohort = load_cohort(tf.csv_bytes(tf.all_missing_column()), target="outcome", name="site.csv")
    assert "totChol" not in cohort.schema.feature_names
    assert "totChol: no value in any patient → dropped from the model's inputs" in messages(cohort)


def test_an_all_not_measured_mapped_column_is_dropped_not_imputed():
    df = tf.base()
    df["totChol"] = 0  # every patient "not measured"
    cohort = load_cohort(tf.csv_bytes(df), target="outcome", name="zero.csv")
    assert "totChol" not in cohort.schema.feature_names


def test_the_cleveland_layout_with_an_all_missing_column_drops_it(cleveland_path):
    lines = [line.split(",") for line in cleveland_path.read_text().splitlines() if line.strip()]
    for row in lines:
        row[4] = "?"
    cohort = load_cohort("\n".join(",".join(r) for r in lines).encode(), name="site.data")
    assert "chol" not in cohort.schema.feature_names
    assert any(p.rule == "all-missing" and p.column == "chol" for p in cohort.problems)


def test_glass_box_survives_a_feature_with_no_value(cleveland_path):
    """Was IndexError: index 24 is out of bounds (sklearn's imputer dropped the empty column)."""
    from core.evaluate.glassbox import GlassBox
    cohort = load_cohort(cleveland_path)
    df = cohort.df.copy()
    df["chol"] = np.nan
    box = GlassBox(cohort.schema).fit(df, cohort.y)
    assert box.contributions(df.head(3)).shape == (3, len(cohort.schema.feature_names))


@pytest.mark.parametrize("make, names", [
    (tf.chinese_headers, {"年龄": "age", "性别": "sex", "收缩压": "systolic_bp", "舒张压": "diastolic_bp",
                          "总胆固醇": "total_cholesterol"}),
    (tf.pinyin_headers, {"nianling": "age", "xingbie": "sex", "shousuoya": "systolic_bp", "shuzhangya": "diastolic_bp",
                         "danguchun": "total_cholesterol"})])
def test_chinese_and_pinyin_headers(make, names):
    df = make()
    target = df.columns[-1]
    cohort = load_cohort(tf.csv_bytes(df), target=target, name="zh.csv")
    assert {n: cohort.schema[n].concept for n in names} == names
    assert cohort.schema[list(names)[2]].label_zh == "收缩压"


def test_whitespace_statlog_file_is_recognised():
    read = read_table(tf.statlog_bytes(), name="heart.dat")
    assert read.delimiter == " " and read.layout == "uci-statlog" and read.df.columns[-1] == "class"
    cohort = load_cohort(tf.statlog_bytes(), name="heart.dat")
    assert (cohort.schema.target, cohort.schema.positive_rule) == ("class", "== 2")
    assert cohort.schema.source == "uci-cleveland" and cohort.schema["chol"].unit == "mg/dl"


def test_whitespace_file_with_a_header_and_tabs():
    df = tf.base()
    text = df.to_csv(index=False, sep="\t").replace("\t", " \t ").encode()
    read = read_table(text, name="cohort.txt")
    assert list(read.df.columns) == list(df.columns) and len(read.df) == len(df)


def test_xlsx_first_sheet_or_the_one_chosen():
    data = tf.xlsx_bytes(tf.chinese_headers())
    read = read_table(data, name="ward.xlsx")
    assert read.sheets == ["cohort", "notes"] and read.sheet == "cohort" and "收缩压" in read.df.columns
    cohort = load_cohort(data, target="结局", name="ward.xlsx")
    assert cohort.schema["总胆固醇"].source_unit == "mmol/L"
    from core.errors import CohortError
    with pytest.raises(CohortError, match="header but no data rows"):
        read_table(data, name="ward.xlsx", sheet="notes")
    with pytest.raises(CohortError, match="no sheet 'x'"):
        read_table(data, name="ward.xlsx", sheet="x")


def test_the_patient_form_offers_the_vocabulary_units_of_a_mapped_feature():
    from core.data import from_model, input_range, to_model, unit_options
    cohort = load_cohort(tf.csv_bytes(tf.mmol_cholesterol()), target="outcome", name="mmol.csv")
    chol, age = cohort.schema["totChol"], cohort.schema["age"]
    assert unit_options(chol) == ["mg/dl", "mmol/L"] and unit_options(age) == ["years"]  # never days in a form
    assert to_model(5.0, chol, "mmol/L") == pytest.approx(193.35)
    assert from_model(193.35, chol, "mmol/L") == 5.0
    assert input_range(chol, "mmol/L") == (2.07, 18.1, 0.01)
    from core.data import concept_feature
    hba1c = concept_feature("a1c", vocabulary()["hba1c"])
    assert to_model(48, hba1c, "mmol/mol") == pytest.approx(6.543, abs=1e-3)  # IFCC -> NGSP
    assert from_model(6.5, hba1c, "mmol/mol") == 48  # the diabetes threshold, 6.5% = 48 mmol/mol


def test_proposed_threshold_is_half_for_a_common_outcome_and_youden_for_a_rare_one():
    from core.metrics import proposed_threshold
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.5).astype(float)
    p = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.2, y.size), 0.01, 0.99)
    assert proposed_threshold(y, p)[:2] == (0.5, "fixed")
    y = (rng.random(2000) < 0.15).astype(float)
    p = np.clip(0.1 + y * 0.15 + rng.normal(0, 0.05, y.size), 0.001, 0.999)
    threshold, rule, prevalence = proposed_threshold(y, p)
    assert rule == "youden" and 0.1 < threshold < 0.3 and prevalence == pytest.approx(0.15, abs=0.03)


def test_distinct_measurements_are_not_taken_for_record_numbers():
    df = tf.base()
    df["platelets"] = np.random.default_rng(3).permutation(np.arange(150, 150 + len(df)))  # unique, unordered
    df["record"] = np.arange(len(df)) * 7 + 1000  # unique, in file order
    df["mrn_text"] = [f"H{k:06d}X" for k in np.random.default_rng(4).permutation(len(df))]
    cohort = load_cohort(tf.csv_bytes(df), target="outcome", name="x.csv")
    assert "platelets" in cohort.schema.feature_names
    assert cohort.schema["record"].excluded.startswith("identifier")
    assert cohort.schema["mrn_text"].excluded.startswith("identifier")


# ---- QA: units written into the column name ------------------------------------------------------
@pytest.mark.parametrize("name, stem, unit", [
    ("age_days", "age", "days"), ("totChol_mmol", "totchol", "mmol/L"), ("glucose_mmol", "glucose", "mmol/L"),
    ("ldl_mg_dl", "ldl", "mg/dl"), ("Chol [mg/dL]", "chol", "mg/dl"), ("age in days", "age", "days"),
    ("Age_YRS", "age", "years"), ("weight-lb", "weight", "lb"), ("sysBP.mmHg", "sysbp", "mmHg"),
    ("chol (mmol/L)", "chol", "mmol/L"), ("hdl_mmoll", "hdl", "mmol/L"), ("resting_bp", "resting_bp", None),
    # QA: camelCase names with the unit as the last word
    ("totCholMmol", "totchol", "mmol/L"), ("ageDays", "age", "days"), ("cholMgDl", "chol", "mg/dl"),
    ("RestingBP", "restingbp", None), ("HbA1c", "hba1c", None)])
def test_a_unit_in_the_column_name_is_split_off(name, stem, unit):
    from core.data.concepts import split_unit
    assert split_unit(name) == (stem, unit)


def test_columns_with_unit_suffixes_map_to_their_concept_and_unit():
    from core.data.concepts import infer_clinical_schema
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age_days": rng.uniform(14000, 25000, 60).round(), "totChol_mmol": rng.uniform(3.5, 7, 60),
                       "glucose_mmol": rng.uniform(4, 7, 60), "heart_rate_bpm": rng.uniform(55, 95, 60).round(),
                       "TenYearCHD": rng.integers(0, 2, 60)})
    proposals = {m.column: m for m in propose_mapping(df)}
    assert (proposals["age_days"].concept, proposals["age_days"].unit) == ("age", "days")
    assert (proposals["totChol_mmol"].concept, proposals["totChol_mmol"].unit) == ("total_cholesterol", "mmol/L")
    assert (proposals["glucose_mmol"].concept, proposals["glucose_mmol"].unit) == ("fasting_glucose", "mmol/L")
    assert proposals["heart_rate_bpm"].concept == "heart_rate"
    assert any("the name says days: agrees with the values" in e for e in proposals["age_days"].evidence)
    schema = infer_clinical_schema(df, target="TenYearCHD")
    assert schema["age_days"].label == "Age" and schema["age_days"].source_unit == "days"
    assert schema["totChol_mmol"].label == "Total cholesterol" and schema["totChol_mmol"].source_unit == "mmol/L"


def test_a_unit_in_the_name_that_the_values_contradict_is_shown_and_the_values_win():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"chol_mmol": rng.uniform(150, 300, 60).round()})  # mg/dl values under an mmol header
    (m,) = propose_mapping(df)
    assert (m.concept, m.unit) == ("total_cholesterol", None)
    assert any("the name says mmol/L but the values fit mg/dl" in e for e in m.evidence)
    (m,) = propose_mapping(pd.DataFrame({"chol_kg": rng.uniform(150, 300, 60)}))  # not a unit of cholesterol
    assert m.concept is None and any("not a unit of Total cholesterol" in e for e in m.evidence)


@pytest.mark.parametrize("column, values, rule", [
    ("TenYearCHD", [0, 1], "> 0"), ("num", [0, 1, 2, 3, 4], "> 0"), ("class", [1, 2], "== 2"),
    ("cardio", [0, 1], "> 0"), ("HeartDisease", [1, 0], "> 0"), ("DEATH_EVENT", [0, 1], "> 0"),
    ("outcome", ["yes", "no"], "== yes"), ("target", [0, 1], "> 0")])
def test_a_well_known_outcome_column_is_proposed_as_the_target(column, values, rule):
    from core.data import propose_target
    df = pd.DataFrame({"age": np.arange(20) + 40, column: (values * 20)[:20]})
    assert propose_target(df) == (column, rule)


def test_no_target_is_proposed_when_the_outcome_name_holds_no_binary_values():
    from core.data import propose_target
    df = pd.DataFrame({"age": np.arange(20) + 40, "class": np.arange(20) % 7, "chol": np.arange(20) + 200})
    assert propose_target(df) is None


# ---- QA: text codes an export writes (男/女, 是/否, M/F, Y/N) ---------------------------------------
@pytest.mark.parametrize("column, texts, concept, meaning", [
    ("性别", ["男", "女"], "sex", {"男": "male", "女": "female"}),
    ("吸烟", ["是", "否"], "smoking", {"是": "yes", "否": "no"}),
    ("sex", ["M", "F"], "sex", {"M": "male", "F": "female"}),
    ("gender", ["Male", "Female"], "sex", {"Male": "male", "Female": "female"}),
    ("smoker", ["Y", "N"], "smoking", {"Y": "yes", "N": "no"}),
    ("diabetes", ["yes", "no"], "diabetes", {"yes": "yes", "no": "no"})])
def test_common_text_codes_are_the_concepts_codes(column, texts, concept, meaning):
    df = pd.DataFrame({column: (texts * 15)[:30]})
    (m,) = propose_mapping(df)
    assert m.concept == concept, m.evidence
    codes = {c.value: c.label for c in vocabulary()[concept].codes}
    assert {k: codes[v] for k, v in m.text_codes.items()} == meaning


def test_a_chinese_export_with_text_codes_loads_with_the_concepts_meaning():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"年龄": rng.integers(35, 75, 60), "性别": rng.choice(["男", "女"], 60),
                       "吸烟": rng.choice(["是", "否"], 60), "收缩压": rng.integers(100, 180, 60),
                       "结局": rng.integers(0, 2, 60)})
    cohort = load_cohort(df.to_csv(index=False).encode("utf-8"), name="hospital.csv", target="结局")
    sex, smoking = cohort.schema["性别"], cohort.schema["吸烟"]
    assert (sex.concept, sex.label, [(c.value, c.label) for c in sex.codes]) == \
        ("sex", "Sex", [("女", "female"), ("男", "male")])
    assert (smoking.concept, [(c.value, c.label_zh) for c in smoking.codes]) == ("smoking", [("否", "否"), ("是", "是")])
    assert cohort.n == 60


def test_text_codes_that_are_not_the_concepts_are_still_refused():
    (m,) = propose_mapping(pd.DataFrame({"性别": ["男", "女", "未知"] * 10}))
    assert m.concept is None and any("their meaning is not the vocabulary's" in e for e in m.evidence)


def test_a_camel_case_name_with_its_unit_maps_to_the_concept_in_that_unit():
    """QA: 'totCholMmol' was not split, so its cholesterol in mmol/L was read without a unit from the name."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"ageDays": rng.uniform(14000, 25000, 60).round(), "totCholMmol": rng.uniform(3.5, 7, 60),
                       "TenYearCHD": rng.integers(0, 2, 60)})
    proposals = {m.column: m for m in propose_mapping(df)}
    assert (proposals["totCholMmol"].concept, proposals["totCholMmol"].unit) == ("total_cholesterol", "mmol/L")
    assert (proposals["ageDays"].concept, proposals["ageDays"].unit) == ("age", "days")
