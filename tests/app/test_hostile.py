"""Hostile inputs: every one ends in a clear message naming column, rows and rule, never in a crash.

- The command line (``python -m core``, a real subprocess): exit code 2, exactly one line on stderr, no
  traceback, nothing written.
- The dashboard (AppTest, the Cohort page's uploader): an st.error, no exception, the previous cohort
  and model still in place.
- Any CSV-like text given to ``load_cohort`` (hypothesis): a Cohort or a CohortError, nothing else.
- Model files: foreign code in a Keras configuration, custom objects, tampered bundles, hostile zips.

One small bundle is trained once for the module (2 epochs, through the CLI on a cohort full of
impossible values) and every scoring case uses it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from core.data import Cohort, load_cohort
from core.data import demo_cohort
from core.errors import BundleError, CohortError
from core.data import CLEVELAND_COLUMNS, cleveland_schema
from i18n_table import tr
from tables import shown_tables

ROOT = Path(__file__).resolve().parents[2]
HANDMADE = Path(__file__).resolve().parent / "hostile"
APP = str(ROOT / "app.py")


# ---- the corpus ------------------------------------------------------------------------------------
def demo_csv(df: pd.DataFrame | None = None) -> str:
    return (demo_cohort() if df is None else df).to_csv(index=False)


def _lines(df=None) -> list[str]:
    return demo_csv(df).splitlines()


def _ragged() -> bytes:
    lines = _lines()
    lines[5] = lines[5].rsplit(",", 1)[0]  # 13 fields
    return "\n".join(lines).encode()


def _one_class() -> bytes:
    df = demo_cohort()
    df["num"] = 0.0
    return demo_csv(df).encode()


def _all_missing() -> bytes:
    return (",".join(CLEVELAND_COLUMNS) + "\n" + "?,?,?,?,?,?,?,?,?,?,?,?,?,?\n" * 50).encode()


def _wide() -> bytes:
    return (",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" for _ in range(10_000)) + "\n").encode()


def _formula_in_numbers() -> bytes:
    df = demo_cohort().astype({"chol": object, "age": object})
    df.loc[[5, 9], "chol"] = ["=1+2", "@SUM(A1)"]
    df.loc[12, "age"] = "-2+3"
    return demo_csv(df).encode()


# (id, file contents, extra CLI arguments, what the one line must say). Hand-made files are in tests/hostile.
COHORTS = [
    ("empty", b"", [], r"empty\.csv: the file is empty"),
    ("blank-lines", b" \n\r\n\n", [], r"the file is empty"),
    ("header-only", (",".join(CLEVELAND_COLUMNS) + "\n").encode(), [], r"header but no data rows"),
    ("binary-renamed", (HANDMADE / "binary_renamed.csv").read_bytes(), [], r"not a text CSV file"),
    ("excel-renamed", b"PK\x03\x04\x14\x00\x06\x00" + bytes(300), [], r"not a text CSV file \(it looks like an Excel workbook"),
    ("utf16-without-bom", demo_csv().encode("utf-16-le"), [], r"not a text CSV file"),
    ("mixed-encodings", (HANDMADE / "mixed_encoding.csv").read_bytes(), [],
     r"mixes text encodings: lines 2, 4, .* are UTF-8, lines 5, 9, 13, 15 are not"),
    ("10000-columns", _wide(), [], r"10000 columns; at most 2000 are supported"),
    ("duplicate-columns", (HANDMADE / "duplicate_columns.csv").read_bytes(), [], r"duplicate column names: 'age'"),
    ("unclosed-quote", (HANDMADE / "unclosed_quote.csv").read_bytes(), [], r"line 4 has an unclosed quote"),
    ("ragged-row", _ragged(), [], r"line 6 has 13 fields where the header has 14"),
    ("formula-cells", (HANDMADE / "formula_cells.csv").read_bytes(), [],
     r"chol: 3 text values in a numeric column, rows 3, 6, 10 → refused"),
    ("formula-and-sign-cells", _formula_in_numbers(), [],
     r"age: 1 text value in a numeric column, row 13 → refused.*chol: 2 text values in a numeric column, rows 6, 10"),
    ("three-classes-no-rule", (HANDMADE / "three_class_target.csv").read_bytes(), ["--target", "outcome"],
     r"target 'outcome' has 3 distinct values; say which mean the outcome"),
    ("one-outcome-class", _one_class(), [], r"only one outcome class: all 303 rows are negative \(num > 0\)"),
    ("all-rows-missing", _all_missing(), [], r"only 0 usable rows of 50 \(num: 50 rows without an outcome, rows 1–50"),
    ("five-rows", "\n".join(_lines()[:6]).encode(), [], r"only 5 rows; at least 10 are needed"),
    ("unknown-target", demo_csv().encode(), ["--target", "diagnosis"], r"target column 'diagnosis' is not in the"),
    ("rule-not-understood", demo_csv().encode(), ["--positive", "bigger"], r"not understood"),
]
CLI_ONLY = [  # cases the browser cannot produce
    ("no-such-file", None, [], r"--data: no such file"),
    ("200-MB", "sparse", [], r"200-MB\.csv: the file is 200 MB; the limit is 50 MB"),
]


def write_case(directory: Path, case_id: str, data) -> Path:
    path = directory / f"{case_id}.csv"
    if data == "sparse":  # 200 MB that take no disk space: the size is refused before anything is read
        with open(path, "wb") as fh:
            fh.write((",".join(CLEVELAND_COLUMNS) + "\n").encode())
            fh.truncate(200 * 2**20)
    elif data is not None:
        path.write_bytes(data)
    return path


def cli(*args, timeout=240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_refusal(done: subprocess.CompletedProcess, pattern: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in done.stderr
    import re
    assert re.search(pattern, lines[0]), (pattern, lines[0])


# ---- the module's model and every CLI run, run a few at a time ---------------------------------------
def _impossible_values() -> pd.DataFrame:
    df = demo_cohort()
    df.loc[2, "age"] = -4.0
    df.loc[3, "thalach"] = 0.0
    df.loc[4, "trestbps"] = 900.0
    df.loc[6, "chol"] = np.nan
    df.loc[7, "oldpeak"] = np.inf
    df.loc[8, "oldpeak"] = -np.inf
    return df


def _patients() -> pd.DataFrame:
    return demo_cohort().head(30).drop(columns="num")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train the module's bundle (CLI, 2 epochs, on impossible values), then every CLI case at once."""
    tmp = tmp_path_factory.mktemp("hostile")
    values = tmp / "impossible-values.csv"
    values.write_text(_impossible_values().to_csv(index=False))
    bundle = tmp / "bundle"
    trained = cli("train", "--data", str(values), "--epochs", "2", "--out", str(bundle))
    assert trained.returncode == 0, trained.stderr[-3000:]

    patients = _patients()
    inputs = {}
    extra = patients.copy()
    extra["note"] = ['=HYPERLINK("http://x")', "+1", "@SUM(A1)"] + ["ok"] * 27
    extra["ward_lab"] = 1.5
    inputs["extra-columns"] = extra
    inputs["missing-columns"] = patients.drop(columns=["chol", "thal"])
    inputs["other-codes"] = patients.assign(thal=patients["thal"].map({3.0: "normal", 6.0: "fixed", 7.0: "reversible"}))
    bad = patients.copy()
    bad.loc[3, "trestbps"], bad.loc[5, "age"], bad.loc[6, "thalach"], bad.loc[7, "oldpeak"] = 900, -3, 0, np.inf
    inputs["impossible-values"] = bad
    text = patients.astype({"chol": object})
    text.loc[1, "chol"] = "=A1*2"
    inputs["text-in-numbers"] = text
    for name, df in inputs.items():
        df.to_csv(tmp / f"patients-{name}.csv", index=False)

    foreign = _with_keras_config(bundle, tmp / "foreign-code", _os_regulariser)
    jobs = {}
    for case_id, data, args, _ in COHORTS + CLI_ONLY:
        path = write_case(tmp, case_id, data)
        jobs[("train", case_id)] = ("train", "--data", str(path), *args, "--epochs", "1",
                                    "--out", str(tmp / f"out-{case_id}"))
    for name in SUBPROCESS_PREDICT:
        jobs[("predict", name)] = ("predict", "--model", str(bundle), "--input", str(tmp / f"patients-{name}.csv"),
                                   "--output", str(tmp / f"scored-{name}.csv"))
    jobs[("predict", "foreign-code")] = ("predict", "--model", str(foreign), "--input",
                                         str(tmp / "patients-extra-columns.csv"), "--output", str(tmp / "never.csv"))
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(jobs, pool.map(lambda argv: cli(*argv), jobs.values())))
    return {"tmp": tmp, "bundle": bundle, "trained": trained, "done": done}


