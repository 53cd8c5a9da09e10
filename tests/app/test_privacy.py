"""Privacy: no patient value in a log line or an error message, an uploaded cohort never touches the disk,
exports cannot run as spreadsheet formulas, and with login configured nothing of a cohort shows before it.

Patient values are made recognisable (cholesterol 287.123, blood pressure 141.777, and impossible ones
like 913.579 mmHg or an age of -7.531) so that a leak anywhere can be searched for as a string.
"""
from __future__ import annotations

import ast
import hashlib
import io
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data import demo_cohort
from core.errors import CoreError
from i18n_table import tr
from tables import plain_text, shown_tables

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")

# Values no formatting of another number produces by chance; each is searched for as text.
SENTINELS = {"chol": 287.123, "trestbps": 141.777, "thalach": 163.919, "oldpeak": 2.345}
IMPOSSIBLE = {"trestbps": 913.579, "age": -7.531, "chol": 1234.567}
TEXT_SENTINEL = "=SENTINEL_CMD(47)"
NEEDLES = ["287.123", "141.777", "163.919", "2.345", "913.579", "7.531", "1234.567", "SENTINEL_CMD"]


def leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.fixture
def all_logs():
    """Every log record of the process at DEBUG, also of loggers that do not propagate (Streamlit's)."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a message that cannot be formatted is kept as its template
                text = str(record.msg)
            if record.exc_info:
                text += logging.Formatter().formatException(record.exc_info)
            records.append(text)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger) and not lg.propagate]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield records
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


def sentinel_cohort(impossible: bool = True) -> pd.DataFrame:
    df = demo_cohort()
    for k, (column, value) in enumerate(SENTINELS.items()):
        df.loc[[k, k + 10, k + 20], column] = value
    if impossible:
        for k, (column, value) in enumerate(IMPOSSIBLE.items()):
            df.loc[40 + k, column] = value
    return df


def sentinel_patients(impossible: bool) -> pd.DataFrame:
    df = sentinel_cohort(impossible=False).head(20).drop(columns="num")
    if impossible:
        df.loc[3, "trestbps"] = IMPOSSIBLE["trestbps"]
        df.loc[4, "age"] = IMPOSSIBLE["age"]
        df["chol"] = df["chol"].astype(object)
        df.loc[5, "chol"] = TEXT_SENTINEL
    return df


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The module's one bundle, trained by the CLI on the cohort with sentinels (2 epochs)."""
    tmp = tmp_path_factory.mktemp("privacy")
    data = tmp / "sentinel-cohort.csv"
    sentinel_cohort().to_csv(data, index=False)
    bundle = tmp / "bundle"
    done = cli("train", "--data", str(data), "--epochs", "2", "--out", str(bundle))
    assert done.returncode == 0, done.stderr[-2000:]
    return {"tmp": tmp, "data": data, "bundle": bundle, "train": done}


# ---- the command line ------------------------------------------------------------------------------
def test_cli_training_names_columns_and_rows_never_values(trained):
    done = trained["train"]
    assert "trestbps: 1 value outside 60–250 mmHg, row 41" in done.stderr
    assert "age: 1 value outside 18–100 years, row 42" in done.stderr
    assert leaks(done.stderr) == [] and leaks(done.stdout) == []


def test_cli_refusal_of_patients_names_rows_never_values(trained):
    tmp = trained["tmp"]
    path = tmp / "patients-impossible.csv"
    sentinel_patients(impossible=True).to_csv(path, index=False)
    done = cli("predict", "--model", str(trained["bundle"]), "--input", str(path), "--output", str(tmp / "x.csv"))
    assert done.returncode == 2
    assert "chol: 1 text value in a numeric column, row 6" in done.stderr
    assert leaks(done.stderr) == [] and leaks(done.stdout) == []


def test_cli_scoring_and_explaining_print_no_patient_values(trained, capsys, all_logs):
    from core.cli import main
    tmp = trained["tmp"]
    path = tmp / "patients.csv"
    sentinel_patients(impossible=False).to_csv(path, index=False)
    assert main(["predict", "--model", str(trained["bundle"]), "--input", str(path), "--output", str(tmp / "scored.csv")]) == 0
    assert main(["explain", "--model", str(trained["bundle"]), "--input", str(path), "--json"]) == 0
    out = capsys.readouterr()
    assert leaks(out.err) == [] and leaks(out.out) == []
    assert leaks("\n".join(all_logs)) == []
    assert "287.123" in (tmp / "scored.csv").read_text(encoding="utf-8-sig")  # the output file is the place for them


