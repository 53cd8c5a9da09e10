"""The CLI on files in other units: train on a Statlog heart.dat without --target, and on a file with age in
days and cholesterol in mmol/L, then predict on a file in the same units (the bundle converts)."""
from __future__ import annotations

import csv
import json

import numpy as np

import trait_files as tf
from core.cli import main


def test_statlog_file_trains_without_target(tmp_path, capsys):
    data = tmp_path / "heart.dat"
    data.write_bytes(tf.statlog_bytes())
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "2"]) == 0
    schema = json.loads((tmp_path / "m" / "preprocess.json").read_text())["schema"]
    assert (schema["target"], schema["positive_rule"]) == ("class", "== 2")


def test_predict_applies_the_bundle_unit_conversions(tmp_path, capsys):
    df = tf.age_in_days()
    df["totChol"] = (df["totChol"] / 38.67).round(2)
    data = tmp_path / "train.csv"
    data.write_bytes(tf.csv_bytes(df))
    bundle = tmp_path / "m"
    assert main(["train", "--data", str(data), "--target", "outcome", "--out", str(bundle), "--epochs", "2"]) == 0
    schema = json.loads((bundle / "preprocess.json").read_text())["schema"]
    by = {f["name"]: f for f in schema["features"]}
    assert by["age"]["source_unit"] == "days" and by["totChol"]["source_unit"] == "mmol/L"
    patients = df.drop(columns=["outcome"]).head(5)
    patients.loc[0, "totChol"] = 0  # "not measured": imputed, not refused
    src = tmp_path / "in.csv"
    src.write_bytes(tf.csv_bytes(patients))
    out = tmp_path / "out.csv"
    assert main(["predict", "--model", str(bundle), "--input", str(src), "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert len(rows) == 5 and all(0 <= float(r["risk"]) <= 1 for r in rows)
    # The same patients in model units give the same risks: the conversion happened.
    from core.model import load_bundle
    model = load_bundle(bundle)
    canonical = patients.copy()
    canonical["age"] = canonical["age"] / 365.25
    canonical["totChol"] = canonical["totChol"] * 38.67
    canonical.loc[0, "totChol"] = np.nan
    risks = model.predict_risk(canonical)
    assert np.allclose([float(r["risk"]) for r in rows[1:]], risks[1:], atol=1e-3)
    # (cholesterol not measured: the mean over its plausible values, with their range; issue 14.2)
    assert rows[0]["missing"] == "totChol" and all(r["missing"] == "" for r in rows[1:])
    assert float(rows[0]["risk_low"]) <= float(rows[0]["risk"]) <= float(rows[0]["risk_high"])


def test_include_puts_a_kept_out_column_back(tmp_path, capsys):
    data = tmp_path / "ids.csv"
    data.write_bytes(tf.csv_bytes(tf.record_numbers()))
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--target", "outcome", "--include", "id", "--out", str(out),
                 "--epochs", "1"]) == 0
    schema = json.loads((out / "preprocess.json").read_text())["schema"]
    roles = {f["name"]: f["role"] for f in schema["features"]}
    assert roles["id"] == "feature" and roles["visit_date"] == "ignored"
    assert main(["train", "--data", str(data), "--target", "outcome", "--include", "nope", "--out",
                 str(tmp_path / "n"), "--epochs", "1"]) != 0
    assert "--include: 'nope' is not a column" in capsys.readouterr().err