@pytest.mark.parametrize("case_id, pattern", [(c[0], c[3]) for c in COHORTS + CLI_ONLY],
                         ids=[c[0] for c in COHORTS + CLI_ONLY])
def test_cli_refuses_a_hostile_cohort_in_one_line(runs, case_id, pattern):
    assert_one_line_refusal(runs["done"][("train", case_id)], pattern)
    assert not (runs["tmp"] / f"out-{case_id}").exists()  # nothing written


def test_cli_trains_on_impossible_values_with_one_warning_per_rule_and_no_values(runs):
    """NaN, ±inf, a negative age, heart rate 0, blood pressure 900: set to missing, each named by column,
    rows and rule on stderr; the values themselves never appear."""
    stderr = runs["trained"].stderr
    lines = stderr.splitlines()
    assert all(line.startswith("warning: ") for line in lines), lines  # no TensorFlow chatter, no traceback
    for expected in ("age: 1 value outside 18–100 years, row 3 → set to missing",
                     "thalach: 1 value outside 50–250 bpm, row 4 → set to missing",
                     "trestbps: 1 value outside 60–250 mmHg, row 5 → set to missing",
                     "oldpeak: 2 infinite values, rows 8–9 → set to missing",
                     "chol: 1 missing value, row 7 → imputed from the training split's median"):
        assert f"warning: {expected}" in lines, (expected, lines)
    assert "900" not in stderr and "-4" not in stderr and "inf" not in stderr.replace("infinite", "")
    assert json.loads(runs["trained"].stdout)["test_metrics"]["roc_auc"] is not None


