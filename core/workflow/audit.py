"""An optional audit trail of predictions: who-knows-what stays out, what was predicted stays in.

Off by default. On when ``$HEART_RISK_AUDIT`` (or the Streamlit secret of the same name) names a file:
every prediction the dashboard shows appends one JSON line — time (UTC), model name and version, where it
was made (patient page, cohort scoring), the SHA-256 of the patient's canonical inputs and the risk.
Never the values themselves: the hash lets an auditor check that a given record of inputs produced a
logged risk, without the log holding patient data. (A hash of a few clinical values can be guessed by
trying all plausible values; set ``$HEART_RISK_AUDIT_KEY`` to make it an HMAC that needs the key too.)

Appends are whole lines written under an exclusive lock (a thread lock and ``flock`` across processes),
then fsync'd: concurrent sessions never interleave, and a line that was reported written is on disk.
The file is only ever appended to.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import threading
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

AUDIT_ENV = "HEART_RISK_AUDIT"
KEY_ENV = "HEART_RISK_AUDIT_KEY"
FIELDS = ["time_utc", "source", "model", "version", "inputs_sha256", "risk", "risk_band"]
_LOCK = threading.Lock()

try:  # POSIX advisory lock between processes; elsewhere the thread lock alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def audit_path(secrets: Mapping | None = None) -> Path | None:
    """The audit log's path, or None when auditing is off (the default)."""
    value = os.environ.get(AUDIT_ENV, "").strip()
    if not value and secrets is not None:
        try:
            value = str(secrets.get(AUDIT_ENV) or "").strip()
        except Exception:  # Streamlit raises when there is no secrets file: auditing is simply off
            value = ""
    return Path(value).expanduser() if value else None


def _plain(value):
    """A value as canonical JSON sees it: numbers as floats (60 == 60.0), missing as null."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return None if math.isnan(number) else number
    if isinstance(value, str):
        return value.strip()
    return str(value)


def canonical_inputs(values: Mapping) -> str:
    """The inputs as one canonical JSON text: sorted names, numbers as floats, missing as null."""
    return json.dumps({str(k): _plain(v) for k, v in values.items()}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def inputs_hash(values: Mapping, key: bytes | None = None) -> str:
    """SHA-256 (or HMAC-SHA-256 with ``key``, default ``$HEART_RISK_AUDIT_KEY``) of the canonical inputs."""
    if key is None:
        env_key = os.environ.get(KEY_ENV)
        key = env_key.encode("utf-8") if env_key else None
    data = canonical_inputs(values).encode("utf-8")
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_record(values: Mapping, risk: float, *, model: str, version: str | None = None, source: str = "patient",
                risk_band: str | None = None, time_utc: str | None = None) -> dict:
    return {"time_utc": time_utc or _now(), "source": source, "model": model, "version": version,
            "inputs_sha256": inputs_hash(values), "risk": round(float(risk), 6), "risk_band": risk_band}


def append(path, records: Iterable[dict]) -> int:
    """Append records as JSON lines in one locked, fsync'd write; returns how many were written."""
    lines = [json.dumps({k: r.get(k) for k in FIELDS}, ensure_ascii=False, allow_nan=False) + "\n" for r in records]
    if not lines:
        return 0
    data = "".join(lines).encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:  # write() may write less than asked; the lock keeps the rest contiguous
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    return len(lines)


def log_prediction(path, values: Mapping, risk: float, **kwargs) -> None:
    """One prediction (see :func:`make_record`); nothing when ``path`` is None (auditing off)."""
    if path is not None:
        append(path, [make_record(values, risk, **kwargs)])


def log_table(path, df: pd.DataFrame, feature_names: list[str], risks, *, bands=None, **kwargs) -> int:
    """Every row of a scored table, one line each, in one append; nothing when ``path`` is None."""
    if path is None or len(df) == 0:
        return 0
    when = _now()
    columns = [df[name].tolist() for name in feature_names]
    bands = list(bands) if bands is not None else [None] * len(df)
    records = (make_record(dict(zip(feature_names, row)), risk, risk_band=band, time_utc=when, **kwargs)
               for row, risk, band in zip(zip(*columns), np.asarray(risks, dtype=float), bands))
    return append(path, records)


def read_log(path) -> tuple[pd.DataFrame, int]:
    """(the log as a table, number of unreadable lines). A missing file is an empty log."""
    path = Path(path)
    rows, bad = [], 0
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError
                    rows.append({k: record.get(k) for k in FIELDS})
                except ValueError:
                    bad += 1
    return pd.DataFrame(rows, columns=FIELDS), bad