# ---- the engine, in process: logging and warnings at every level ------------------------------------
def test_core_paths_log_and_warn_without_patient_values(trained, tmp_path, all_logs):
    from core.data import load_cohort, read_table, validate
    from core.errors import PatientError
    from core.explain import explain
    from core.model import TrainConfig, load_bundle, save_bundle
    from core.workflow import train_on_cohort
    from core.workflow import check_patient, patient_risk, score_table, sensitivity
    from core.data import cleveland_schema

    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = load_cohort(trained["data"])
        messages += [p.message for p in cohort.problems]
        result = train_on_cohort(cohort, TrainConfig(epochs=2))
        bundle = save_bundle(result.model, tmp_path / "b", result.metrics, cohort.fingerprint, "privacy")
        model = load_bundle(bundle)
        patients = sentinel_patients(impossible=False)
        score_table(model, patients)
        explain(model.preprocessor_, model.networks_, model.preprocessor_.encode(patients), model.background_)
        patient = {k: patients.iloc[0][k] for k in model.schema.feature_names}
        patient_risk(model, patient)
        sensitivity(model, patient, "chol")
        for column, value in IMPOSSIBLE.items():  # one impossible value at a time
            with pytest.raises(PatientError) as info:
                check_patient(dict(patient, **{column: value}), model.schema, model.preprocessor_)
            messages.append(str(info.value))
        with pytest.raises(PatientError) as info:
            check_patient(dict(patient, chol=TEXT_SENTINEL), model.schema, model.preprocessor_)
        messages.append(str(info.value))
        text = sentinel_cohort().astype({"chol": object})
        text.loc[7, "chol"] = TEXT_SENTINEL
        with pytest.raises(CoreError) as info:
            validate(text, cleveland_schema())
        messages.append(str(info.value))
        with pytest.raises(CoreError) as info:
            read_table(b"age,chol\n1," + TEXT_SENTINEL.encode() + b'"x\n2,"3\n')
        messages.append(str(info.value))
    assert len(messages) > 10
    assert leaks("\n".join(messages)) == []
    assert leaks("\n".join(all_logs)) == []
    assert leaks("\n".join(str(w.message) for w in caught)) == []


def test_a_failing_training_run_logs_its_type_and_stack_but_not_the_message(all_logs):
    """An engine bug's message may quote a value: the job keeps the type name, the log the code lines."""
    from ui.jobs import TrainingJob

    def train(cohort, config, progress=None, should_stop=None, network_progress=None):
        raise ValueError(f"could not convert {SENTINELS['chol']} in row 3")

    job = TrainingJob(cohort=None, config=None, train=train).start()
    assert job.wait(30)
    assert job.error == "ValueError" and job.internal_error
    text = "\n".join(all_logs)
    assert "ValueError" in text and "raise ValueError" in text and leaks(text) == []