PREDICT_REFUSALS = [
    ("other-codes", r"thal: 29 unknown codes \(known: 3 = normal, 6 = fixed defect, 7 = reversible defect\), "
                    r"rows 1–25, 27–30"),
    ("foreign-code", r"refers to code outside Keras \('os'\); refused"),
    ("missing-columns", r"--input lacks columns the model needs: chol, thal"),
    ("impossible-values", r"age: 1 value outside 18–100 years, row 6; trestbps: 1 value outside 60–250 mmHg, row 4; "
                          r"thalach: 1 value outside 50–250 bpm, row 7; oldpeak: 1 infinite value, row 8"),
    ("text-in-numbers", r"chol: 1 text value in a numeric column, row 2"),
]
# Each `predict` process loads TensorFlow (~6 CPU-seconds): three run as real processes, the other cases
# through the same entry point in this process (exit code and stderr alike).
SUBPROCESS_PREDICT = ("other-codes", "extra-columns")


@pytest.mark.parametrize("name, pattern", PREDICT_REFUSALS, ids=[c[0] for c in PREDICT_REFUSALS])
def test_cli_refuses_patients_the_model_was_not_made_for(runs, name, pattern, capsys):
    if ("predict", name) in runs["done"]:
        done = runs["done"][("predict", name)]
    else:
        from core.cli import main
        argv = ["predict", "--model", str(runs["bundle"]), "--input", str(runs["tmp"] / f"patients-{name}.csv"),
                "--output", str(runs["tmp"] / f"scored-{name}.csv")]
        code = main(argv)
        captured = capsys.readouterr()
        done = subprocess.CompletedProcess(argv, code, captured.out, captured.err)
    assert_one_line_refusal(done, pattern)
    assert not (runs["tmp"] / f"scored-{name}.csv").exists()


