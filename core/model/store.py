"""The model store: named, versioned bundles in one folder outside the code tree.

Where: $HEART_RISK_STORE, else the dashboard's configured location (Streamlit secret ``model_store``, see
:func:`configure_root`), else the user's data directory (platformdirs), e.g.
~/.local/share/heart-risk/models. Layout: <root>/<name>/v<k>/ (one bundle each). A save is written into
a hidden temporary folder and renamed into place: a crash at any point leaves no half-written version
visible, and two sessions saving the same name get two versions (rename onto an existing version fails,
and the loser takes the next number). A deleted version leaves a marker file ``v<k>.retired``: its number
is never given again, so "name (v<k>)" in an audit line or a report names one model only.

Drafts (issue 16.4): a model trained in the dashboard is saved at once, unnamed, as
<root>/.drafts/<id>/bundle (a bundle like any other, loaded verified) next to <root>/.drafts/<id>/draft.json
(the SHA-256 of the session token, the signed-in user if any, the creation time). ``.drafts`` can never be
a model's name (a name starts with a letter or digit) and :func:`list_models` skips it. Drafts older than
``HEART_RISK_DRAFT_HOURS`` (default 24) go with :func:`clean_stale`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from pathlib import Path

from core.errors import BundleError

# Letters and digits of any script (modèle, 心脏模型), then also spaces, '_', '-', '.'; never a path separator.
NAME = re.compile(r"^[^\W_][\w .\-]{0,63}$")
# Names Windows keeps for devices, with or without an extension: a store copied there must still open.
_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?$", re.IGNORECASE)
_VERSION = re.compile(r"v(\d+)")
_RETIRED = re.compile(r"v(\d+)\.retired")
DRAFTS = ".drafts"  # the reserved draft area: no model name can start with '.'
_DRAFT_ID = re.compile(r"\d{10}-[0-9a-f]{12}")


_configured_root: Path | None = None


def configure_root(path) -> None:
    """Where the store lives when $HEART_RISK_STORE is not set: the dashboard passes the ``model_store``
    of its Streamlit secrets on every run; None goes back to the user's data directory."""
    global _configured_root
    _configured_root = Path(path).expanduser() if path else None


def store_root() -> Path:
    env = os.environ.get("HEART_RISK_STORE")
    if env:
        root = Path(env)
    elif _configured_root is not None:
        root = _configured_root
    else:
        import platformdirs
        root = Path(platformdirs.user_data_dir("heart-risk", appauthor=False)) / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_name(name: str) -> str:
    # NFC: "è" typed as e + combining accent is the same name (and folder) as the precomposed "è".
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not NAME.match(name):
        raise BundleError("a model name is 1–64 letters, digits, spaces, '-', '_' or '.', not starting with a symbol")
    if name.endswith("."):
        raise BundleError("a model name cannot end with '.' (Windows drops it from folder names)")
    if _RESERVED.match(name):
        raise BundleError(f"{name!r} is a device name on Windows; choose another model name")
    return name


def version_label(path) -> str:
    """A saved version as people name it: "heart-mlp (v3)". Messages use this, never the server's path."""
    path = Path(path)
    return f"{path.parent.name} ({path.name})" if _VERSION.fullmatch(path.name) else path.name