# ---- the dashboard ----------------------------------------------------------------------------------
@pytest.fixture
def private_dirs(tmp_path, monkeypatch):
    """A store and a temporary directory of the test's own, to see what the dashboard writes."""
    store, temp = tmp_path / "store", tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("HEART_RISK_STORE", str(store))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")
    monkeypatch.delenv("HEART_RISK_AUDIT", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    return store, temp


def files_holding(root: Path, needles, since: float) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if ".git" in path.parts or not path.is_file() or path.stat().st_mtime < since:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(n.encode() in data for n in needles):
            found.append(str(path))
    return found


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["lang"] = "en"
    return at.run()


def all_text(at: AppTest) -> str:
    """Every text the run drew (main and sidebar), tables included."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error",
                 "success", "metric"):
        for element in getattr(at, kind):
            parts.append(str(getattr(element, "value", "")))
            parts.append(str(getattr(element, "label", "")))
    for element in at.markdown:  # what the screen shows: escapes resolved, tables included
        parts.append(plain_text(element.value))
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    return "\n".join(parts)


def test_an_uploaded_cohort_stays_in_memory_and_its_values_reach_no_log(private_dirs, all_logs):
    store, temp = private_dirs
    started = time.time() - 1
    at = new_app()
    data = sentinel_cohort().to_csv(index=False).encode()
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    at.file_uploader(key="cohort_upload").set_value(("sentinel.csv", data, "text/csv")).run()
    assert not at.exception
    assert at.session_state["cohort"].name == "sentinel.csv"
    for page in ("pages/train.py", "pages/patient.py", "pages/explain.py", "pages/cohort.py"):
        at.switch_page(page).run()
        assert not at.exception, page
    assert all_logs and leaks("\n".join(all_logs)) == []
    report = shown_tables(at.main)[0].to_csv()
    assert "trestbps" in report and leaks(report) == []  # the report names column and rows only
    assert not store.exists() or files_holding(store, NEEDLES, started) == []
    assert files_holding(temp, NEEDLES, started) == []
    assert files_holding(ROOT, NEEDLES, started) == []


def test_a_refused_upload_says_column_and_rows_never_values(private_dirs):
    at = new_app()
    df = sentinel_cohort().astype({"chol": object})
    df.loc[7, "chol"] = TEXT_SENTINEL
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    at.file_uploader(key="cohort_upload").set_value(("bad.csv", df.to_csv(index=False).encode(), "text/csv")).run()
    errors = [e.value for e in at.error]
    assert any("chol: 1 text value in a numeric column, row 8" in e for e in errors), errors
    assert leaks(all_text(at)) == []


# ---- exports ----------------------------------------------------------------------------------------
NEUTRALISERS = {"csv_bytes", "excel_bytes"}


def _download_calls():
    """(file, line, call) of every st.download_button in the dashboard's code."""
    for path in sorted([*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "download_button":
                yield path.name, node.lineno, node


def _is_table(call: ast.Call) -> bool:
    text = ast.unparse(call)
    return any(marker in text for marker in ("text/csv", ".csv", "spreadsheetml", ".xlsx", "ms-excel"))


def test_every_table_download_goes_through_the_formula_neutraliser():
    tables = [(name, line, call) for name, line, call in _download_calls() if _is_table(call)]
    for name, line, call in tables:
        data = call.args[1] if len(call.args) > 1 else next(k.value for k in call.keywords if k.arg == "data")
        called = {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
                  for n in ast.walk(data) if isinstance(n, ast.Call)}
        assert called & NEUTRALISERS, f"{name}:{line} offers a table not made by csv_bytes/excel_bytes"
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py")]:  # no hand-made CSV bypasses them
        assert ".to_csv(" not in path.read_text(encoding="utf-8"), path.name


def test_exported_tables_cannot_run_as_formulas():
    from openpyxl import load_workbook

    from core.workflow import csv_bytes
    from core.workflow import excel_bytes
    df = pd.DataFrame({"note": ["=1+2", "+SUM(A1)", "-3+cmd", "@x", "\tTAB", "plain"], "risk": [0.1, -0.2, 0.3, 0.4, 0.5, 0.6],
                       "=HYPERLINK(\"x\")": ["a"] * 6})
    text = csv_bytes(df).decode("utf-8-sig")
    back = pd.read_csv(io.StringIO(text))
    assert all(not str(v).startswith(("=", "+", "-", "@", "\t")) for v in back["note"])
    assert back["risk"].tolist() == [0.1, -0.2, 0.3, 0.4, 0.5, 0.6]  # numbers stay numbers
    assert not back.columns[-1].startswith("=")
    sheet = load_workbook(io.BytesIO(excel_bytes(df))).active
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert all(not str(c.value).startswith(("=", "+", "@")) for c in cells if isinstance(c.value, str))


# ---- login ------------------------------------------------------------------------------------------
PASSWORD = "correct horse battery staple"


def password_secrets(kind: str = "pbkdf2") -> dict:
    from ui.auth import hash_password
    if kind == "pbkdf2":
        return {"password_pbkdf2": hash_password(PASSWORD, iterations=1000)}  # few iterations: a fast test
    return {"password_sha256": hashlib.sha256(PASSWORD.encode()).hexdigest()}


def locked_app(secrets: dict, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.session_state["lang"] = "en"
    return at.run()


def assert_closed(at: AppTest) -> None:
    """The login is drawn and nothing of a cohort or a model: no cohort loaded, no table, no chart."""
    assert not at.exception
    assert [t.value for t in at.title] == [tr("auth.title")]
    assert at.session_state["cohort"] is None and at.session_state["model"] is None
    assert not shown_tables(at) and not at.metric and not at.get("plotly_chart")
    text = all_text(at)
    assert "Cleveland" not in text and tr("sidebar.cohort") not in text and "303" not in text


def log_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="auth_password").input(password)
    return at.get("form_submit_button")[0].click().run()


@pytest.mark.parametrize("kind", ["pbkdf2", "sha256"])
def test_a_password_keeps_every_page_closed_until_it_is_given(private_dirs, kind):
    at = locked_app(password_secrets(kind))
    assert_closed(at)
    for page in ("pages/patient.py", "pages/train.py", "pages/explain.py", "pages/model_card.py"):
        at.switch_page(page).run()
        assert_closed(at)
    at.switch_page("pages/cohort.py").run()
    log_in(at, "correct horse battery stapler")
    assert_closed(at)
    assert tr("auth.wrong") in [e.value for e in at.error]
    log_in(at, PASSWORD)
    assert not at.exception
    assert tr("cohort.title") in [t.value for t in at.title]
    assert at.session_state["cohort"] is not None
    assert f"{tr('cohort.rows')}  \n### 303" in [m.value for m in at.markdown]  # the cohort page, drawn

    # signing out forgets the session's data: the next person starts from the login
    next(b for b in at.sidebar.button if b.label == tr("auth.logout")).click().run()
    assert_closed(at)


def test_wrong_passwords_lock_the_session_for_a_while(private_dirs):
    from ui.auth import MAX_FAILURES
    at = locked_app(password_secrets())
    for _ in range(MAX_FAILURES):
        log_in(at, "guess")
    log_in(at, PASSWORD)  # right, but too late
    assert_closed(at)
    assert any(e.startswith("Too many wrong passwords") for e in (x.value for x in at.error))


def test_a_malformed_password_hash_keeps_the_dashboard_closed(private_dirs):
    at = locked_app({"password_pbkdf2": "pbkdf2_sha256$1000$not-hex$zz"})
    log_in(at, PASSWORD)
    assert_closed(at)
    assert tr("auth.bad_hash") in [e.value for e in at.error]


def test_single_sign_on_shows_nothing_until_streamlit_says_the_user_is_in(private_dirs):
    oidc = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                     "client_id": "heart-risk", "client_secret": "s",
                     "server_metadata_url": "https://login.example.org/.well-known/openid-configuration"}}
    at = locked_app(oidc, user={"is_logged_in": False})
    assert_closed(at)
    at.switch_page("pages/patient.py").run()
    assert_closed(at)
    at = locked_app(oidc, user={"is_logged_in": True, "name": "Dr. Lin", "email": "lin@example.org"})
    assert not at.exception
    assert tr("cohort.title") in [t.value for t in at.title]
    assert tr("auth.signed_in_as", name="Dr. Lin") in [c.value for c in at.sidebar.caption]


def test_no_login_configured_means_no_login_form(private_dirs):
    at = new_app()
    assert not at.exception and tr("cohort.title") in [t.value for t in at.title]
    assert not [w for w in at.text_input if w.key == "auth_password"]


def test_an_unreadable_secrets_file_keeps_the_dashboard_closed(tmp_path, monkeypatch):
    """A secrets.toml that exists but cannot be parsed: login may have been meant, so nothing opens."""
    import streamlit as st

    from ui import auth
    broken = tmp_path / "secrets.toml"
    broken.write_text("password_pbkdf2 = 'unterminated\n")

    class Unreadable:
        def to_dict(self):
            raise FileNotFoundError("cannot parse")

    monkeypatch.setattr(st, "secrets", Unreadable())
    monkeypatch.setattr(st, "get_option", lambda key: [str(broken)] if key == "secrets.files" else None)
    assert auth.read_secrets() is None
    broken.unlink()
    assert auth.read_secrets() == {}


def test_password_hashes_are_salted_and_compared_in_constant_time():
    from ui import auth
    one, two = auth.hash_password("pw", iterations=1000), auth.hash_password("pw", iterations=1000)
    assert one != two and one.startswith("pbkdf2_sha256$1000$")  # a fresh salt each time
    assert auth.verify_password("pw", {"password_pbkdf2": one})
    assert not auth.verify_password("pW", {"password_pbkdf2": one})
    assert auth.hash_password("pw").split("$")[1] == str(auth.PBKDF2_ITERATIONS)
    digest = hashlib.sha256(b"pw").hexdigest()
    assert auth.verify_password("pw", {"password_sha256": digest.upper()})
    assert not auth.verify_password("pw ", {"password_sha256": digest})
    with pytest.raises(ValueError):
        auth.verify_password("pw", {"password_sha256": "abc"})


def test_xsrf_protection_stays_on():
    import tomllib
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert "enableCORS" not in config["server"] or config["server"]["enableCORS"] is True