def test_cli_scores_extra_columns_and_neutralises_formula_cells(runs):
    done = runs["done"][("predict", "extra-columns")]
    assert done.returncode == 0, done.stderr
    assert all(line.startswith(("warning: ", "wrote ")) for line in done.stderr.splitlines()), done.stderr
    scored = pd.read_csv(runs["tmp"] / "scored-extra-columns.csv", encoding="utf-8-sig")
    assert scored["note"].tolist()[:3] == ["'=HYPERLINK(\"http://x\")", "'+1", "'@SUM(A1)"]
    assert (scored["ward_lab"] == 1.5).all()  # extra columns pass through untouched
    assert scored["risk"].between(0, 1).all() and len(scored) == 30


# ---- the dashboard ----------------------------------------------------------------------------------
@pytest.fixture
def model_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")


@pytest.fixture(scope="module")
def loaded(runs):
    from core.model import load_bundle
    return load_bundle(runs["bundle"])


def app_with_model(model) -> AppTest:
    """The app on its Cohort page, with a real model active in the session (as after training)."""
    from ui.models import info_from_meta
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["lang"] = "en"
    at.run()
    at.session_state["model"] = model
    at.session_state["model_info"] = info_from_meta(model.metadata_, "store")
    at.session_state["model_meta"] = model.metadata_
    at.run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    at.file_uploader(key="cohort_upload").set_value((name, data, "text/csv")).run()
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


DASHBOARD = [c for c in COHORTS if not c[2]]  # the CLI's --target/--positive are the schema step's (below)


@pytest.mark.parametrize("case_id, data, pattern", [(c[0], c[1], c[3]) for c in DASHBOARD],
                         ids=[c[0] for c in DASHBOARD])
def test_dashboard_refuses_a_hostile_upload_and_keeps_cohort_and_model(model_store, loaded, case_id, data, pattern):
    import re
    at = app_with_model(loaded)
    before = at.session_state["cohort"]
    upload(at, f"{case_id}.csv", data)
    assert [e.value for e in at.exception] == []
    shown = errors(at)
    assert len(shown) == 1 and shown[0].startswith(tr("cohort.refused", message="")), shown
    assert re.search(pattern, shown[0]), (pattern, shown)
    assert at.session_state["cohort"] is before
    assert at.session_state["model"] is loaded


def test_dashboard_states_and_enforces_the_configured_upload_limit(model_store, loaded):
    """The limit in .streamlit/config.toml is the one the page states and the one the reader enforces
    (checked with a 1 MB limit: no 200 MB in a test); XSRF protection stays on."""
    from streamlit import config
    configured = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert configured["enableXsrfProtection"] is True
    assert config.get_option("server.maxUploadSize") == configured["maxUploadSize"]
    at = app_with_model(loaded)
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    assert tr("cohort.upload_limit", mb=configured["maxUploadSize"]) in [c.value for c in at.caption]
    assert at.file_uploader(key="cohort_upload").help == tr("cohort.upload_help", mb=configured["maxUploadSize"])

    before = at.session_state["cohort"]
    config.set_option("server.maxUploadSize", 1)
    try:
        rows = demo_csv().splitlines()
        big = "\n".join([rows[0]] + rows[1:] * 60).encode()  # ~1.1 MB
        assert 2**20 < len(big) < 2 * 2**20
        at.run()
        assert tr("cohort.upload_limit", mb=1) in [c.value for c in at.caption]
        upload(at, "big.csv", big)
        assert [e.value for e in at.exception] == []
        assert any("big.csv: the file is larger than the limit; the limit is 1 MB" in e for e in errors(at)), errors(at)
        assert at.session_state["cohort"] is before
    finally:
        config.set_option("server.maxUploadSize", configured["maxUploadSize"])


