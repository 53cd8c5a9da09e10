"""A bundle is one directory (``model.keras``, ``preprocess.json``, ``metadata.json``), written atomically,
hashed, and loaded with Keras safe mode plus an allowlist of layer classes. Nothing is pickled.

Save, verify and load bundles.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from core.data.schema import Schema
from core.errors import BundleError
from core.model.bands import BandCutoffs, model_bands
from core.model.config import TrainConfig
from core.model.estimator import RiskModel
from core.model.preprocess import Preprocessor
from core.model.recalibration import Calibration

BUNDLE_FORMAT = "heart-risk-bundle"
BUNDLE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_ALLOWED_LAYERS = {"InputLayer", "Dense", "Dropout"}
_MODEL_FILE, _PREPROCESS_FILE, _METADATA_FILE = "model.keras", "preprocess.json", "metadata.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value):
    """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_jsonable(data), fh, indent=1, ensure_ascii=False, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _library_versions() -> dict:
    import importlib.metadata as md
    versions = {"python": platform.python_version()}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return versions


def _is_bundle(directory: Path) -> bool:
    try:
        meta = json.loads((directory / _METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == BUNDLE_FORMAT


def save_bundle(model: RiskModel, directory, metrics: dict, data_fingerprint: str, name: str,
                extra: dict | None = None) -> Path:
    """Save a trained model as one bundle directory, atomically: a reader sees the old bundle or the new
    one, never a half-written one. An existing directory is replaced only if it is one of our bundles."""
    model._check_fitted()
    target = Path(directory)
    if target.exists() and not (target.is_dir() and _is_bundle(target)):
        raise BundleError(f"{target} exists and is not a model bundle; choose another directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        member_files = []
        for k, keras_model in enumerate(model.member_keras_models()):
            fname = _MODEL_FILE if k == 0 else _member_file(k + 1)
            keras_model.save(tmp / fname)
            _fsync(tmp / fname)
            member_files.append(fname)
        _write_json(tmp / _PREPROCESS_FILE, {
            "preprocessor": model.preprocessor_.to_dict(),
            "schema": json.loads(model.schema.to_json()),
        })
        files = {f: _sha256(tmp / f) for f in (*member_files, _PREPROCESS_FILE)}
        calibration = getattr(model, "calibration_", None) or Calibration()
        # Version 1 when nothing new is in it, so that older readers still open single, uncalibrated models.
        version = 2 if len(member_files) > 1 or calibration.method != "none" else 1
        _write_json(tmp / _METADATA_FILE, {
            "format": BUNDLE_FORMAT, "version": version,
            "members": member_files,
            "calibration": calibration.to_dict(),
            "input_reference": getattr(model, "input_reference_", None),
            "name": name,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "schema": json.loads(model.schema.to_json()),
            "config": model.config.model_dump(mode="json"),
            "data_fingerprint": data_fingerprint,
            "metrics": metrics or {},
            "history": getattr(model, "history_", {}),
            "best_epoch": getattr(model, "best_epoch_", None),
            "n_train": getattr(model, "n_train_", None),
            "n_val": getattr(model, "n_val_", None),
            "prevalence": getattr(model, "prevalence_", None),
            "bands": model_bands(model).to_dict(),  # the risk bands the clinician chose (or the defaults)
            "background": model.background_,
            "libraries": _library_versions(),
            "files": files,
            "extra": extra or {},
        })
        _fsync(tmp)
        if target.exists():
            # Move the old bundle aside first (rename is atomic), then put the new one in its place.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "bundle")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _member_file(k: int) -> str:
    return f"member_{k}.keras"


_MEMBER_NAME = re.compile(r"^(model|member_[0-9]{1,2})\.keras$")


def _config_nodes(node):
    """Every dict inside a Keras configuration (depth first)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_keras_config(path: Path) -> None:
    """Read the model's architecture from the .keras zip *before* Keras deserialises anything, and refuse
    any layer that is not InputLayer / Dense / Dropout (a Lambda layer would run code)."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise BundleError(f"{path.name} is not a readable Keras model file") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict) \
            or not all(isinstance(layer, dict) for layer in config["config"].get("layers") or []):
        raise BundleError(f"{path.name}: the model's configuration is not a Keras model's")
    # Every object the configuration names (activations, initializers, regularizers, dtypes...) must be
    # Keras' own: a custom or foreign one would be looked up and built by Keras' deserialiser.
    for node in _config_nodes(config):
        module, registered = node.get("module"), node.get("registered_name")
        if module is not None and str(module).split(".")[0] != "keras":
            raise BundleError(f"{path.name}: the model refers to code outside Keras ({str(module)[:60]!r}); refused")
        if registered is not None and ">" in str(registered):
            raise BundleError(f"{path.name}: the model needs a custom object ({str(registered)[:60]!r}); refused")
    if config.get("class_name") not in ("Functional", "Sequential", "Model"):
        raise BundleError(f"{path.name}: model class {config.get('class_name')!r} is not allowed")
    layers = config.get("config", {}).get("layers", [])
    if not layers:
        raise BundleError(f"{path.name}: the model has no layers")
    for layer in layers:
        cls, module = layer.get("class_name"), str(layer.get("module") or "keras.layers")
        if cls not in _ALLOWED_LAYERS or not module.startswith("keras"):
            raise BundleError(f"{path.name}: layer class {cls!r} is not allowed in a bundle "
                              f"(only {sorted(_ALLOWED_LAYERS)})")


def load_bundle(directory) -> RiskModel:
    """Load a bundle saved by :func:`save_bundle`, refusing anything that is not ours, tampered with,
    incomplete, or holds layers that could run code. (The hashes catch corruption and edits of one file;
    safe mode and the layer allowlist are what keep a hostile bundle from executing anything.)"""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a directory")
    meta_path = directory / _METADATA_FILE
    if not meta_path.is_file():
        raise BundleError(f"{directory} is not a model bundle: {_METADATA_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BundleError(f"{directory}: {_METADATA_FILE} is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{directory} is not a heart-risk model bundle (format marker missing)")
    if meta.get("version") not in _READABLE_VERSIONS:
        raise BundleError(f"{directory}: bundle version {meta.get('version')!r} is not supported "
                          f"(this program reads versions {', '.join(map(str, _READABLE_VERSIONS))})")
    files = meta.get("files") or {}
    member_files = meta.get("members") or [_MODEL_FILE]
    if (not isinstance(member_files, list) or member_files[0] != _MODEL_FILE or len(member_files) > 20
            or len(set(member_files)) != len(member_files)
            or not all(isinstance(f, str) and _MEMBER_NAME.match(f) for f in member_files)):
        raise BundleError(f"{directory}: {_METADATA_FILE} lists ensemble member files that are not allowed")
    for fname in (*member_files, _PREPROCESS_FILE):
        if fname not in files:
            raise BundleError(f"{directory}: {_METADATA_FILE} does not list {fname}")
        if not (directory / fname).is_file():
            raise BundleError(f"{directory}: {fname} is missing")
        if _sha256(directory / fname) != files[fname]:
            raise BundleError(f"{directory}: {fname} does not match its recorded SHA-256 "
                              "(the bundle was modified or corrupted)")
    try:
        pre_data = json.loads((directory / _PREPROCESS_FILE).read_text(encoding="utf-8"))
        schema = Schema.model_validate(pre_data["schema"])
        preprocessor = Preprocessor.from_dict(schema, pre_data["preprocessor"])
        config = TrainConfig.model_validate(meta["config"])
        calibration = Calibration.from_dict(meta.get("calibration"))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{directory}: the preprocessing or configuration cannot be read ({exc})") from None

    import keras
    members = []
    for fname in member_files:
        members.append(_load_member(directory, fname, preprocessor, config, keras))
    keras_model, weights = members[0]

    model = RiskModel(schema, config)
    model.preprocessor_ = preprocessor
    model._weights = weights
    model.member_weights_ = [w for _, w in members]
    model.config = config.model_copy(update={"members": len(members)})
    model.calibration_ = calibration
    model._set_networks()
    model._keras_model = keras_model
    model.input_reference_ = _read_reference(meta.get("input_reference"), preprocessor.n_outputs_)
    model.history_ = {k: [float("nan") if v is None else float(v) for v in vals]
                      for k, vals in (meta.get("history") or {}).items()}
    model.best_epoch_ = meta.get("best_epoch")
    model.epochs_run_ = len(model.history_.get("loss", []))
    model.n_train_ = meta.get("n_train")
    model.n_val_ = meta.get("n_val")
    model.prevalence_ = meta.get("prevalence")
    model.bands_ = BandCutoffs.from_dict(meta.get("bands"))
    model.background_ = np.array([[np.nan if v is None else v for v in row] for row in meta.get("background", [])],
                                 dtype=np.float64).reshape(-1, len(preprocessor.features))
    model.train_range_ = {name: (lo, hi) for name, lo, hi in zip(
        preprocessor.feature_names, preprocessor.raw_min_, preprocessor.raw_max_)}
    model.stopped_by_user_ = False
    model.metadata_ = meta
    return model


def _load_member(directory: Path, fname: str, preprocessor: Preprocessor, config: TrainConfig, keras):
    """One member's Keras file: architecture checked before deserialising, safe mode, allowlist, shape."""
    _check_keras_config(directory / fname)
    try:
        keras_model = keras.saving.load_model(directory / fname, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; the user needs one message
        raise BundleError(f"{directory}: the Keras model {fname} cannot be loaded ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})") from None
    bad = [type(layer).__name__ for layer in keras_model.layers if type(layer).__name__ not in _ALLOWED_LAYERS]
    if bad:
        raise BundleError(f"{directory}: layer classes {bad} are not allowed in a bundle")
    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    activations = [keras.activations.serialize(layer.activation) for layer in dense]
    activations = [a if isinstance(a, str) else a.get("config", a) for a in activations]
    expected_in = preprocessor.n_outputs_
    if (not dense or dense[0].kernel.shape[0] != expected_in or dense[-1].units != 1
            or activations[-1] != "sigmoid" or any(a != config.activation for a in activations[:-1])
            or [layer.units for layer in dense[:-1]] != list(config.hidden)):
        raise BundleError(f"{directory}: the Keras model {fname} does not match its preprocessing and configuration")
    weights = []
    for layer in dense:
        weights += [np.array(layer.kernel.numpy()), np.array(layer.bias.numpy())]
    return keras_model, weights


def _read_reference(data, n_inputs: int) -> dict | None:
    """The saved out-of-distribution reference, if present and of the right shape (else None: old bundle)."""
    try:
        mean = np.asarray(data["mean"], dtype=np.float64)
        precision = np.asarray(data["precision"], dtype=np.float64)
        threshold = float(data["d2_99"])
    except (KeyError, TypeError, ValueError):
        return None
    if mean.shape != (n_inputs,) or precision.shape != (n_inputs, n_inputs) or not math.isfinite(threshold):
        return None
    return {"mean": mean.tolist(), "precision": precision.tolist(), "d2_99": threshold, "n": data.get("n"),
            "method": str(data.get("method") or "")}
