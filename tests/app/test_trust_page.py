"""The Trust page with Streamlit's AppTest: renders in both languages, shows calibration and the decision
curve for a trained model, recalibrates, validates on an uploaded second site and saves the update."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from core.data import demo_cohort
from test_pages import new_app, no_exceptions, plotly_charts, texts, tr, train, widget

PAGE = "pages/trust.py"


@pytest.fixture(autouse=True)
def model_store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("HEART_RISK_STORE", str(root))
    return root


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_trust_page_without_a_model_stops_politely(lang):
    at = new_app(lang)
    at.switch_page(PAGE).run()
    no_exceptions(at)
    assert tr("trust.title", lang) in texts(at.title)
    assert tr("common.need_model", lang) in texts(at.info)


def _other_site_csv() -> bytes:
    df = demo_cohort(n=500, seed=21)
    sick = np.flatnonzero(df["num"].to_numpy() > 0)
    df = df.drop(index=sick[: len(sick) // 2]).reset_index(drop=True)  # a lower prevalence: a shifted intercept
    return df.to_csv(index=False).encode()


def test_trust_page_with_a_trained_model(model_store):
    at = new_app()
    train(at, epochs=40)
    model = at.session_state["model"]
    at.switch_page(PAGE).run()
    no_exceptions(at)
    test_n = at.session_state["train_result"] is None or len(at.session_state["train_result"].test_y)
    assert any(tr("trust.on_test", n=test_n, events=int(at.session_state["train_result"].test_y.sum())) == c
               for c in texts(at.caption))
    charts = plotly_charts(at)
    titles = [c.proto.spec for c in charts]
    assert any(tr("trust.calibration_fig") in s for s in titles) and any(tr("trust.dca_fig") in s for s in titles)
    assert any(tr("trust.subgroup_fig") in s for s in titles)
    assert any(tr("trust.or_fig") in s for s in titles)
    assert widget(at.metric, tr("metric.sensitivity")).value.endswith("%")
    assert any("true positives" in m for m in texts(at.markdown))
    assert at.session_state["model_meta"].extra.trust["n_test"] == test_n
    at.switch_page("pages/model_card.py").run()
    card = " ".join(texts(at.markdown))
    assert tr("card.decision") in card and tr("card.subgroups") in card and tr("card.tripod") in card
    at.switch_page(PAGE).run()

    # Recalibrate with Platt scaling: the session's model becomes a new, unsaved, calibrated model.
    at.selectbox(key="trust_method@en").set_value("platt").run()
    widget(at.button, tr("trust.recalibrate")).click().run()
    no_exceptions(at)
    calibrated = at.session_state["model"]
    assert calibrated is not model and calibrated.calibration_.method == "platt"
    assert model.calibration_.method == "none"
    assert any(s.startswith(tr("trust.recalibrated", method=tr("trust.method_platt"))) for s in texts(at.success))

    # External validation of the upload; then the intercept update saved as a new version.
    before = [c for c in texts(at.caption) if c.startswith(tr("metric.interval", low="@", high="@").split("@")[0])]
    at.file_uploader(key="trust_external_file").set_value(("site_b.csv", _other_site_csv(), "text/csv")).run()
    no_exceptions(at)
    warnings = texts(at.warning)
    assert any("less common here" in w for w in warnings), warnings
    assert widget(at.metric, tr("trust.ext_patients")).value == str(len(_other_site_csv().splitlines()) - 1)
    # QA: the site's AUC, Brier and calibration had no intervals; each has one now, of non-zero width
    shown = [c for c in texts(at.caption) if c.startswith(tr("metric.interval", low="@", high="@").split("@")[0])]
    shown = shown[len(before):]  # the ones the site's file added
    ends = [tuple(float(x) for x in re.findall(r"-?\d+\.\d+", c)[:2]) for c in shown]
    assert len(ends) == 4 and all(lo < hi for lo, hi in ends), shown
    assert at.session_state["model_meta"].extra.external_validations[0]["name"] == "site_b.csv"
    at.form(key="trust_ext_recalibrate").text_input[0].set_value("site-b-model")
    submit = [b for b in at.get("form_submit_button") if b.label == tr("trust.ext_recalibrate")]
    submit[0].click().run()
    no_exceptions(at)
    saved = list((model_store / "site-b-model").iterdir())
    assert [p.name for p in saved] == ["v1"]
    assert at.session_state["model"].calibration_.method == "platt"
    assert at.session_state["model"].calibration_.source.startswith("external intercept update")
    # The update's figures come from site patients it was not fitted on, and the saved bundle says so.
    site_n = len(_other_site_csv().splitlines()) - 1
    assert any("held-out site patients" in n for n in texts(at.success))
    note = next(n for n in texts(at.success) if "held-out site patients" in n)
    assert note.count(tr("metric.interval", low="@", high="@").split("@")[0]) == 2, note  # CITL and Brier
    saved_meta = at.session_state["model_meta"].to_json_dict()
    assert saved_meta["metrics"]["n"] == site_n
    # QA: the sidebar and the Train page called the site's held-out metrics "test" metrics, and the
    # Calibration tab called the intercept update "Platt scaling".
    captions = [c.value for c in at.sidebar.caption]
    assert any(tr("sidebar.model_stats_site", created="@", site="site_b.csv", auc="@").split("@")[1] in c
               for c in captions), captions
    assert not any(" · test AUC " in c for c in captions)
    assert any(tr("card.recal_site", site="site_b.csv") in m for m in texts(at.markdown))
    at.switch_page("pages/train.py").run()
    no_exceptions(at)
    assert any(c.startswith(tr("train.stored_metrics_site", n=site_n, site="site_b.csv", method="@").split("(")[0])
               for c in texts(at.caption)), texts(at.caption)
    at.switch_page(PAGE).run()
    assert saved_meta["extra"]["site_update"]["evaluated_on"].startswith("held-out site patients")

    # The same page in Chinese, with the saved model.
    at.sidebar.selectbox(key="lang_choice").set_value("zh").run()
    no_exceptions(at)
    assert tr("trust.title", "zh") in texts(at.title)


def test_ensemble_range_and_unusual_patient_on_the_patient_page():
    at = new_app()
    train(at, epochs=40)
    at.switch_page(PAGE).run()
    widget(at.button, tr("trust.ensemble_add")).click().run()
    no_exceptions(at)
    model = at.session_state["model"]
    assert model.n_members_ == 5
    assert tr("trust.ensemble_done", n=5) in texts(at.success)
    at.switch_page("pages/patient.py").run()
    no_exceptions(at)
    shown = [m for m in texts(at.markdown) if "10th–90th percentile" in m]
    assert len(shown) == 1 and "The 5 networks disagree" in shown[0] and "not a confidence interval" in shown[0]
    assert not any("unlike the training patients" in w for w in texts(at.warning))
    chol = [w for w in at.text_input if w.key.startswith("pt_chol")][0]
    chol.set_value("650").run()  # plausible (up to 700 mg/dl), far beyond every training patient
    no_exceptions(at)
    warnings = [w for w in texts(at.warning) if "unlike the training patients" in w]
    assert len(warnings) == 1 and "Serum cholesterol" in warnings[0]


def test_the_clinician_chooses_the_risk_bands_and_they_are_saved_with_the_model(model_store):
    from core.model import DEFAULT_BANDS, load_bundle, model_bands
    from core.workflow import bands_sentence
    at = new_app()
    train(at, epochs=20)
    at.switch_page(PAGE).run()
    no_exceptions(at)
    assert model_bands(at.session_state["model"]) == DEFAULT_BANDS
    assert any(c.startswith(bands_sentence(DEFAULT_BANDS, "en")) for c in texts(at.caption))
    assert any(tr("trust.bands_patients") in m for m in texts(at.markdown))  # what the cut-offs mean per 100
    at.slider(key="trust_bands").set_value((10, 50)).run()
    no_exceptions(at)
    # no name, no bands: who chose them is part of them
    submit = lambda: [b for b in at.get("form_submit_button") if b.label == tr("trust.bands_use")][0].click().run()  # noqa: E731
    submit()
    assert tr("trust.bands_need_name") in texts(at.error)
    at.text_input(key="trust_bands_who").set_value("Dr Wang, cardiology")
    submit()
    no_exceptions(at)
    bands = model_bands(at.session_state["model"])
    assert (bands.low, bands.high, bands.set_by) == (0.10, 0.50, "Dr Wang, cardiology") and bands.set_utc
    assert at.session_state["model_meta"].bands["set_by"] == "Dr Wang, cardiology"
    assert any("Dr Wang, cardiology" in s for s in texts(at.success))
    at.switch_page("pages/patient.py").run()
    assert bands_sentence(bands, "en") in texts(at.caption)
    at.switch_page(PAGE).run()
    form = at.form(key="trust_save_bands")
    form.text_input[0].set_value("banded-model")
    form.get("form_submit_button")[0].click().run()
    no_exceptions(at)
    assert not texts(at.error), texts(at.error)
    saved = load_bundle(model_store / "banded-model" / "v1")
    assert model_bands(saved) == bands


def test_external_validation_takes_a_statlog_dat_and_refuses_through_the_translation_table():
    at = new_app()
    train(at, epochs=5)
    at.switch_page(PAGE).run()
    uploader = at.file_uploader(key="trust_external_file")
    assert list(uploader.proto.type) == []  # the same file types as the Cohort page: the reader decides
    df = demo_cohort(n=300, seed=22)
    rows = df.assign(num=np.where(df["num"] > 0, 2, 1)).fillna(0).to_numpy(dtype=float)
    dat = "\n".join(" ".join(f"{v:g}" for v in r) for r in rows).encode() + b"\n"
    uploader.set_value(("heart.dat", dat, "application/octet-stream")).run()
    no_exceptions(at)
    assert widget(at.metric, tr("trust.ext_patients")).value == str(len(rows))
    no_csv = df.drop(columns=["num"]).to_csv(index=False).encode()
    at.file_uploader(key="trust_external_file").set_value(("site_c.csv", no_csv, "text/csv")).run()
    no_exceptions(at)
    # the message comes from the table by its key (its zh text: test_external_refusals_are_translated)
    expected = tr("trust.external_error", message=tr("external.no_outcome", target="num"))
    assert expected in texts(at.error)


def test_an_external_files_data_problems_are_listed_not_only_counted():
    """QA: 'N data problems were found' with no way to see which."""
    from tables import shown_tables
    at = new_app()
    train(at, epochs=3)
    at.switch_page(PAGE).run()
    df = demo_cohort(n=120, seed=4)
    df.loc[[3, 7], "trestbps"] = 400  # impossible: set to missing, and said
    at.file_uploader(key="trust_external_file").set_value(("site_c.csv", df.to_csv(index=False).encode(),
                                                          "text/csv")).run()
    no_exceptions(at)
    problems = [e for e in at.expander if e.label.startswith(tr("trust.ext_problems", n="@").split("@")[0])]
    assert len(problems) == 1
    listed = pd.concat(shown_tables(problems[0]))
    assert "trestbps" in " ".join(listed.astype(str).to_numpy().ravel())
