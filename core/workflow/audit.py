"""An optional audit trail of predictions: who-knows-what stays out, what was predicted stays in.

Off by default. On when ``$HEART_RISK_AUDIT`` (or the Streamlit secret of the same name) names a file:
every prediction the dashboard shows appends one JSON line — time (UTC), model name, version and id (a saved
bundle's content hash, or the id of an unsaved model), where it was made (patient page, cohort scoring), an
HMAC-SHA-256 of the patient's canonical inputs and the risk.
Never the values themselves: the HMAC lets whoever holds the key check that a given record of inputs
produced a logged risk, without the log holding patient data. It is keyed because a plain hash of a few
clinical values is undone by trying every plausible value (seconds on a laptop); without the key, the
log's hashes cannot be tested against guesses. The key is ``$HEART_RISK_AUDIT_KEY`` when set, else a
random per-installation key made on first use and kept in a file readable by its owner only
(``$HEART_RISK_AUDIT_KEY_FILE``, default ``<user data dir>/heart-risk/audit.key``); each line names the key
it was made with (``key_id``) so that lines from before a key rotation can still be told apart.

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
import secrets
import stat
import threading
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

AUDIT_ENV = "HEART_RISK_AUDIT"
KEY_ENV = "HEART_RISK_AUDIT_KEY"
KEY_FILE_ENV = "HEART_RISK_AUDIT_KEY_FILE"
FIELDS = ["time_utc", "source", "model", "version", "model_id", "inputs_hmac", "key_id", "risk", "risk_band"]
_LOCK = threading.Lock()
_KEY_BYTES = 32

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


def key_file() -> Path:
    """Where the installation's audit key lives (used when ``$HEART_RISK_AUDIT_KEY`` is not set)."""
    value = os.environ.get(KEY_FILE_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    import platformdirs
    return Path(platformdirs.user_data_dir("heart-risk", appauthor=False)) / "audit.key"


def _read_key_file(path: Path) -> bytes:
    with open(path, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            # A key others can read makes every hash in the log guessable again: refuse rather than use it.
            raise PermissionError(f"the audit key file {path.name} is readable by other accounts; "
                                  "make it readable by its owner only (chmod 600)")
        text = fh.read().decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        # an OSError, as an unwritable log is: the pages show the risk and warn that it was not recorded
        raise PermissionError(f"the audit key file {path.name} does not hold a hexadecimal key of 16 bytes or more")
    return key


def audit_key() -> bytes:
    """The HMAC key: ``$HEART_RISK_AUDIT_KEY``, else the installation's key file, made on first use
    (random, 32 bytes, mode 0600; created exclusively, so two processes starting at once share one key)."""
    env_key = os.environ.get(KEY_ENV)
    if env_key:
        return env_key.encode("utf-8")
    path = key_file()
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place (a link fails if the name exists): a reader
    # sees no file or a complete key, never the empty file an exclusive create shows before its write (seen
    # in CI: threads starting at once read it empty and refused it).
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (secrets.token_hex(_KEY_BYTES) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process or thread made it a moment ago: use theirs
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def key_id(key: bytes) -> str:
    """A short name for a key, written on every line: which key a line needs after a rotation. It is an
    HMAC of a fixed text, so it reveals nothing the hashes themselves do not."""
    return hmac.new(key, b"heart-risk audit key id", hashlib.sha256).hexdigest()[:12]


def inputs_hash(values: Mapping, key: bytes | None = None) -> str:
    """HMAC-SHA-256 of the canonical inputs with ``key`` (default :func:`audit_key`)."""
    key = audit_key() if key is None else key
    return hmac.new(key, canonical_inputs(values).encode("utf-8"), hashlib.sha256).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_record(values: Mapping, risk: float, *, model: str, version: int | str | None = None,
                model_id: str | None = None, source: str = "patient", risk_band: str | None = None,
                time_utc: str | None = None, key: bytes | None = None) -> dict:
    """One line. ``model_id`` tells models apart where names cannot: ``sha256:<hex>``, the content hash of
    a saved bundle (core.model.bundle_digest), or ``unsaved:<hex>``, an id given to a model trained or
    changed in a session and not saved."""
    key = audit_key() if key is None else key
    return {"time_utc": time_utc or _now(), "source": source, "model": model, "version": version,
            "model_id": model_id,
            "inputs_hmac": inputs_hash(values, key), "key_id": key_id(key), "risk": round(float(risk), 6),
            "risk_band": risk_band}


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
    when, key = _now(), audit_key()  # read once for the whole table
    columns = [df[name].tolist() for name in feature_names]
    bands = list(bands) if bands is not None else [None] * len(df)
    records = (make_record(dict(zip(feature_names, row)), risk, risk_band=band, time_utc=when, key=key,
                           **kwargs)
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
                    row = {k: record.get(k) for k in FIELDS}
                    if row["inputs_hmac"] is None and record.get("inputs_sha256"):
                        # a line from before the hash was keyed: shown, and marked as such
                        row["inputs_hmac"], row["key_id"] = record["inputs_sha256"], "unkeyed"
                    rows.append(row)
                except ValueError:
                    bad += 1
    return pd.DataFrame(rows, columns=FIELDS), bad