def test_dashboard_three_classes_need_a_rule_and_another_schema_does_not_break_the_model(model_store, loaded):
    """A registry export with a three-class outcome: refused until a rule says which classes are disease;
    once accepted, the Cleveland model does not fit it and every page says so instead of failing."""
    at = app_with_model(loaded)
    before = at.session_state["cohort"]
    upload(at, "registry.csv", (HANDMADE / "three_class_target.csv").read_bytes())
    at.selectbox(key="schema_target").set_value("outcome").run()
    assert at.text_input(key="schema_rule").value == ""  # no rule can be guessed for three classes
    apply = lambda: next(b for b in at.button if b.label == tr("schema.apply")).click().run()  # noqa: E731
    apply()
    assert any("'outcome' has 3 distinct values; say which mean the outcome" in e for e in errors(at)), errors(at)
    assert at.session_state["cohort"] is before
    at.text_input(key="schema_rule").set_value("in angina,infarction").run()
    apply()
    assert [e.value for e in at.exception] == []
    assert at.session_state["cohort"].name == "registry.csv"
    assert at.session_state["model"] is loaded
    assert tr("cohort.model_mismatch") in [w.value for w in at.warning]
    for page in ("pages/patient.py", "pages/explain.py", "pages/train.py", "pages/model_card.py"):
        at.switch_page(page).run()
        assert [e.value for e in at.exception] == [], page
    at.switch_page("pages/explain.py").run()
    assert any("age" in i.value and "chol" in i.value for i in at.info), [i.value for i in at.info]


def test_dashboard_reports_impossible_values_by_column_rows_and_rule(model_store, loaded):
    at = app_with_model(loaded)
    df = _impossible_values()
    df["thal"] = df["thal"].astype(object)
    df.loc[10, "thal"] = "reversable"  # a code of another coding
    df.loc[4, "trestbps"] = 912.5
    upload(at, "values.csv", df.to_csv(index=False).encode())
    assert [e.value for e in at.exception] == [] and errors(at) == []
    cohort = at.session_state["cohort"]
    assert cohort.name == "values.csv" and cohort.n == 303
    report = shown_tables(at.main)[0]
    found = {(row.iloc[0], row.iloc[4]) for _, row in report.iterrows()}
    for column, rows in (("age", "3"), ("thalach", "4"), ("trestbps", "5"), ("oldpeak", "8–9"), ("thal", "11")):
        assert (column, rows) in found, (column, rows, found)
    shown = report.to_csv()
    assert "912" not in shown and "reversable" not in shown, shown


# ---- any CSV-like text: a cohort or a CohortError ---------------------------------------------------
HOSTILE_CELLS = ["?", "", "NA", "inf", "-inf", "nan", "=1+2", "@x", "+1", '"', '""', "年", "1,5", "1e309", "-5", "0",
                 "900", "9", "Yes", "-1e308", "  ", "1_0", "٣", "\x00", "NULL"]


@st.composite
def cleveland_like(draw):
    """A real-looking Cleveland export (12-60 rows) with hostile cells, renamed columns, any delimiter,
    with or without a header."""
    n = draw(st.integers(0, 60))
    df = demo_cohort().head(n).astype(object)
    for _ in range(draw(st.integers(0, 25)) if n else 0):
        df.iat[draw(st.integers(0, n - 1)), draw(st.integers(0, 13))] = draw(st.sampled_from(HOSTILE_CELLS))
    columns = list(df.columns)
    if draw(st.booleans()):
        columns[draw(st.integers(0, 13))] = draw(st.sampled_from(columns + ["", "x", "num"]))
    df.columns = columns
    return df.to_csv(index=False, sep=draw(st.sampled_from(",;\t|")), header=draw(st.booleans()),
                     na_rep=draw(st.sampled_from(["", "?", "NA"])))


@st.composite
def csv_like(draw):
    cell = st.one_of(st.integers(-1000, 1000).map(str), st.floats().map(repr), st.sampled_from(HOSTILE_CELLS),
                     st.text(max_size=4))
    header = draw(st.lists(st.sampled_from(list(CLEVELAND_COLUMNS) + ["x", "outcome", ""]), min_size=1, max_size=16))
    rows = draw(st.lists(st.lists(cell, min_size=max(1, len(header) - 1), max_size=len(header) + 1), max_size=40))
    delimiter = draw(st.sampled_from(",;\t|"))
    return "\n".join([delimiter.join(header)] + [delimiter.join(r) for r in rows])


