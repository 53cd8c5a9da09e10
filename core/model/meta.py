"""BundleMeta: the one shape of a model's metadata, for a saved bundle (``metadata.json``) and for a model
trained in this session alike. save_bundle writes it, load_bundle reads it (older versions migrated), and
the model card, the pages and the CLI read its fields, not nested ``.get`` chains.

Integrity (version 3): ``metadata.json`` carries ``files`` (SHA-256 of every other file of the bundle) and
``metadata_sha256``, the SHA-256 of the metadata's canonical JSON without that field (and without
``signature``). So every byte that changes a risk, a reason or a displayed number is covered: the networks
and preprocessing through ``files``, the calibration, background, metrics, schema, configuration and
input reference through ``metadata_sha256``. With ``HEART_RISK_SIGNING_KEY`` set, ``signature`` is an
HMAC-SHA256 of the same canonical bytes, and a bundle without a valid one is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BUNDLE_FORMAT = "heart-risk-bundle"
BUNDLE_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
SIGNING_KEY_ENV = "HEART_RISK_SIGNING_KEY"
_UNHASHED = ("metadata_sha256", "signature")


class BundleExtra(BaseModel):
    """What the dashboard adds to a model: the cohort it came from, split sizes, cross-validation, the
    Trust page's summary and external validations. Other keys are kept as given (older bundles)."""
    model_config = ConfigDict(extra="allow")

    cohort: dict[str, Any] = Field(default_factory=dict)
    sizes: dict[str, Any] = Field(default_factory=dict)
    cv: dict[str, Any] | None = None
    trust: dict[str, Any] | None = None
    external_validations: list[dict[str, Any]] = Field(default_factory=list)


class BundleMeta(BaseModel):
    """A model's metadata. ``feature_schema`` is written as ``schema`` (the JSON key since version 1)."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: Literal["heart-risk-bundle"] = BUNDLE_FORMAT
    version: int = BUNDLE_VERSION
    name: str | None = None
    created_utc: str | None = None
    members: list[str] = Field(default_factory=lambda: ["model.keras"])
    members_requested: int | None = None
    calibration: dict[str, Any] = Field(default_factory=lambda: {"method": "none"})
    input_reference: dict[str, Any] | None = None
    feature_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    config: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: dict[str, list[float | None]] = Field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    prevalence: float | None = None
    # The risk bands' cut-offs the clinician chose (core.model.bands); None: the defaults (older bundles).
    bands: dict[str, Any] | None = None
    stopped_by_user: bool = False
    background: list[list[float | None]] = Field(default_factory=list)
    # Weight of each background row (weighted cluster centres); None: equal weights (raw rows, version < 3).
    background_weights: list[float] | None = None
    # What the bundle says about its training patients (see core.model.privacy); None before version 3.
    disclosure: dict[str, Any] | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    extra: BundleExtra = Field(default_factory=BundleExtra)
    # Set when read from an older bundle whose metadata had no hash (never written).
    legacy_unverified: bool = Field(False, exclude=True)
    metadata_sha256: str | None = None
    signature: str | None = None

    # ---- derived -----------------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        return len(self.members) if self.members else int(self.config.get("members", 1) or 1)

    @property
    def calibration_method(self) -> str:
        return str(self.calibration.get("method", "none"))

    @property
    def fingerprint(self) -> str | None:
        """The training data's fingerprint (the metadata's, else the cohort summary's)."""
        return self.data_fingerprint or self.extra.cohort.get("fingerprint")

    @property
    def test_auc(self):
        return self.metrics.get("roc_auc")

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def updated(self, **changes) -> "BundleMeta":
        """A copy with ``changes`` (field names), validated; ``extra`` may be a dict or a BundleExtra."""
        data = self.model_dump(by_alias=False)
        data.update(changes)
        data.pop("legacy_unverified", None)
        return BundleMeta.model_validate(data)


def as_bundle_meta(meta) -> BundleMeta:
    """A BundleMeta from a BundleMeta, None, or a dict of the metadata's shape (e.g. built in a test)."""
    if isinstance(meta, BundleMeta):
        return meta
    return BundleMeta.model_validate(migrate(dict(meta or {})))


def canonical_bytes(data: dict) -> bytes:
    """The metadata as hashed: sorted keys, no spaces, without the hash and signature fields. JSON
    numbers read back by Python give the same text, so a reader recomputes exactly what was written."""
    body = {k: v for k, v in data.items() if k not in _UNHASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def metadata_digest(data: dict) -> str:
    return hashlib.sha256(canonical_bytes(data)).hexdigest()


def signing_key() -> bytes | None:
    key = os.environ.get(SIGNING_KEY_ENV, "")
    return key.encode("utf-8") if key else None


def sign(data: dict, key: bytes) -> str:
    return hmac.new(key, canonical_bytes(data), hashlib.sha256).hexdigest()


def seal(data: dict) -> dict:
    """``data`` with its ``metadata_sha256`` (and ``signature`` when a signing key is set)."""
    data = {k: v for k, v in data.items() if k not in _UNHASHED}
    data["metadata_sha256"] = metadata_digest(data)
    key = signing_key()
    if key:
        data["signature"] = sign(data, key)
    return data


def migrate(data: dict) -> dict:
    """Older shapes into this one: version 1/2 bundles, and ``training_metadata`` before BundleMeta."""
    data = dict(data)
    if "cv" in data:  # a top-level cv (an old session shape) belongs with the rest of the extras
        extra = dict(data.get("extra") or {})
        extra.setdefault("cv", data.pop("cv"))
        data["extra"] = extra
    if data.get("calibration") is None:
        data["calibration"] = {"method": "none"}
    if data.get("members") is None:
        data.pop("members", None)
    if data.get("extra") is None:
        data["extra"] = {}
    if data.get("history") is None:
        data["history"] = {}
    if data.get("epochs_run") is None and data.get("history"):
        data["epochs_run"] = len(data["history"].get("loss", []))
    for key in ("metrics", "libraries", "files", "schema", "config"):
        if data.get(key) is None:
            data.pop(key, None)
    return data
