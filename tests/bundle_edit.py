"""Editing a saved bundle's metadata in tests, as a forger who knows the format would: the metadata's own
SHA-256 (``metadata_sha256``) recomputed after the edit, so that the checks behind it are what is tested."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.model.meta import seal


def read_meta(bundle) -> dict:
    return json.loads((Path(bundle) / "metadata.json").read_text(encoding="utf-8"))


def write_meta(bundle, meta: dict, rehash_files: bool = False) -> None:
    """Write ``meta`` with its hash recomputed (and, with ``rehash_files``, every file's SHA-256 too)."""
    bundle = Path(bundle)
    meta = dict(meta)
    if rehash_files:
        meta["files"] = {name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in meta["files"]}
    (bundle / "metadata.json").write_text(json.dumps(seal(meta), ensure_ascii=False), encoding="utf-8")
