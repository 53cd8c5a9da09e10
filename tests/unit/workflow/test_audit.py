"""The audit trail: off by default, append-only JSON lines, no raw values, no interleaving."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading

import numpy as np
import pandas as pd
import pytest

from core.workflow import (AUDIT_ENV, KEY_ENV, append, audit_path, canonical_inputs, inputs_hash, log_prediction, log_table, make_record, read_log)

PATIENT = {"age": 63.0, "sex": 1.0, "cp": 4.0, "trestbps": 151.0, "chol": 287.125, "fbs": 0.0, "restecg": 2.0,
           "thalach": 97.0, "exang": 1.0, "oldpeak": 2.7, "slope": 2.0, "ca": None, "thal": 7.0}


@pytest.fixture(autouse=True)
def no_audit_env(monkeypatch):
    monkeypatch.delenv(AUDIT_ENV, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_off_by_default(tmp_path, monkeypatch):
    assert audit_path() is None
    assert audit_path({}) is None

    class NoSecrets:  # Streamlit's st.secrets raises without a secrets file
        def get(self, key, default=None):
            raise FileNotFoundError("no secrets.toml")

    assert audit_path(NoSecrets()) is None
    log_prediction(None, PATIENT, 0.4, model="m")  # off: nothing happens, nothing is written
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(AUDIT_ENV, str(tmp_path / "audit.jsonl"))
    assert audit_path() == tmp_path / "audit.jsonl"
    monkeypatch.delenv(AUDIT_ENV)
    assert audit_path({AUDIT_ENV: str(tmp_path / "s.jsonl")}) == tmp_path / "s.jsonl"


def test_lines_are_appended_and_hold_no_raw_values(tmp_path):
    path = tmp_path / "logs" / "audit.jsonl"
    log_prediction(path, PATIENT, 0.61234567, model="ward-mlp", version="v2", source="patient", risk_band="intermediate")
    log_prediction(path, dict(PATIENT, chol=190.0), 0.2, model="ward-mlp", version="v2")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["model"] == "ward-mlp" and first["version"] == "v2" and first["source"] == "patient"
    assert first["risk"] == pytest.approx(0.612346) and first["risk_band"] == "intermediate"
    assert first["time_utc"].endswith("Z")
    expected = hashlib.sha256(canonical_inputs(PATIENT).encode()).hexdigest()
    assert first["inputs_sha256"] == expected != json.loads(lines[1])["inputs_sha256"]
    text = path.read_text(encoding="utf-8")
    for raw in ("287.125", "151", "2.7", "chol", "trestbps", "thalach"):
        assert raw not in text
    # appending never rewrites what is there
    log_prediction(path, PATIENT, 0.5, model="other")
    assert path.read_text(encoding="utf-8").splitlines()[:2] == lines


def test_the_hash_is_canonical_and_keyed_on_request(monkeypatch):
    reordered = dict(reversed(list(PATIENT.items())))
    as_ints = dict(PATIENT, age=63, sex=1, cp=np.float64(4.0), ca=float("nan"))
    assert inputs_hash(PATIENT) == inputs_hash(reordered) == inputs_hash(as_ints)
    assert inputs_hash(PATIENT) != inputs_hash(dict(PATIENT, age=64.0))
    plain = inputs_hash(PATIENT)
    monkeypatch.setenv(KEY_ENV, "site-secret")
    keyed = inputs_hash(PATIENT)
    assert keyed != plain and len(keyed) == 64
    assert make_record(PATIENT, 0.3, model="m")["inputs_sha256"] == keyed


def test_a_scored_table_is_logged_row_by_row(tmp_path):
    path = tmp_path / "audit.jsonl"
    df = pd.DataFrame([PATIENT, dict(PATIENT, age=50.0), dict(PATIENT, age=70.0)]).assign(mrn=["A", "B", "C"])
    names = [k for k in PATIENT]
    assert log_table(path, df, names, [0.1, 0.5, 0.9], bands=["low", "intermediate", "high"], model="m",
                     source="cohort") == 3
    table, bad = read_log(path)
    assert bad == 0 and len(table) == 3
    assert list(table["risk_band"]) == ["low", "intermediate", "high"]
    assert table["inputs_sha256"].iloc[0] == inputs_hash(PATIENT)
    assert "mrn" not in path.read_text() and '"A"' not in path.read_text()
    assert log_table(None, df, names, [0.1, 0.5, 0.9], model="m") == 0


def test_a_damaged_line_is_counted_not_fatal(tmp_path):
    path = tmp_path / "audit.jsonl"
    log_prediction(path, PATIENT, 0.4, model="m")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"time_utc": "2026-01-01T00:00:00Z", "risk"\n[1, 2]\n')
    log_prediction(path, PATIENT, 0.5, model="m")
    table, bad = read_log(path)
    assert len(table) == 2 and bad == 2
    assert read_log(tmp_path / "none.jsonl")[0].empty


def _worker(path: str, tag: int, batches: int, size: int) -> None:
    for b in range(batches):
        append(path, [make_record({"tag": tag, "b": b, "i": i}, 0.5, model=f"m{tag}", source="x" * 300)
                      for i in range(size)])


def test_concurrent_appends_do_not_interleave(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    threads = [threading.Thread(target=_worker, args=(path, t, 10, 25)) for t in range(4)]
    ctx = multiprocessing.get_context("spawn")  # another process: the flock, not just the thread lock
    procs = [ctx.Process(target=_worker, args=(path, 10 + p, 10, 25)) for p in range(2)]
    for worker in threads + procs:
        worker.start()
    for worker in threads + procs:
        worker.join(60)
    assert all(p.exitcode == 0 for p in procs)
    lines = open(path, encoding="utf-8").read().splitlines()
    assert len(lines) == 6 * 10 * 25
    records = [json.loads(line) for line in lines]  # every line whole
    counts = pd.Series([r["model"] for r in records]).value_counts()
    assert sorted(counts.index) == ["m0", "m1", "m10", "m11", "m2", "m3"] and set(counts) == {250}
