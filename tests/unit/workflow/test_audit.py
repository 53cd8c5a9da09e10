"""The audit trail: off by default, append-only JSON lines, no raw values, no interleaving."""
from __future__ import annotations

import hashlib
import json
import hmac
import multiprocessing
import os
import stat
import threading

import numpy as np
import pandas as pd
import pytest

from core.workflow import (AUDIT_ENV, KEY_ENV, KEY_FILE_ENV, append, audit_key, audit_path, canonical_inputs,
                              inputs_hash, key_id, log_prediction, log_table, make_record, read_log)

PATIENT = {"age": 63.0, "sex": 1.0, "cp": 4.0, "trestbps": 151.0, "chol": 287.125, "fbs": 0.0, "restecg": 2.0,
           "thalach": 97.0, "exang": 1.0, "oldpeak": 2.7, "slope": 2.0, "ca": None, "thal": 7.0}


@pytest.fixture(autouse=True)
def no_audit_env(monkeypatch, tmp_path):
    monkeypatch.delenv(AUDIT_ENV, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "keys" / "audit.key"))


def test_off_by_default(tmp_path, monkeypatch):
    assert audit_path() is None
    assert audit_path({}) is None

    class NoSecrets:  # Streamlit's st.secrets raises without a secrets file
        def get(self, key, default=None):
            raise FileNotFoundError("no secrets.toml")

    assert audit_path(NoSecrets()) is None
    log_prediction(None, PATIENT, 0.4, model="m")  # off: nothing happens, nothing is written
    assert not (tmp_path / "audit.jsonl").exists()
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
    expected = hmac.new(audit_key(), canonical_inputs(PATIENT).encode(), hashlib.sha256).hexdigest()
    assert first["inputs_hmac"] == expected != json.loads(lines[1])["inputs_hmac"]
    assert first["key_id"] == key_id(audit_key())
    text = path.read_text(encoding="utf-8")
    for raw in ("287.125", "151", "2.7", "chol", "trestbps", "thalach"):
        assert raw not in text
    # appending never rewrites what is there
    log_prediction(path, PATIENT, 0.5, model="other")
    assert path.read_text(encoding="utf-8").splitlines()[:2] == lines


def test_the_hash_is_canonical_and_keyed_by_the_environment_when_set(monkeypatch):
    reordered = dict(reversed(list(PATIENT.items())))
    as_ints = dict(PATIENT, age=63, sex=1, cp=np.float64(4.0), ca=float("nan"))
    assert inputs_hash(PATIENT) == inputs_hash(reordered) == inputs_hash(as_ints)
    assert inputs_hash(PATIENT) != inputs_hash(dict(PATIENT, age=64.0))
    installation = inputs_hash(PATIENT)
    monkeypatch.setenv(KEY_ENV, "site-secret")
    keyed = inputs_hash(PATIENT)
    assert keyed != installation and len(keyed) == 64
    assert keyed == hmac.new(b"site-secret", canonical_inputs(PATIENT).encode(), hashlib.sha256).hexdigest()
    assert make_record(PATIENT, 0.3, model="m")["inputs_hmac"] == keyed


def test_by_default_the_hash_is_keyed_and_cannot_be_undone_by_guessing(tmp_path, monkeypatch):
    """Issue 18.5: the default (no key configured) was a plain SHA-256 of the inputs, so each value could be
    recovered by trying the plausible ones. Now a random per-installation key is made on first use."""
    path = tmp_path / "audit.jsonl"
    log_prediction(path, dict(PATIENT, age=77.77), 0.4, model="m")
    logged = json.loads(path.read_text())["inputs_hmac"]
    guesses = {hashlib.sha256(canonical_inputs(dict(PATIENT, age=a / 100)).encode()).hexdigest()
               for a in range(7000, 8000)}
    assert logged not in guesses  # the attacker's unkeyed search finds nothing
    key_path = tmp_path / "keys" / "audit.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_path.read_text().strip())) == 32
    # whoever holds the key matches the line to its inputs
    assert logged == inputs_hash(dict(PATIENT, age=77.77), bytes.fromhex(key_path.read_text().strip()))
    assert audit_key() == audit_key()  # made once, then read
    # another installation (another key file) hashes the same inputs differently
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "other" / "audit.key"))
    assert inputs_hash(dict(PATIENT, age=77.77)) != logged


def test_threads_making_the_key_at_once_all_get_the_same_complete_key(tmp_path, monkeypatch):
    """CI: writers starting at once read the key file between its exclusive create and its write, found it
    empty and refused it ('does not hold a hexadecimal key'), so half the audit lines were never written."""
    for attempt in range(15):
        monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / f"k{attempt}" / "audit.key"))
        barrier, keys, errors = threading.Barrier(12), [], []

        def make():
            barrier.wait()
            try:
                keys.append(audit_key())
            except OSError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=make) for _ in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert errors == [] and len(keys) == 12 and len(set(keys)) == 1
        assert sorted(p.name for p in (tmp_path / f"k{attempt}").iterdir()) == ["audit.key"]  # no temporary left


def test_a_key_file_others_can_read_is_refused(tmp_path):
    audit_key()
    key_path = tmp_path / "keys" / "audit.key"
    os.chmod(key_path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        audit_key()
    with pytest.raises(PermissionError):
        log_prediction(tmp_path / "audit.jsonl", PATIENT, 0.4, model="m")  # the pages warn on OSError
    key_path.write_text("not a key")
    os.chmod(key_path, 0o600)
    with pytest.raises(PermissionError, match="hexadecimal"):
        audit_key()


def test_lines_from_before_the_key_are_still_read(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"time_utc": "2026-01-01T00:00:00Z", "source": "patient", "model": "m",
                                "inputs_sha256": "ab" * 32, "risk": 0.2}) + "\n")
    table, bad = read_log(path)
    assert bad == 0 and table["inputs_hmac"].iloc[0] == "ab" * 32 and table["key_id"].iloc[0] == "unkeyed"


def test_a_scored_table_is_logged_row_by_row(tmp_path):
    path = tmp_path / "audit.jsonl"
    df = pd.DataFrame([PATIENT, dict(PATIENT, age=50.0), dict(PATIENT, age=70.0)]).assign(mrn=["A", "B", "C"])
    names = [k for k in PATIENT]
    assert log_table(path, df, names, [0.1, 0.5, 0.9], bands=["low", "intermediate", "high"], model="m",
                     source="cohort") == 3
    table, bad = read_log(path)
    assert bad == 0 and len(table) == 3
    assert list(table["risk_band"]) == ["low", "intermediate", "high"]
    assert table["inputs_hmac"].iloc[0] == inputs_hash(PATIENT)
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
        worker.join(240)  # spawned processes import the engine: slow on a loaded machine
    assert all(p.exitcode == 0 for p in procs)
    lines = open(path, encoding="utf-8").read().splitlines()
    assert len(lines) == 6 * 10 * 25
    records = [json.loads(line) for line in lines]  # every line whole
    counts = pd.Series([r["model"] for r in records]).value_counts()
    assert sorted(counts.index) == ["m0", "m1", "m10", "m11", "m2", "m3"] and set(counts) == {250}