def _cohort_or_refusal(data: bytes, target, rule, strict: bool) -> None:
    try:
        cohort = load_cohort(data, target=target, positive_rule=rule, schema=cleveland_schema() if strict else None)
    except CohortError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(cohort, Cohort)
    assert len(cohort.y) == len(cohort.df) >= 10
    assert set(np.unique(cohort.y)) == {0.0, 1.0}
    for f in cohort.schema.model_features:  # validation leaves no infinity for the network
        column = cohort.df[f.name]
        assert not (column.dtype.kind == "f" and np.isinf(column).any()), f.name


RULES = st.sampled_from([None, "> 0", "== 1", "in 1,2", "== Yes", "bogus"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cleveland_like(), st.sampled_from([None, "num"]), RULES, st.booleans())
def test_any_cleveland_like_export_gives_a_cohort_or_a_cohort_error(text, target, rule, strict):
    _cohort_or_refusal(text.encode("utf-8"), target, rule, strict)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_like(), st.sampled_from([None, "num", "outcome", "x"]), RULES, st.sampled_from(["utf-8", "gb18030", "cp1252"]),
       st.booleans())
def test_any_csv_like_text_gives_a_cohort_or_a_cohort_error(text, target, rule, encoding, strict):
    _cohort_or_refusal(text.encode(encoding, errors="replace"), target, rule, strict)


# ---- model files ------------------------------------------------------------------------------------
def _rehash(bundle: Path) -> None:
    from bundle_edit import read_meta, write_meta
    write_meta(bundle, read_meta(bundle), rehash_files=True)


