"""The dashboard, page by page, with Streamlit's AppTest (no browser).

Training runs in the page's real background thread; the tests wait for the job (TrainingJob.wait) and
re-run the script, as the page's fragment does every half second in a browser.
"""
from __future__ import annotations

import functools
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data import demo_cohort
from i18n_table import tr
from tables import shown_tables

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = ["pages/cohort.py", "pages/train.py", "pages/patient.py", "pages/explain.py", "pages/model_card.py"]


@pytest.fixture(autouse=True)
def model_store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("HEART_RISK_STORE", str(root))
    return root


def new_app(lang: str = "en") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["lang"] = lang
    return at.run()


def no_exceptions(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def widget(elements, label: str):
    matches = [w for w in elements if w.label == label]
    assert matches, f"no widget labelled {label!r}: {[w.label for w in elements]}"
    return matches[0]


def metric_value(at: AppTest, label: str) -> str:
    return widget(at.metric, label).value


def percent(text: str) -> float:
    return float(text.rstrip("%"))


def plotly_charts(at: AppTest) -> list:
    return list(at.main.get("plotly_chart"))


def train(at: AppTest, epochs: int = 5, early_stopping: bool = True, members: int = 1) -> None:
    """Fill the Train page's form and wait for the background run (one network unless asked: faster)."""
    at.switch_page("pages/train.py").run()
    widget(at.number_input, tr("train.epochs")).set_value(epochs)
    widget(at.number_input, tr("train.members")).set_value(members)
    widget(at.checkbox, tr("train.early_stopping")).set_value(early_stopping)
    at.get("form_submit_button")[0].click().run()
    no_exceptions(at)
    job = at.session_state["train_job"]
    assert job.wait(120), "training did not finish"
    at.run()
    no_exceptions(at)


def csv_upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    at.file_uploader(key="cohort_upload").set_value((name, data, "text/csv")).run()
    return at


def cleveland_csv(rows=None) -> bytes:
    df = demo_cohort() if rows is None else demo_cohort().iloc[rows]
    return df.to_csv(index=False).encode()


# ---- every page, both languages, without a model ------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_renders_without_a_model(lang):
    at = new_app(lang)
    no_exceptions(at)
    assert tr("cohort.title", lang) in texts(at.title)
    figures = [m.value for m in at.main.markdown]  # the key figures: Markdown, not st.metric (ui.common)
    ill = int((demo_cohort()["num"] > 0).sum())
    for label, value in (("cohort.rows", "303"), ("cohort.positive", f"{ill}"), ("cohort.negative", f"{303 - ill}"),
                         ("cohort.prevalence", f"{ill / 303:.1%}")):
        assert f"{tr(label, lang)}  \n### {value}" in figures
    assert plotly_charts(at) == []  # the distributions are drawn when their section is opened
    at.session_state["cohort_distributions_open"] = True  # what opening the expander sets
    at.run()
    no_exceptions(at)
    assert len(plotly_charts(at)) == 13  # one distribution per feature of the demo cohort
    for page in PAGES[1:]:
        at.switch_page(page).run()
        no_exceptions(at)
    # the pages that need a model stop politely and point to the Train page
    at.switch_page("pages/patient.py").run()
    assert tr("common.need_model", lang) in texts(at.info)
    assert at.main.get("page_link")
    assert tr("notice.decision_support", lang) in texts(at.sidebar.warning)


def test_the_demo_cohort_is_the_default_and_labelled_synthetic():
    at = new_app()
    assert at.session_state["cohort"].synthetic
    sidebar = " ".join(texts(at.sidebar.markdown))
    assert tr("sidebar.synthetic") in sidebar
    assert tr("cohort.synthetic_note") in texts(at.info)
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    assert tr("cohort.upload_limit", mb=50) in texts(at.caption)


def test_the_first_page_draws_its_two_short_tables_without_the_dataframe_frontend():
    """The report and the missing values are Markdown tables: no st.dataframe on the page that opens first
    (its frontend is 1.6 MB of JavaScript: ui.common.show_table)."""
    at = new_app()
    cohort = at.session_state["cohort"]
    assert not at.main.dataframe
    report, missing = shown_tables(at.main)
    assert report.iloc[:, 0].tolist() == [p.column for p in cohort.problems]
    names = [f.name for f in cohort.schema.model_features]
    assert missing.iloc[:, 0].tolist() == names
    counts = cohort.df[names].isna().sum()
    assert missing.iloc[:, 2].astype(int).tolist() == counts.tolist() and counts.sum() > 0


def test_the_language_switch_shows_chinese():
    at = new_app()
    at.sidebar.selectbox(key="lang_choice").set_value("zh").run()
    no_exceptions(at)
    assert "队列" in texts(at.title)
    assert any("当前队列" in m for m in texts(at.sidebar.markdown))
    assert tr("notice.decision_support", "zh") in texts(at.sidebar.warning)


# ---- the cohort page --------------------------------------------------------------------------
def test_a_bad_csv_shows_its_error_and_keeps_the_previous_cohort_and_model():
    at = new_app()
    before = at.session_state["cohort"]
    sentinel_model = type("M", (), {"preprocessor_": type("P", (), {"feature_names": ["age"]})()})()
    at.session_state["model"] = sentinel_model
    at.session_state["model_info"] = {"name": "kept", "created": "—", "test_auc": 0.9}
    lines = cleveland_csv(range(40)).decode().splitlines()
    cells = lines[3].split(",")
    cells[0] = "sixty"  # text in the age column
    lines[3] = ",".join(cells)
    csv_upload(at, "ward.csv", "\n".join(lines).encode())
    no_exceptions(at)
    errors = texts(at.error)
    assert any("age: 1 text value in a numeric column, row 3" in e for e in errors), errors
    assert tr("cohort.kept") in texts(at.caption)
    assert at.session_state["cohort"] is before
    assert at.session_state["model"] is sentinel_model


def test_a_file_that_is_not_csv_is_refused_in_one_line():
    at = new_app()
    before = at.session_state["cohort"]
    csv_upload(at, "renamed-workbook.csv", b"PK\x03\x04" + bytes(200))
    assert any("Excel workbook" in e for e in texts(at.error))
    assert at.session_state["cohort"] is before


def test_a_cleveland_upload_replaces_the_demo_cohort_and_reports_its_problems():
    at = new_app()
    df = demo_cohort()
    df.loc[4, "trestbps"] = 400  # impossible: set to missing with a warning
    csv_upload(at, "cleveland.csv", df.to_csv(index=False).encode())
    no_exceptions(at)
    cohort = at.session_state["cohort"]
    assert cohort.name == "cleveland.csv" and not cohort.synthetic and cohort.n == 303
    report = shown_tables(at.main)[0]
    assert "trestbps" in report.iloc[:, 0].tolist()
    assert tr("sidebar.synthetic") not in " ".join(texts(at.sidebar.markdown))


def test_a_csv_of_another_layout_goes_through_the_schema_step():
    rng = np.random.default_rng(1)
    n = 60
    age = rng.integers(35, 80, n)
    outcome = np.where(rng.random(n) < 0.4, "Yes", "No")
    lines = ["age_years,sbp,smoker,outcome"] + [
        f"{a},{rng.normal(135, 15):.1f},{'Yes' if rng.random() < 0.3 else 'No'},{o}" for a, o in zip(age, outcome)]
    at = new_app()
    before = at.session_state["cohort"]
    csv_upload(at, "registry.csv", "\n".join(lines).encode())
    assert at.session_state["cohort"] is before  # nothing changes until the user says what the columns mean
    at.selectbox(key="schema_target").set_value("outcome").run()
    assert at.text_input(key="schema_rule").value == "== Yes"  # suggested
    assert len(at.data_editor) == 1  # the inferred schema, editable
    # a rule that cannot apply: refused, nothing changes
    at.text_input(key="schema_rule").set_value("> 5").run()
    widget(at.button, tr("schema.apply")).click().run()
    assert any("outcome rule '> 5' needs numbers" in e for e in texts(at.error))
    assert at.session_state["cohort"] is before
    at.text_input(key="schema_rule").set_value("== Yes").run()
    widget(at.button, tr("schema.apply")).click().run()
    no_exceptions(at)
    cohort = at.session_state["cohort"]
    assert cohort.name == "registry.csv" and cohort.n == n
    assert cohort.prevalence == pytest.approx(np.mean(outcome == "Yes"))
    assert cohort.schema.target == "outcome"
    assert set(cohort.schema.feature_names) == {"age_years", "sbp", "smoker"}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def uci_mirror(tmp_path):
    df = demo_cohort()
    body = "\n".join(",".join("?" if v != v else f"{v:g}" for v in row) for row in df.itertuples(index=False))
    (tmp_path / "processed.cleveland.data").write_text(body + "\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/processed.cleveland.data"
    server.shutdown()
    server.server_close()


def test_the_uci_button_loads_the_file_when_online(uci_mirror, monkeypatch):
    monkeypatch.setenv("HEART_RISK_UCI_URL", uci_mirror)
    at = new_app()
    at.segmented_control(key="cohort_source@en").set_value("uci").run()
    widget(at.button, tr("cohort.fetch_uci")).click().run()
    no_exceptions(at)
    assert tr("cohort.fetched") in texts(at.success)
    cohort = at.session_state["cohort"]
    assert cohort.name.startswith("UCI Cleveland") and cohort.n == 303 and not cohort.synthetic


def test_the_uci_button_says_offline_and_changes_nothing(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HEART_RISK_UCI_URL", f"http://127.0.0.1:{port}/processed.cleveland.data")
    at = new_app()
    before = at.session_state["cohort"]
    at.segmented_control(key="cohort_source@en").set_value("uci").run()
    widget(at.button, tr("cohort.fetch_uci")).click().run()
    no_exceptions(at)
    assert any("offline" in e for e in texts(at.error))
    assert at.session_state["cohort"] is before


# ---- the key flow -----------------------------------------------------------------------------
def test_demo_to_training_to_patient_to_explanation_to_card(model_store):
    at = new_app()
    train(at, epochs=5)
    assert any(s.startswith("Training finished: 5 epochs") for s in texts(at.success))
    model = at.session_state["model"]
    assert model is at.session_state["train_result"].model
    assert tr("sidebar.unsaved_model") in texts(at.sidebar.text)
    auc = float(metric_value(at, tr("metric.roc_auc")))
    assert 0.5 < auc <= 1.0
    assert len(plotly_charts(at)) == 6  # three training curves, ROC, calibration, confusion matrix
    # every test metric with its 95% interval (Wilson, DeLong on the log-odds scale, bootstrap for Brier)
    ivs = at.session_state["test_intervals"]
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "brier"):
        assert ivs[key]["low"] < ivs[key]["high"]
        assert tr("metric.interval", low=f"{ivs[key]['low']:.3f}", high=f"{ivs[key]['high']:.3f}") in texts(at.caption)
    assert ivs["roc_auc"]["low"] < auc < ivs["roc_auc"]["high"]

    # the threshold moves sensitivity against specificity
    sens_half = float(metric_value(at, tr("metric.sensitivity")))
    at.slider(key="threshold").set_value(0.2).run()
    assert float(metric_value(at, tr("metric.sensitivity"))) >= sens_half
    assert float(metric_value(at, tr("metric.roc_auc"))) == auc  # the ranking does not depend on it

    # save it under a name
    widget(at.text_input, tr("train.save_name")).set_value("flow-test")
    widget(at.button, tr("train.save")).click().run()
    no_exceptions(at)
    assert tr("train.saved_note", name="flow-test", version="v1") in texts(at.success)
    assert (model_store / "flow-test" / "v1" / "metadata.json").is_file()
    stored = json.loads((model_store / "flow-test" / "v1" / "metadata.json").read_text())["metrics"]
    assert stored["roc_auc_low"] < stored["roc_auc"] < stored["roc_auc_high"]  # for the card and the report
    assert "flow-test (v1)" in texts(at.sidebar.text)

    # the patient page: a risk, a band, reasons, a waterfall; the sensitivity strip when asked for
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    risk_label = tr("patient.risk")
    first = percent(metric_value(at, risk_label))
    assert 0 <= first <= 100
    assert len(plotly_charts(at)) == 1
    at.segmented_control(key="pt_more").set_value("sensitivity").run()
    assert len(plotly_charts(at)) == 2
    assert any("points" in m for m in texts(at.markdown))
    assert at.session_state["model"] is model  # no reloading

    # a change: the new risk beside the previous one
    hr = widget(at.text_input, "Max heart rate (bpm)")
    hr_value = float(hr.value)
    hr.set_value(f"{hr_value - 60 if hr_value > 120 else hr_value + 60:g}").run()
    no_exceptions(at)
    second = percent(metric_value(at, risk_label))
    assert second != first
    assert percent(metric_value(at, tr("patient.previous"))) == first
    delta = widget(at.metric, risk_label).delta
    assert delta.startswith(f"{second - first:+.1f}"[:2])

    # cholesterol in mmol/L: converted before the model sees it, the risk stays (to rounding)
    chol = float(widget(at.text_input, "Serum cholesterol (mg/dl)").value)
    at.segmented_control(key="pt_unit_chol").set_value("mmol/L").run()
    no_exceptions(at)
    mmol = widget(at.text_input, "Serum cholesterol (mmol/L)").value
    assert float(mmol) == pytest.approx(chol / 38.67, abs=0.006)
    third = percent(metric_value(at, risk_label))
    assert abs(third - second) <= 0.2

    # the explain page: importance, beeswarm, dependence over a sample; cached per size
    at.switch_page("pages/explain.py").run()
    no_exceptions(at)
    assert len(plotly_charts(at)) == 3
    assert any(c.startswith("SHAP values of 200 patients") for c in texts(at.caption))
    at.slider(key="explain_size").set_value(50).run()
    assert any(c.startswith("SHAP values of 50 patients") for c in texts(at.caption))
    assert list(at.session_state["explain_cache"])[0][2] == 50

    # the model card, then every page again in Chinese with a model
    at.switch_page("pages/model_card.py").run()
    no_exceptions(at)
    card = " ".join(texts(at.markdown))
    assert "Model card: flow-test" in card and "ROC AUC" in card
    assert len(at.get("download_button")) == 2
    at.sidebar.selectbox(key="lang_choice").set_value("zh").run()
    assert "模型卡：flow-test" in " ".join(texts(at.markdown))
    for page in PAGES:
        at.switch_page(page).run()
        no_exceptions(at)
    # the patient entered in English is still there, in Chinese, with the unit chosen
    at.switch_page("pages/patient.py").run()
    assert percent(metric_value(at, tr("patient.risk", "zh"))) == third
    assert widget(at.text_input, "血清胆固醇 (mmol/L)").value == mmol
    assert widget(at.selectbox, "胸痛类型").options[:2] == ["未测量", "典型心绞痛"]  # the label above the field, not in the value


def test_stop_keeps_the_best_weights():
    at = new_app()
    at.switch_page("pages/train.py").run()
    widget(at.number_input, tr("train.epochs")).set_value(2000)
    widget(at.checkbox, tr("train.early_stopping")).set_value(False)
    at.get("form_submit_button")[0].click().run()
    job = at.session_state["train_job"]
    at.run()
    assert job.running, "a 2000-epoch run should still be going"
    assert at.get("progress")  # the live fragment draws a progress bar
    at.button(key="stop_training").click().run()
    assert job.wait(60)
    at.run()
    no_exceptions(at)
    model = at.session_state["model"]
    assert model.stopped_by_user_ and model.epochs_run_ < 2000
    assert 1 <= model.best_epoch_ <= model.epochs_run_
    assert any(s.startswith("Training stopped by you") for s in texts(at.success))


# ---- the model store --------------------------------------------------------------------------
@pytest.fixture
def saved_model(model_store):
    from core.data import cohort_from_frame
    from core.model import TrainConfig, save_bundle
    from core.workflow import card_extra, cohort_summary
    from core.workflow import train_on_cohort
    from core.data import cleveland_schema
    from core.model import save_model

    cohort = cohort_from_frame(demo_cohort(), cleveland_schema(), name="demo", synthetic=True)
    result = train_on_cohort(cohort, TrainConfig(epochs=3))
    extra = card_extra(cohort_summary(cohort), result.sizes)
    path = save_model(lambda d: save_bundle(result.model, d, result.metrics, cohort.fingerprint, "stored", extra=extra),
                      "stored")  # the store of $HEART_RISK_STORE, as the page uses it
    return path, result


def test_load_import_and_delete_saved_models(saved_model, model_store):
    from core.model import bundle_to_zip
    path, result = saved_model
    at = new_app()
    at.switch_page("pages/train.py").run()
    widget(at.button, tr("train.load")).click().run()
    no_exceptions(at)
    model = at.session_state["model"]
    np.testing.assert_allclose(model.predict_risk(demo_cohort()), result.model.predict_risk(demo_cohort()))
    assert "stored (v1)" in texts(at.sidebar.text)
    assert at.get("download_button")

    # the patient page works on a loaded model, and its card says where it came from
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    assert percent(metric_value(at, tr("patient.risk"))) >= 0
    at.switch_page("pages/model_card.py").run()
    assert "Model card: stored" in " ".join(texts(at.markdown))

    # import the zip of the same bundle under another name
    at.switch_page("pages/train.py").run()
    at.file_uploader(key="bundle_upload").set_value(("stored.zip", bundle_to_zip(path), "application/zip")).run()
    at.text_input(key="import_name").set_value("imported").run()
    widget(at.button, tr("train.import")).click().run()
    no_exceptions(at)
    assert (model_store / "imported" / "v1" / "metadata.json").is_file()
    assert "imported (v1)" in texts(at.sidebar.text)

    # a hostile zip is refused with a message and changes nothing
    hostile = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("../escape.json", "{}")
    at.file_uploader(key="bundle_upload").set_value(("evil.zip", hostile.getvalue(), "application/zip")).run()
    widget(at.button, tr("train.import")).click().run()
    assert any("leaving its folder" in e for e in texts(at.error))
    assert "imported (v1)" in texts(at.sidebar.text)

    # delete the first one (needs the confirmation)
    labels = at.selectbox(key="saved_choice").options
    target = next(i for i, label in enumerate(labels) if label.startswith("stored v1"))
    at.selectbox(key="saved_choice").set_value(target).run()
    assert widget(at.button, tr("train.delete")).disabled
    at.checkbox(key="confirm_delete").check().run()
    widget(at.button, tr("train.delete")).click().run()
    no_exceptions(at)
    assert not path.exists()
    assert (model_store / "imported" / "v1").is_dir()


# ---- startup ----------------------------------------------------------------------------------
def test_the_first_page_draws_without_tensorflow():
    """The Cohort page and the sidebar import no TensorFlow (warming it in the background is switched off)."""
    script = (
        "import sys, time\n"
        "from streamlit.testing.v1 import AppTest\n"
        "t0 = time.perf_counter()\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60).run()\n"
        "elapsed = time.perf_counter() - t0\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "assert at.title[0].value == 'Cohort'\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(len(loaded), round(elapsed, 2))\n")
    env = {**os.environ, "HEART_RISK_WARM_TF": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    modules, seconds = done.stdout.split()[-2:]
    assert modules == "0"
    print(f"first page in {seconds} s without TensorFlow")


def test_the_train_form_trains_an_ensemble_whose_range_the_patient_page_shows():
    at = new_app()
    at.switch_page("pages/train.py").run()
    assert widget(at.number_input, tr("train.members")).value == 5  # the dashboard's default: every risk has a range
    train(at, epochs=8, members=3)
    assert at.session_state["model"].n_members_ == 3
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    assert any("The 3 networks disagree from" in m for m in texts(at.markdown))  # a disagreement, not a CI


def test_an_isotonic_model_on_the_patient_page_shows_both_risks_and_a_waterfall_that_adds_up():
    """Isotonic recalibration cannot be folded into the networks: the risk shown is the calibrated one, the
    reasons explain the network's output. The note showed the calibrated risk twice and the waterfall ended
    on the calibrated risk, not on what its bars add up to."""
    import json

    from core.model import fit_isotonic
    from fake_models import logistic_model
    model = logistic_model()
    model.base_networks_ = list(model.networks_)
    p = model.predict_risk_raw(model.preprocessor_.encode(demo_cohort()))
    outcome = (np.random.default_rng(0).random(p.size) < p ** 2).astype(float)  # the network's risks run high
    model.calibration_ = fit_isotonic(p, outcome)
    at = new_app()
    at.session_state["model"] = model
    at.session_state["model_info"] = {"name": "isotonic", "created": "—", "test_auc": 0.9}
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    shown = percent(metric_value(at, tr("patient.risk")))
    spec = json.loads(plotly_charts(at)[0].proto.spec)["data"][0]
    assert spec["measure"][-1] == "total" and spec["x"][-1] == pytest.approx(sum(spec["x"][:-1]))
    explained = spec["x"][-1] / 100
    assert abs(explained * 100 - shown) > 1  # the map moved this patient's risk
    note = tr("patient.isotonic_note", risk=f"{shown / 100:.1%}", raw=f"{explained:.1%}")
    assert note in texts(at.info)

def test_an_out_of_range_setting_is_refused_next_to_it_and_starts_no_job():
    """Issue 16.5: 3,000 epochs (the dashboard's maximum is 2,000) used to leave the form doing nothing."""
    at = new_app()
    at.switch_page("pages/train.py").run()
    widget(at.number_input, tr("train.epochs")).set_value(3000)
    widget(at.number_input, tr("train.members")).set_value(0)
    at.get("form_submit_button")[0].click().run()
    no_exceptions(at)
    assert at.session_state["train_job"] is None
    errors = texts(at.error)
    assert tr("train.setting_range", value="3000", low="1", high="2000") in errors
    assert tr("train.setting_range", value="0", low="1", high="20") in errors
    assert tr("train.settings_refused", n=2) in errors
    # Corrected, the same form starts the job and the messages go.
    widget(at.number_input, tr("train.epochs")).set_value(3)
    widget(at.number_input, tr("train.members")).set_value(1)
    at.get("form_submit_button")[0].click().run()
    no_exceptions(at)
    job = at.session_state["train_job"]
    assert job.config.epochs == 3 and job.config.members == 1
    assert job.wait(120)
    at.run()
    assert not any("accepted range" in e for e in texts(at.error))


def test_after_a_cohort_switch_the_train_page_says_whose_results_it_shows():
    """QA: after uploading another cohort the Train page showed the previous model's test results as if they
    were the new cohort's."""
    at = new_app()
    train(at, epochs=3)
    results_note = tr("train.results_other_cohort", trained="@", n="@", active="@").split("@")[0]
    assert not any(results_note in i for i in texts(at.info))  # trained on the active cohort: no note
    at.switch_page("pages/cohort.py").run()
    csv_upload(at, "site.csv", cleveland_csv(range(250)))
    no_exceptions(at)
    at.switch_page("pages/train.py").run()
    no_exceptions(at)
    notes = [i for i in texts(at.info) if results_note in i]
    assert notes == [tr("train.results_other_cohort", trained=tr("cohort.demo_name"), n=303, active="site.csv")]
    at.selectbox(key="lang_choice").set_value("zh").run()  # the demo cohort's name in the session's language
    note_zh = tr("train.results_other_cohort", "zh", trained=tr("cohort.demo_name", "zh"), n=303, active="site.csv")
    assert note_zh in texts(at.info), texts(at.info)


def test_the_sidebar_gives_the_test_auc_with_its_interval_or_says_too_few():
    """QA: the sidebar showed 'test AUC 0.931' alone, from a test split of ~45 patients."""
    from ui.shell import auc_text
    at = new_app()
    train(at, epochs=3)
    metrics = at.session_state["model_meta"].metrics
    low, high = metrics["roc_auc_low"], metrics["roc_auc_high"]
    assert low < metrics["roc_auc"] < high
    expected = tr("sidebar.model_stats", created="@", auc=f"{metrics['roc_auc']:.3f} ("
                  + tr("metric.interval", low=f"{low:.2f}", high=f"{high:.2f}") + ")").split("@ · ")[1]
    assert any(c.endswith(expected) for c in texts(at.sidebar.caption)), texts(at.sidebar.caption)
    assert auc_text({"test_auc": 0.9, "test_auc_too_few": True}) == tr("metric.too_few")


def test_scoring_the_cohort_the_model_was_trained_on_says_the_risks_are_in_sample():
    """QA: all 303 Cleveland patients were scored into bands with no word that 257 of them trained the model."""
    at = new_app()
    train(at, epochs=3)
    sizes = at.session_state["train_result"].sizes
    at.switch_page("pages/scoring.py").run()
    no_exceptions(at)
    expected = tr("scoring.in_sample", n=f"{sizes['train'] + sizes['validation']:,}", total="303")
    assert expected in texts(at.warning), texts(at.warning)


def test_a_new_model_with_the_same_inputs_keeps_the_patient_being_entered():
    """QA: after training on the Cleveland file the Patient form was reset to typical values; the patient
    entered was lost."""
    at = new_app()
    train(at, epochs=3)
    at.switch_page("pages/patient.py").run()
    age = next(w for w in at.text_input if str(w.key).startswith("pt_age"))
    age.set_value("61").run()
    chol = next(w for w in at.text_input if str(w.key).startswith("pt_chol"))
    chol.set_value("287").run()
    no_exceptions(at)
    train(at, epochs=4)  # a new model, same inputs
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    assert next(w for w in at.text_input if str(w.key).startswith("pt_age")).value == "61"
    assert next(w for w in at.text_input if str(w.key).startswith("pt_chol")).value == "287"
