"""Risk bands are a setting of the model: chosen by a clinician, kept in the bundle with who and when,
used by every page, report and export, and never attributed to a guideline."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from core.model import DEFAULT_BANDS, BandCutoffs, TrainConfig, band_summary, load_bundle, model_bands, save_bundle
from core.workflow import bands_sentence, patient_from_row, patient_risk, score_table
from core.data import demo_cohort
from fake_models import logistic_model

ROOT = Path(__file__).resolve().parents[3]


def test_bands_read_back_and_fall_back_to_the_defaults():
    chosen = BandCutoffs(0.1, 0.5, set_by="Dr Li, cardiology", set_utc="2026-11-30T01:30:00+00:00")
    assert BandCutoffs.from_dict(chosen.to_dict()) == chosen and chosen.chosen
    assert not DEFAULT_BANDS.chosen
    for bad in (None, {}, {"low": 0.7, "high": 0.2}, {"low": "x", "high": 0.5}, {"low": float("nan"), "high": 1}):
        assert BandCutoffs.from_dict(bad) == DEFAULT_BANDS
    with pytest.raises(ValueError):
        BandCutoffs(0.5, 0.5)


def test_what_the_cutoffs_mean_per_100_patients():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1, 0, 1])
    risk = np.array([0.01, 0.05, 0.08, 0.09, 0.3, 0.4, 0.6, 0.8, 0.9, 0.95])
    rows = {r["band"]: r for r in band_summary(y, risk, BandCutoffs(0.1, 0.7))}
    assert (rows["low"]["n"], rows["low"]["events"]) == (4, 1)
    assert rows["low"]["per_100"] == 40 and rows["low"]["events_per_100"] == 10 and rows["low"]["rate"] == 0.25
    assert (rows["intermediate"]["n"], rows["intermediate"]["events"]) == (3, 2)
    assert (rows["high"]["n"], rows["high"]["events"]) == (3, 2) and rows["high"]["rate"] == pytest.approx(2 / 3)
    empty = band_summary(y, risk, BandCutoffs(0.001, 0.002))
    assert math.isnan(empty[0]["rate"])


def test_the_model_bands_label_every_risk_and_travel_in_the_bundle(tmp_path):
    model = logistic_model()
    model.config = TrainConfig(hidden=())
    model._weights = [layer for pair in model.networks_[0].layers for layer in pair]
    df = demo_cohort().head(40)
    values = patient_from_row(model, df, 0)
    risk = patient_risk(model, values).risk
    # bands that put this patient in each band in turn: the model's own bands decide
    model.bands_ = BandCutoffs(min(0.98, risk + 0.01), 0.99, set_by="Dr A", set_utc="2026-11-30T01:00:00+00:00")
    assert patient_risk(model, values).risk_band == "low"
    model.bands_ = BandCutoffs(0.001, max(0.002, risk - 0.0005), set_by="Dr A", set_utc="2026-11-30T01:00:00+00:00")
    assert patient_risk(model, values).risk_band == "high"
    table = score_table(model, df, with_reasons=False)
    expected = np.where(table["risk"] < model.bands_.low, "low",
                        np.where(table["risk"] >= model.bands_.high, "high", "intermediate"))
    assert list(table["risk_band"]) == list(expected)

    bundle = save_bundle(model, tmp_path / "b", metrics={}, data_fingerprint="x", name="m")
    loaded = load_bundle(bundle)
    assert model_bands(loaded) == model.bands_
    assert json.loads((bundle / "metadata.json").read_text())["bands"]["set_by"] == "Dr A"
    # a bundle saved before bands were stored: the defaults, said to be chosen by no one
    meta = json.loads((bundle / "metadata.json").read_text())
    del meta["bands"], meta["metadata_sha256"]
    meta["version"] = 2
    (bundle / "metadata.json").write_text(json.dumps(meta))
    assert model_bands(load_bundle(bundle)) == DEFAULT_BANDS


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_bands_sentence_says_who_set_them_or_that_nobody_did(lang):
    chosen = BandCutoffs(0.1, 0.5, set_by="Dr Li", set_utc="2026-11-30T01:30:00+00:00")
    text = bands_sentence(chosen, lang)
    assert "10%" in text and "50%" in text and "Dr Li" in text and "2026-11-30 01:30 UTC" in text
    default = bands_sentence(DEFAULT_BANDS, lang)
    assert ("no clinician has chosen" in default) if lang == "en" else ("尚无临床医生" in default)


def test_no_guideline_is_named_for_the_bands():
    # ESC 2013's categories are pre-test probabilities from age, sex and symptoms; this model's output is
    # post-test. Nothing a user reads may call the bands a guideline's.
    readable = [ROOT / "README.md", ROOT / "assets" / "i18n.json", ROOT / "core" / "workflow" / "report.py",
                ROOT / "core" / "workflow" / "model_card.py", *sorted((ROOT / "pages").glob("*.py"))]
    for path in readable:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bESC\b|European Society of Cardiology", text), path.name