def _with_keras_config(bundle: Path, target: Path, mutate) -> Path:
    """A copy of ``bundle`` whose model.keras configuration is edited by ``mutate`` and whose hashes are
    recomputed: a forgery that the SHA-256 check alone cannot catch."""
    shutil.copytree(bundle, target)
    buffer = io.BytesIO()
    with zipfile.ZipFile(bundle / "model.keras") as src, zipfile.ZipFile(buffer, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                mutate(config)
                data = json.dumps(config).encode()
            out.writestr(item.filename, data)
    (target / "model.keras").write_bytes(buffer.getvalue())
    _rehash(target)
    return target


MARKER = "/tmp/heart-risk-hostile-bundle-ran-code"


def _os_regulariser(config):
    config["config"]["layers"][1]["config"]["kernel_regularizer"] = {
        "module": "os", "class_name": "system", "config": {"command": f"touch {MARKER}"}, "registered_name": None}


def _builtin_activation(config):
    config["config"]["layers"][1]["config"]["activation"] = {
        "module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"}


def _subprocess_dtype(config):
    config["config"]["layers"][2]["config"]["dtype"] = {
        "module": "subprocess", "class_name": "Popen", "config": {"args": ["touch", MARKER]}, "registered_name": None}


def _custom_layer(config):
    layer = config["config"]["layers"][2]
    layer.update({"class_name": "Boom", "module": None, "registered_name": "evil_pkg>Boom"})


def _custom_initializer(config):
    config["config"]["layers"][1]["config"]["kernel_initializer"] = {
        "module": None, "class_name": "Seeded", "config": {}, "registered_name": "evil_pkg>Seeded"}


def _nested_model(config):
    layer = config["config"]["layers"][2]
    layer.update({"class_name": "Functional", "module": "keras.src.models.functional"})


def _not_a_model(config):
    config["config"] = ["layers"]


@pytest.mark.parametrize("mutate, pattern", [
    (_os_regulariser, r"code outside Keras \('os'\)"),
    (_builtin_activation, r"code outside Keras \('builtins'\)"),
    (_subprocess_dtype, r"code outside Keras \('subprocess'\)"),
    (_custom_layer, r"custom object \('evil_pkg>Boom'\)"),
    (_custom_initializer, r"custom object \('evil_pkg>Seeded'\)"),
    (_nested_model, r"layer class 'Functional' is not allowed"),
    (_not_a_model, r"not a Keras model's"),
], ids=["os-regulariser", "builtin-activation", "subprocess-dtype", "custom-layer", "custom-initializer",
        "nested-model", "not-a-model"])
def test_a_forged_keras_configuration_is_refused_before_keras_reads_it(runs, tmp_path, mutate, pattern):
    from core.model import load_bundle
    Path(MARKER).unlink(missing_ok=True)
    forged = _with_keras_config(runs["bundle"], tmp_path / "forged", mutate)
    with pytest.raises(BundleError, match=pattern) as info:
        load_bundle(forged)
    assert "\n" not in str(info.value)
    assert not Path(MARKER).exists()


def test_a_lambda_layer_whose_code_would_run_is_refused_and_never_runs(runs, tmp_path):
    import keras
    from core.model import load_bundle
    marker = tmp_path / "lambda-ran"
    marker_name = str(marker)  # the lambda's closure is saved with it: a plain string
    n_inputs = load_bundle(runs["bundle"]).preprocessor_.n_outputs_
    inputs = keras.Input(shape=(n_inputs,))
    hidden = keras.layers.Lambda(lambda x: (open(marker_name, "w").close(), x)[1])(inputs)  # noqa: SIM115
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    marker.unlink(missing_ok=True)  # building the model called the lambda once
    forged = tmp_path / "lambda"
    shutil.copytree(runs["bundle"], forged)
    model.save(forged / "model.keras")
    _rehash(forged)
    with pytest.raises(BundleError, match="layer class 'Lambda' is not allowed"):
        load_bundle(forged)
    assert not marker.exists()


def test_every_bundle_file_is_hashed_and_any_edit_is_refused(runs, tmp_path):
    from core.model import load_bundle
    bundle = runs["bundle"]
    meta = json.loads((bundle / "metadata.json").read_text())
    assert set(meta["files"]) == {p.name for p in bundle.iterdir()} - {"metadata.json"}
    for name, digest in meta["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest
    for name in meta["files"]:
        edited = tmp_path / f"edited-{name}"
        shutil.copytree(bundle, edited)
        data = bytearray((edited / name).read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit
        (edited / name).write_bytes(bytes(data))
        with pytest.raises(BundleError, match=f"{name} does not match its recorded SHA-256"):
            load_bundle(edited)
    unlisted = tmp_path / "unlisted"
    shutil.copytree(bundle, unlisted)
    meta_unlisted = dict(meta, files={k: v for k, v in meta["files"].items() if k != "model.keras"})
    from bundle_edit import write_meta
    write_meta(unlisted, meta_unlisted)
    with pytest.raises(BundleError, match="must list exactly the model files"):
        load_bundle(unlisted)
    garbage = tmp_path / "garbage"
    shutil.copytree(bundle, garbage)
    (garbage / "metadata.json").write_bytes(b"\x00\xff not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(garbage)


# ---- zips: what tests/test_bundle_zip.py does not cover ---------------------------------------------
def _zip(entries) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buffer.getvalue()


BUNDLE = [("metadata.json", b"{}"), ("model.keras", b"x"), ("preprocess.json", b"{}")]


def _lie_about_size(data: bytes, name: bytes, file_size: int) -> bytes:
    """Rewrite an entry's uncompressed size in the central directory and in its local header: a zip that
    lies about what it unpacks to."""
    data = bytearray(data)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        length = int.from_bytes(data[pos + 28:pos + 30], "little")
        if bytes(data[pos + 46:pos + 46 + length]) == name:
            data[pos + 24:pos + 28] = file_size.to_bytes(4, "little")
            offset = int.from_bytes(data[pos + 42:pos + 46], "little")
            data[offset + 22:offset + 26] = file_size.to_bytes(4, "little")
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(data)


def test_a_zip_that_lies_about_its_sizes_is_refused_and_writes_no_more_than_declared(tmp_path):
    from core.model import extract_bundle_zip
    honest = _zip(BUNDLE + [("zeros.bin", bytes(8 * 2**20))])
    lying = _lie_about_size(honest, b"zeros.bin", 1000)  # declares 1000 bytes, inflates to 8 MB
    with pytest.raises(BundleError, match="zeros.bin"):
        extract_bundle_zip(lying, tmp_path / "x")
    written = sum(p.stat().st_size for p in (tmp_path / "x").rglob("*") if p.is_file())
    assert written <= 1000 + 64 * 1024


@pytest.mark.parametrize("entries, pattern", [
    ([], "the zip is empty"),
    ([(f"d{i}/", b"") for i in range(100)] + BUNDLE, "the zip has 103 entries"),
    (BUNDLE + [("METADATA.json", b"{}")], "twice"),
    (BUNDLE + [("a/../../../tmp/evil", b"x")], "leaving its folder"),
    ([("only/metadata.json", b"{}"), ("other/model.keras", b"x")], "no model bundle"),
], ids=["empty", "many-directories", "case-duplicate", "deep-traversal", "two-folders"])
def test_more_hostile_zips_are_refused(tmp_path, entries, pattern):
    from core.model import extract_bundle_zip
    with pytest.raises(BundleError, match=pattern):
        extract_bundle_zip(_zip(entries), tmp_path / "x")
    assert not (tmp_path / "tmp").exists()


def test_a_zip_uploaded_to_the_dashboard_that_hides_foreign_code_is_refused(runs, tmp_path, model_store, loaded):
    """The Train page's import: a forged bundle (hashes recomputed) is refused and the session's model
    stays; the store holds nothing new."""
    from core.model import bundle_to_zip
    forged = _with_keras_config(runs["bundle"], tmp_path / "forged", _os_regulariser)
    at = app_with_model(loaded)
    at.switch_page("pages/train.py").run()
    at.file_uploader(key="bundle_upload").set_value(("forged.zip", bundle_to_zip(forged), "application/zip")).run()
    next(b for b in at.button if b.label == tr("train.import")).click().run()
    assert [e.value for e in at.exception] == []
    assert any("code outside Keras ('os')" in e for e in errors(at)), errors(at)
    assert at.session_state["model"] is loaded
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").glob("*/v*"))


def test_a_model_card_from_metadata_of_another_shape_says_so_instead_of_failing(model_store, loaded):
    """Metadata of an older program's shape in the session: the cohort as a bare name."""
    at = app_with_model(loaded)
    meta = dict(loaded.metadata_.to_json_dict(), extra={"cohort": "old-export.csv", "sizes": "?"})
    at.session_state["model_meta"] = meta
    at.switch_page("pages/model_card.py").run()
    assert [e.value for e in at.exception] == []
    assert any(e.startswith(tr("card_page.unreadable", kind="ValidationError")[:40]) for e in errors(at)), errors(at)


def test_mixed_chinese_encodings_are_refused_but_a_gb18030_file_is_not_mistaken_for_a_mix():
    """UTF-8 and GB18030 rows in one file: refused, naming the lines. A GB18030 file in which a line
    happens to be valid UTF-8 ("毛" is the bytes of "ë"): read as Chinese."""
    from core.data import read_table
    rows = ["科室,姓,年龄,结局"] + [f"{ward},{name},{40 + k},{k % 2}" for k, (ward, name) in
                                   enumerate(zip(["心内科", "急诊", "外科"] * 7, ["毛", "男", "么", "王"] * 6))]
    mixed = b"\n".join(line.encode("utf-8" if k % 2 else "gb18030") for k, line in enumerate(rows))
    with pytest.raises(CohortError, match=r"mixes text encodings: lines 2, 4, 6, .* are UTF-8, lines 1, 3, 5, .* are not"):
        read_table(mixed, name="wards.csv")
    single = "\n".join(["姓,年龄,结局"] + [f"{name},{40 + k},{k % 2}" for k, name in enumerate(["毛", "男", "么"] * 5)])
    read = read_table(single.encode("gb18030"))
    assert read.encoding == "gb18030" and set(read.df["姓"]) == {"毛", "男", "么"}
