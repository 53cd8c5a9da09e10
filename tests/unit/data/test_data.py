"""Reading and validating cohort files: the real Cleveland file, its re-encodings, and every refusal."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import Cohort, ReadResult, cohort_from_frame, load_cohort, read_table, table_fingerprint, validate
from core.data import demo_cohort
from core.errors import CohortError
from core.data import CLEVELAND_COLUMNS, cleveland_schema

HEADER = ",".join(CLEVELAND_COLUMNS)


@pytest.fixture(scope="module")
def cleveland_bytes(cleveland_path) -> bytes:
    return cleveland_path.read_bytes()


@pytest.fixture(scope="module")
def cleveland_df(cleveland_path) -> pd.DataFrame:
    return read_table(cleveland_path).df


def with_header(raw: bytes) -> str:
    return HEADER + "\n" + raw.decode("ascii")


def small_csv(rows: int = 12) -> bytes:
    lines = ["age,chol,sick"] + [f"{40 + i},{200 + i},{i % 2}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


# ---- the real file ---------------------------------------------------------------------------------
def test_cleveland_file_is_recognised(cleveland_path):
    read = read_table(cleveland_path)
    assert read.uci_format and not read.has_header
    assert read.df.shape == (303, 14)
    assert list(read.df.columns) == CLEVELAND_COLUMNS
    assert read.delimiter == "," and read.encoding == "utf-8"
    missing = read.df.isna().sum()
    assert missing["ca"] == 4 and missing["thal"] == 2 and missing.sum() == 6
    assert all(read.df[c].dtype == float for c in CLEVELAND_COLUMNS)


def test_cleveland_cohort(cleveland_path):
    cohort = load_cohort(cleveland_path)
    assert isinstance(cohort, Cohort)
    assert cohort.schema.source == "uci-cleveland"
    assert cohort.n == 303 and int(cohort.y.sum()) == 139
    assert cohort.prevalence == pytest.approx(139 / 303)
    assert set(np.unique(cohort.y)) == {0.0, 1.0}
    missing = {p.column: p for p in cohort.problems if p.rule == "missing"}
    assert set(missing) == {"ca", "thal"}
    assert missing["ca"].count == 4 and missing["thal"].count == 2
    assert all(p.severity == "warning" for p in cohort.problems)
    assert "imputed" in missing["ca"].action
    assert len(cohort.fingerprint) == 64


@pytest.mark.parametrize("variant", ["bom", "gb18030", "semicolon_decimal_comma", "tab", "crlf_pipe"])
def test_re_encoded_cleveland_gives_the_same_numbers(cleveland_bytes, cleveland_df, variant):
    text = with_header(cleveland_bytes)
    expected = cleveland_df.copy()
    if variant == "bom":
        data = b"\xef\xbb\xbf" + text.encode("utf-8")
    elif variant == "gb18030":
        data = text.replace("age,", "年龄,", 1).replace(",chol,", ",胆固醇,", 1).encode("gb18030")
        expected = expected.rename(columns={"age": "年龄", "chol": "胆固醇"})
    elif variant == "semicolon_decimal_comma":
        data = text.replace(",", ";").replace(".", ",").encode("utf-8")
    elif variant == "tab":
        data = text.replace(",", "\t").encode("utf-8")
    else:
        data = text.replace(",", "|").replace("\n", "\r\n").encode("utf-8")
    read = read_table(data, name=variant)
    assert read.has_header and not read.uci_format
    pd.testing.assert_frame_equal(read.df, expected)
    if variant == "gb18030":
        assert read.encoding == "gb18030"
    if variant == "semicolon_decimal_comma":
        assert read.delimiter == ";" and "oldpeak" in read.decimal_comma
    if variant == "bom":
        assert read.encoding == "utf-8-sig"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_headerless_decimal_comma_file_is_still_uci(cleveland_bytes, cleveland_df, delimiter):
    data = cleveland_bytes.replace(b",", delimiter.encode()).replace(b".", b",")
    read = read_table(data)
    assert read.delimiter == delimiter and read.uci_format
    pd.testing.assert_frame_equal(read.df, cleveland_df)


def test_fingerprint_follows_the_table_not_the_encoding(cleveland_bytes):
    text = with_header(cleveland_bytes)
    plain = load_cohort(text.encode(), name="a")
    tabbed = load_cohort(text.replace(",", "\t").encode("utf-16"), name="b")
    assert plain.fingerprint == tabbed.fingerprint
    changed = load_cohort(text.replace("63.0,1.0,1.0,145.0", "64.0,1.0,1.0,145.0", 1).encode(), name="c")
    assert changed.fingerprint != plain.fingerprint


@pytest.mark.parametrize("header, encoding", [
    ("âge;cholestérol;malade", "latin-1"),  # these bytes also decode as GB18030, into rare hanzi
    ("Größe;Maß;krank", "latin-1"),  # "öß" is even a common GB2312 hanzi
    ("edad;presión;año", "latin-1"),
    ("Patient’s age;“bp”;sick", "cp1252"),
    ("年龄;血压;患病", "gb18030"),
    ("體重;血壓;患病", "gb18030"),  # traditional characters exist in GBK only, not GB2312
])
def test_header_encodings_survive(header, encoding):
    read = read_table(f"{header}\n63;233;1\n".encode(encoding))
    assert list(read.df.columns) == header.split(";")
    assert read.df.iloc[0].tolist() == [63.0, 233.0, 1.0]


def test_chinese_text_cells_survive_in_gb18030():
    data = "姓名,年龄\n张三,63\n李四,41\n".encode("gb18030")
    read = read_table(data)
    assert read.df["姓名"].tolist() == ["张三", "李四"]


def test_missing_markers_and_whitespace():
    data = b"a,b\n 1 ,?\nNA, 2\nN/A,NaN\nnan,null\n-, -3\n"
    df = read_table(data).df
    assert df["a"].isna().tolist() == [False, True, True, True, True]
    assert df["a"].iloc[0] == 1.0
    assert df["b"].tolist()[-1] == -3.0 and df["b"].isna().sum() == 3


def test_decimal_comma_only_in_otherwise_numeric_columns():
    read = read_table("dose;note\n1,5;2,5\n2;Tab. 1,5\n".encode())
    assert read.df["dose"].tolist() == [1.5, 2.0]
    assert read.df["note"].tolist() == ["2,5", "Tab. 1,5"] and read.decimal_comma == ["dose"]
    assert read_table(b"a,b\n1,5\n").df["a"].tolist() == [1.0]  # a comma file has no decimal commas


def test_numeric_first_row_without_14_columns_gets_generic_names():
    read = read_table(b"1,2,3\n4,5,6\n")
    assert not read.has_header and not read.uci_format
    assert list(read.df.columns) == ["col1", "col2", "col3"] and len(read.df) == 2


def test_formula_cells_stay_text():
    read = read_table(b"name,note\n=HYPERLINK(\"x\"),@SUM(A1)\n+cmd|calc,-2+3\n")
    assert read.df["name"].tolist() == ['=HYPERLINK("x")', "+cmd|calc"]
    assert read.df["note"].tolist() == ["@SUM(A1)", "-2+3"]


def test_quoted_fields_with_delimiters_and_newlines():
    read = read_table(b'id,comment,value\n1,"a, b",2\n2,"line\nbreak",3\n')
    assert read.df["comment"].tolist() == ["a, b", "line\nbreak"] and read.df["value"].tolist() == [2.0, 3.0]


def test_trailing_delimiters_and_blank_lines_are_tolerated():
    read = read_table(b"a,b\n1,2,\n\n3,4,,\n\n")
    assert list(read.df.columns) == ["a", "b"] and read.df["b"].tolist() == [2.0, 4.0]
    assert read.blank_rows == 2


def test_uploaded_file_object():
    buffer = io.BytesIO(small_csv())
    buffer.name = "ward.csv"
    assert read_table(buffer).name == "ward.csv"


# ---- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, pattern", [
    (b"", "empty"),
    (b"  \n\r\n\n", "empty"),
    (b"age,chol,num\n", "header but no data rows"),
    (b"age,chol,num\n\n\n", "header but no data rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text CSV"),
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), "not a text CSV.*Excel"),
    (bytes(range(1, 32)) * 20, "not a text CSV"),
    (b"age,chol,age\n1,2,3\n", "duplicate column names: 'age'"),
    (b"a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields"),
    (b"a,b,c\n1,2,3\n4,5,6,7\n", "line 3 has 4 fields"),
    (b'a,b,c\n"1\n2",2,3\n\n\n4,5\n', "line 6 has 2 fields"),  # a quoted newline and blank lines count
    (b'a,b\n1,2\n3,"4\n5,6\n', "line 3 has an unclosed quote"),
    (b'a,b\n1,"2"x\n', "line 2 has a misplaced quote"),
    # issue 18.7: a closed field longer than the csv module's limit was reported as an unclosed quote
    pytest.param(b'a,b\n1,2\n3,"' + b"x" * 200_000 + b'"\n5,6\n', "line 3 has a field longer than 131,072 characters",
                 id="field-too-long"),
    pytest.param(b'a,b\n1,2\n3,"' + b"x" * 200_000 + b'\n5,6\n', "line 3 has an unclosed quote", id="long-unclosed"),
])
def test_read_refusals(data, pattern):
    with pytest.raises(CohortError, match=pattern) as info:
        read_table(data, name="upload.csv")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("upload.csv")


def test_file_over_the_size_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(small_csv(2000))
    with pytest.raises(CohortError, match="limit is 0.01 MB"):
        read_table(path, max_bytes=int(0.01 * 2**20))
    with pytest.raises(CohortError, match="limit is 0.01 MB"):
        read_table(path.read_bytes(), max_bytes=int(0.01 * 2**20))


def test_too_many_columns():
    header = ",".join(f"c{i}" for i in range(2001))
    with pytest.raises(CohortError, match="2001 columns"):
        read_table((header + "\n" + ",".join("1" * 2001) + "\n").encode())


def test_missing_path_is_a_cohort_error(tmp_path):
    with pytest.raises(CohortError, match="cannot open"):
        read_table(tmp_path / "nope.csv")


def test_single_row():
    with pytest.raises(CohortError, match="only 1 row"):
        load_cohort(b"age,chol,sick\n63,233,1\n", target="sick")


def test_unknown_target_names_columns():
    with pytest.raises(CohortError) as info:
        load_cohort(small_csv(), target="outcome")
    assert "'outcome'" in str(info.value) and "'age'" in str(info.value) and "'sick'" in str(info.value)


def test_no_target_chosen_names_columns():
    with pytest.raises(CohortError, match="no target column.*'chol'"):
        load_cohort(small_csv())


def test_one_outcome_class(cleveland_bytes):
    lines = [line.rsplit(",", 1)[0] + ",0" for line in cleveland_bytes.decode().splitlines()]
    with pytest.raises(CohortError, match="only one outcome class: all 303 rows are negative"):
        load_cohort("\n".join(lines).encode())


def test_text_in_numeric_column_is_refused_with_rows_and_no_values(cleveland_df):
    df = cleveland_df.astype({"chol": object, "trestbps": object})
    df.loc[[4, 8], "chol"] = "high"
    df.loc[10, "trestbps"] = "see notes"
    with pytest.raises(CohortError) as info:
        validate(df, cleveland_schema())
    message = str(info.value)
    assert "chol: 2 text values in a numeric column, rows 5, 9" in message
    assert "trestbps: 1 text value in a numeric column, row 11 → refused" in message
    assert "high" not in message and "see notes" not in message
    assert {(p.column, p.rule) for p in info.value.problems if p.severity == "error"} == {
        ("chol", "text"), ("trestbps", "text")}


def test_target_with_many_values_needs_a_rule(cleveland_df):
    schema = cleveland_schema().model_copy(update={"positive_rule": None})
    with pytest.raises(CohortError, match="'num' has 5 distinct values.*rule"):
        validate(cleveland_df, schema)


# ---- impossible values, missing values, policies -------------------------------------------------
def test_impossible_values_become_missing_with_a_warning(cleveland_df):
    df = cleveland_df.copy()
    df.loc[0:2, "chol"] = 0.0
    df.loc[9, "trestbps"] = 900.0
    df.loc[4, "thalach"] = 0.0
    df.loc[6, "age"] = -5.0
    df.loc[7, "oldpeak"] = np.inf
    df.loc[11, "thal"] = 5.0
    before = df.copy()
    result = validate(df, cleveland_schema())
    pd.testing.assert_frame_equal(df, before)  # the caller's table is never changed
    by_key = {(p.column, p.rule): p for p in result.problems}
    chol = by_key[("chol", "range")]
    assert chol.rows == [1, 2, 3] and chol.severity == "warning" and chol.action == "set to missing"
    assert chol.message == "chol: 3 values outside 80–700 mg/dl, rows 1–3 → set to missing"
    assert by_key[("trestbps", "range")].rows == [10]
    assert by_key[("thalach", "range")].rows == [5]
    assert by_key[("age", "range")].rows == [7]
    assert by_key[("oldpeak", "infinite")].rows == [8]
    assert ("oldpeak", "range") not in by_key  # inf is reported once
    assert by_key[("thal", "code")].rows == [12] and "unknown code" in by_key[("thal", "code")].message
    assert by_key[("chol", "missing")].count == 3
    assert by_key[("ca", "missing")].count == 4
    assert result.df.loc[0:2, "chol"].isna().all() and np.isnan(result.df.loc[7, "oldpeak"])
    assert np.isnan(result.df.loc[11, "thal"])
    assert result.rows_in == result.rows_out == 303
    for p in result.problems:  # no patient values in any message
        assert "900" not in p.message and "-5" not in p.message and "inf" not in p.message.replace("infinite", "")


def test_report_frame(cleveland_df):
    df = cleveland_df.copy()
    df.loc[0, "chol"] = 0.0
    frame = validate(df, cleveland_schema()).report_frame()
    assert list(frame.columns) == ["column", "rule", "count", "rows", "severity", "action"]
    row = frame[(frame["column"] == "chol") & (frame["rule"] == "range")].iloc[0]
    assert row["count"] == 1 and row["rows"] == "1" and row["severity"] == "warning"


def test_drop_policy(cleveland_path):
    cohort = load_cohort(cleveland_path, missing="drop")
    assert cohort.n == 297 and cohort.df.notna().all().all()
    dropped = {p.column: p for p in cohort.problems if p.rule == "missing"}
    assert dropped["ca"].rows == [167, 193, 288, 303] and dropped["ca"].action == "rows dropped"
    assert len(cohort.y) == len(cohort.df)


def test_rows_without_outcome_are_dropped(cleveland_df):
    df = cleveland_df.copy()
    df.loc[[3, 20], "num"] = np.nan
    result = validate(df, cleveland_schema())
    problem = next(p for p in result.problems if p.rule == "outcome-missing")
    assert problem.rows == [4, 21] and problem.action == "rows dropped"
    assert result.rows_out == 301 and len(result.y) == 301


def test_text_codes_and_user_rule():
    rng = np.random.default_rng(1)
    n = 30
    df = pd.DataFrame({"smoker": rng.choice(["Yes", "No"], n), "ldl": rng.normal(130, 20, n).round(1),
                       "outcome": rng.choice(["stroke", "none", "tia"], n)})
    df.loc[2, "smoker"] = "Maybe"
    data = df.to_csv(index=False).encode()
    cohort = load_cohort(data, target="outcome", positive_rule="in stroke,tia")
    assert cohort.y.tolist() == df["outcome"].isin(["stroke", "tia"]).astype(float).tolist()
    # "Maybe" is a third code seen in the file, so the inferred schema accepts it; a stricter schema does not.
    schema = cohort.schema.model_copy(deep=True)
    schema["smoker"].codes = [c for c in schema["smoker"].codes if c.value != "Maybe"]
    result = validate(read_table(data).df, schema)
    code = next(p for p in result.problems if p.rule == "code")
    assert code.column == "smoker" and code.rows == [3] and "Maybe" not in code.message


def test_cohort_from_frame_and_retarget(cleveland_df):
    cohort = cohort_from_frame(cleveland_df, cleveland_schema(), "demo", synthetic=True)
    assert cohort.synthetic and cohort.name == "demo" and cohort.fingerprint == table_fingerprint(cohort.df)
    strict = load_cohort(cleveland_df.to_csv(index=False).encode(), schema=cleveland_schema(),
                         positive_rule=">= 2")
    assert int(strict.y.sum()) == int((cleveland_df["num"] >= 2).sum())
    with pytest.raises(CohortError, match="not understood"):
        load_cohort(cleveland_df.to_csv(index=False).encode(), positive_rule="bigger")


# ---- any bytes: a table or a CohortError, nothing else ------------------------------------------
def _read_or_refuse(data: bytes) -> None:
    try:
        result = read_table(data)
    except CohortError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(result, ReadResult) and isinstance(result.df, pd.DataFrame)
    assert len(result.df) >= 1 and len(result.df.columns) >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes_give_a_table_or_a_cohort_error(data):
    _read_or_refuse(data)


csv_text = st.text(alphabet=st.sampled_from(list('0123456789.,;|\t\n\r"? -=+@aé年NA ')), max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_text, st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]))
def test_any_csv_like_text_gives_a_table_or_a_cohort_error(text, encoding):
    _read_or_refuse(text.encode(encoding))


# ---- pandera only when a rule is broken ------------------------------------------------------------
def test_a_clean_cohort_is_validated_without_importing_pandera():
    # The first page validates the demo cohort; pandera's import (~0.4 s) is only paid when there is a failure to report.
    import subprocess
    import sys
    code = ("import sys; from core.data import cohort_from_frame; from core.data import demo_cohort; "
            "from core.data import cleveland_schema; "
            "c = cohort_from_frame(demo_cohort(), cleveland_schema(), name='demo', synthetic=True); "
            "assert c.n == 303, c.n; print('pandera' in sys.modules)")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_fast_path_and_pandera_find_the_same_failures():
    from core.data import validation as core_data
    schema = cleveland_schema()
    rules = core_data._rules(schema)
    frame = demo_cohort(60, seed=3)[schema.feature_names].astype(float).reset_index(drop=True)
    assert core_data._failures(rules, frame) == {}
    frame.loc[[4, 9], "trestbps"] = [500.0, np.inf]  # out of range, then infinite
    frame.loc[17, "thal"] = 5.0  # unknown code
    frame.loc[20, "chol"] = np.nan  # missing is not a failure
    found = {key: list(rows) for key, rows in core_data._failures(rules, frame).items()}
    assert found == {("trestbps", "range"): [4], ("trestbps", "infinite"): [9], ("thal", "code"): [17]}