def sha256_file(path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MB chunks: bundle files, batch inputs and outputs."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_digest(directory) -> str:
    """The content hash of a bundle: SHA-256 over every file's relative name and bytes, in name order.
    Two bundles with one differing byte (weights, calibration, metadata) have different digests."""
    directory = Path(directory)
    outer = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix().encode("utf-8")
        outer.update(len(name).to_bytes(4, "big") + name + bytes.fromhex(sha256_file(path)))
    return outer.hexdigest()


def _taken_numbers(model_dir: Path) -> list[int]:
    """Numbers of the versions there are and of those deleted (retired): none is given again."""
    numbers = []
    for p in model_dir.iterdir():
        m = _VERSION.fullmatch(p.name) or _RETIRED.fullmatch(p.name)
        if m:
            numbers.append(int(m.group(1)))
    return numbers


def list_models(root: Path | None = None) -> list[dict]:
    """Every saved version, newest first: name, version, path."""
    root = root or store_root()
    out = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for v in model_dir.iterdir():
            m = _VERSION.fullmatch(v.name)
            if m and v.is_dir() and (v / "metadata.json").exists():
                out.append({"name": model_dir.name, "version": int(m.group(1)), "path": v,
                            "mtime": v.stat().st_mtime})
    return sorted(out, key=lambda r: r["mtime"], reverse=True)


def save_model(write_bundle, name: str, root: Path | None = None) -> Path:
    """Save a new version of ``name``. ``write_bundle(tmp_dir)`` writes the bundle files into an empty
    directory; this function makes it visible atomically and returns its final path."""
    name = check_name(name)
    root = root or store_root()
    try:  # what killed processes left behind goes with the next save (never a young, running one)
        clean_stale(root)
    except OSError:
        pass
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=root))
    try:
        bundle_dir = staging / "bundle"
        write_bundle(bundle_dir)
        (root / name).mkdir(exist_ok=True)
        for _ in range(1000):
            version = 1 + max(_taken_numbers(root / name), default=0)
            target = root / name / f"v{version}"
            try:
                os.rename(bundle_dir, target)  # atomic; fails if another session took this number
                _fsync_dir(root / name)
                return target
            except OSError:
                if not target.exists():
                    raise
        raise BundleError(f"could not find a free version number for {name!r}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def delete_model(path: Path, root: Path | None = None) -> None:
    root = (root or store_root()).resolve()
    path = Path(path).resolve()
    if root not in path.parents or not (path / "metadata.json").exists():
        raise BundleError(f"{version_label(path)} is not a saved model of this store")
    # The number is retired before the version goes: at every moment either the version or its marker
    # is there, so a save running meanwhile never takes the number again.
    m = _VERSION.fullmatch(path.name)
    if m:
        marker = path.parent / f"v{m.group(1)}.retired"
        marker.touch()
        _fsync_dir(path.parent)
    # Rename first so a half-deleted version is never visible as a model.
    trash = Path(tempfile.mkdtemp(prefix=".deleting-", dir=root))
    os.rename(path, trash / "bundle")
    shutil.rmtree(trash, ignore_errors=True)


def clean_stale(root: Path | None = None, older_than_s: float = 3600, draft_age_s: float | None = None) -> int:
    """Remove staging folders left by a killed process (never a finished version, and never one young
    enough to belong to a save that is still running in another session), and drafts older than
    ``draft_age_s`` (default: HEART_RISK_DRAFT_HOURS)."""
    root = root or store_root()
    now = time.time()
    stale = [p for p in root.iterdir() if p.name.startswith((".saving-", ".deleting-"))
             and now - p.stat().st_mtime > older_than_s]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    age = draft_hours() * 3600 if draft_age_s is None else draft_age_s
    old_drafts = [d["dir"] for d in list_drafts(root) if now - d["created"] > age]
    for p in old_drafts:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale) + len(old_drafts)


# ---- drafts ------------------------------------------------------------------------------------
def draft_hours() -> float:
    try:
        return max(float(os.environ.get("HEART_RISK_DRAFT_HOURS", "24")), 0.0)
    except ValueError:
        return 24.0


def session_key(token: str) -> str:
    """What a draft keeps of its session token: its hash (the token itself opens the session)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def save_draft(write_bundle, token: str, user: str | None = None, root: Path | None = None) -> Path:
    """Save a draft for the session ``token`` (and signed-in ``user``); returns its bundle's path. Written
    in a staging folder and renamed into place whole, like a version."""
    root = root or store_root()
    try:
        clean_stale(root)
    except OSError:
        pass
    drafts = root / DRAFTS
    drafts.mkdir(exist_ok=True)
    created = time.time()
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=root))
    try:
        write_bundle(staging / "bundle")
        with open(staging / "draft.json", "w", encoding="utf-8") as fh:
            json.dump({"session": session_key(token), "user": user, "created": created}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        target = drafts / f"{int(created):010d}-{uuid.uuid4().hex[:12]}"
        os.rename(staging, target)
        _fsync_dir(drafts)
        return target / "bundle"
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def list_drafts(root: Path | None = None, token: str | None = None, user: str | None = None) -> list[dict]:
    """Drafts, newest first: path (the bundle), dir, created (epoch seconds), user. With ``token`` and/or
    ``user``: only those of that session or, when ``user`` is given, of that signed-in user."""
    root = root or store_root()
    drafts = root / DRAFTS
    if not drafts.is_dir():
        return []
    key = session_key(token) if token else None
    out = []
    for d in drafts.iterdir():
        if not (_DRAFT_ID.fullmatch(d.name) and (d / "bundle" / "metadata.json").exists()):
            continue
        try:
            info = json.loads((d / "draft.json").read_text(encoding="utf-8"))
            created = float(info["created"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if token is not None or user is not None:
            mine = info.get("user") == user if user is not None else info.get("session") == key
            if not mine or (user is None and info.get("user") is not None):
                continue
        out.append({"path": d / "bundle", "dir": d, "created": created, "user": info.get("user")})
    return sorted(out, key=lambda r: r["created"], reverse=True)


def delete_draft(path: Path, root: Path | None = None) -> None:
    """Delete a draft (``path``: its bundle or its folder)."""
    root = (root or store_root()).resolve()
    path = Path(path).resolve()
    folder = path.parent if path.name == "bundle" else path
    if folder.parent != root / DRAFTS or not _DRAFT_ID.fullmatch(folder.name):
        raise BundleError("not a draft of this store")
    trash = Path(tempfile.mkdtemp(prefix=".deleting-", dir=root))
    os.rename(folder, trash / "draft")
    shutil.rmtree(trash, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
