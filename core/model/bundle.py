"""A bundle is one directory (``model.keras``, ``preprocess.json``, ``metadata.json``), written atomically,
hashed, and loaded with Keras safe mode plus an allowlist of layer classes. Nothing is pickled.

Save, verify and load bundles. The metadata's shape and its integrity fields are core.model.meta's.
"""
from __future__ import annotations

import datetime as _dt
import hmac
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
from pydantic import ValidationError

from core.data.schema import Schema
from core.errors import BundleError
from core.model.bands import BandCutoffs, model_bands
from core.model.bundle_zip import extract_bundle_zip
from core.model.config import TrainConfig
from core.model.estimator import RiskModel
from core.model.meta import (BUNDLE_FORMAT, BUNDLE_VERSION, READABLE_VERSIONS, BundleMeta, metadata_digest,
                             migrate, seal, sign, signing_key)
from core.model.preprocess import Preprocessor
from core.model.privacy import MIN_CLUSTER_ROWS, RANGE_PERCENTILES, cluster_background
from core.model.recalibration import Calibration
from core.model.store import check_name, save_draft, save_model, sha256_file, version_label

FALLBACK_CENTRES = 30  # core.explain.background measured 30 centres within its tolerance on the demo model


_ALLOWED_LAYERS = {"InputLayer", "Dense", "Dropout"}
_MODEL_FILE, _PREPROCESS_FILE, _METADATA_FILE = "model.keras", "preprocess.json", "metadata.json"


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


def model_meta(model: RiskModel, *, name: str | None = None, metrics: dict | None = None,
               data_fingerprint: str | None = None, extra: dict | None = None,
               created_utc: str | None = None) -> BundleMeta:
    """The metadata of ``model``: what it is (members, calibration, configuration, history, background...)
    read from the model itself, and what it is called and how it scored from the arguments."""
    calibration = getattr(model, "calibration_", None) or Calibration()
    history = getattr(model, "history_", {}) or {}
    background = getattr(model, "background_", None)
    weights = getattr(model, "background_weights_", None)
    disclosure = getattr(model, "disclosure_", None)
    if background is not None and len(background) and weights is None:
        # Raw training rows never leave in a bundle: summarised here when the model was fitted without
        # core.explain.summarise_background (which also measures how much the reasons moved).
        background, weights = cluster_background(np.asarray(background, dtype=np.float64),
                                                 [f.kind for f in model.preprocessor_.features], FALLBACK_CENTRES)
        disclosure = {"centres": len(background), "rows": len(getattr(model, "background_")),
                      "min_weight_rows": int(round(float(weights.min()) * len(model.background_))),
                      "tolerance": None, "max_reason_change": None, "min_cluster_rows": MIN_CLUSTER_ROWS,
                      "range_low": f"{RANGE_PERCENTILES[0]:g}", "range_high": f"{RANGE_PERCENTILES[1]:g}"}
    imputer = getattr(getattr(model, "preprocessor_", None), "imputer_", None)
    if imputer is not None:  # what preprocess.json will hold: always groups (raw donors are grouped on saving)
        imputer = imputer.for_saving([f.kind for f in model.preprocessor_.features])
    if disclosure is not None and imputer is not None and len(imputer.weights):
        disclosure = {k: v for k, v in disclosure.items() if not k.startswith("donor")}
        disclosure.update(donor_groups=len(imputer.weights), donor_patients=int(round(imputer.weights.sum())),
                          donor_min_patients=int(round(imputer.weights.min())))
    return BundleMeta.model_validate(_jsonable({
        "name": name,
        "created_utc": created_utc or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "members": ["model.keras" if k == 0 else _member_file(k + 1)
                    for k in range(getattr(model, "n_members_", None) or 1)],
        "members_requested": getattr(model, "members_requested_", None),
        "calibration": calibration.to_dict(),
        "input_reference": getattr(model, "input_reference_", None),
        "schema": json.loads(model.schema.to_json()),
        "config": model.config.model_dump(mode="json"),
        "data_fingerprint": data_fingerprint,
        "metrics": metrics or {},
        "history": history,
        "best_epoch": getattr(model, "best_epoch_", None),
        "epochs_run": getattr(model, "epochs_run_", None) or len(history.get("loss", [])) or None,
        "n_train": getattr(model, "n_train_", None),
        "n_val": getattr(model, "n_val_", None),
        "prevalence": getattr(model, "prevalence_", None),
        "bands": model_bands(model).to_dict(),  # the risk bands the clinician chose (or the defaults)
        "stopped_by_user": bool(getattr(model, "stopped_by_user_", False)),
        "background": background if background is not None else [],
        "background_weights": weights,
        "disclosure": disclosure,
        "libraries": _library_versions(),
        "extra": extra or {},
    }))


def save_bundle(model: RiskModel, directory, metrics: dict | None = None, data_fingerprint: str | None = None,
                name: str | None = None, extra: dict | None = None, *, meta: BundleMeta | None = None) -> Path:
    """Save a trained model as one bundle directory, atomically: a reader sees the old bundle or the new
    one, never a half-written one. An existing directory is replaced only if it is one of our bundles.

    ``meta``: the session's metadata of the model (its name, test metrics, fingerprint and extras are
    saved; what the model itself is — members, calibration, background... — is read from ``model``).
    Without it, ``metrics``, ``data_fingerprint``, ``name`` and ``extra`` say the same."""
    model._check_fitted()
    if meta is not None:
        name = name if name is not None else meta.name
        metrics = metrics if metrics is not None else meta.metrics
        data_fingerprint = data_fingerprint if data_fingerprint is not None else meta.fingerprint
        extra = extra if extra is not None else meta.extra.model_dump(exclude_none=True)
    description = model_meta(model, name=name, metrics=metrics, data_fingerprint=data_fingerprint, extra=extra)
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
        files = {f: sha256_file(tmp / f) for f in (*member_files, _PREPROCESS_FILE)}
        data = description.to_json_dict()
        data.update(version=BUNDLE_VERSION, members=member_files, files=files)
        # Hashed as it will be read back: through JSON (NaN -> None, tuples -> lists).
        _write_json(tmp / _METADATA_FILE, seal(json.loads(json.dumps(_jsonable(data), allow_nan=False))))
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


def _label(directory: Path) -> str:
    """How a bundle is named in messages: a store's version as people name it ("heart-mlp (v3)"), another
    folder by its own name; never the server's absolute path."""
    return version_label(directory)


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


def _check_keras_config(path: Path) -> dict:
    """Read the model's architecture from the .keras zip *before* Keras deserialises anything, and refuse
    any layer that is not InputLayer / Dense / Dropout (a Lambda layer would run code). Returns it."""
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
    return config


def verify_bundle(directory) -> BundleMeta:
    """Check a bundle's integrity before anything of it is used; its metadata, migrated to this version.

    Refused, with the file named: a metadata file that is not ours or of an unknown version; (version 3)
    a metadata whose canonical JSON does not match its ``metadata_sha256``; with a signing key set, a
    missing or wrong signature; any file whose SHA-256 differs from the manifest (``files``); a listed
    file that is missing; any file in the folder that the manifest does not list."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{_label(directory)} is not a directory")
    meta_path = directory / _METADATA_FILE
    if not meta_path.is_file():
        raise BundleError(f"{_label(directory)} is not a model bundle: {_METADATA_FILE} is missing")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BundleError(f"{_label(directory)}: {_METADATA_FILE} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{_label(directory)} is not a heart-risk model bundle (format marker missing)")
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise BundleError(f"{_label(directory)}: bundle version {version!r} is not supported "
                          f"(this program reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    legacy = version < 3
    if not legacy:
        try:
            digest = metadata_digest(data)
        except ValueError:
            digest = None
        if not isinstance(data.get("metadata_sha256"), str) or digest != data["metadata_sha256"]:
            raise BundleError(f"{_label(directory)}: {_METADATA_FILE} does not match its recorded SHA-256 "
                              "(the bundle was modified or corrupted); refused")
    key = signing_key()
    if key is not None:
        signature = data.get("signature")
        if legacy or not isinstance(signature, str) or not hmac.compare_digest(signature, sign(data, key)):
            raise BundleError(f"{_label(directory)}: {_METADATA_FILE} is not signed with this installation's "
                              "signing key (HEART_RISK_SIGNING_KEY); refused")
    files = data.get("files") or {}
    member_files = data.get("members") or [_MODEL_FILE]
    if (not isinstance(member_files, list) or member_files[0] != _MODEL_FILE or len(member_files) > 20
            or len(set(member_files)) != len(member_files)
            or not all(isinstance(f, str) and _MEMBER_NAME.match(f) for f in member_files)):
        raise BundleError(f"{_label(directory)}: {_METADATA_FILE} lists ensemble member files that are not allowed")
    if not isinstance(files, dict) or set(files) != {*member_files, _PREPROCESS_FILE}:
        raise BundleError(f"{_label(directory)}: {_METADATA_FILE} must list exactly the model files and "
                          f"{_PREPROCESS_FILE} in its manifest")
    unlisted = sorted(p.name for p in directory.iterdir() if p.name != _METADATA_FILE and p.name not in files)
    if unlisted:
        raise BundleError(f"{_label(directory)}: {', '.join(unlisted[:5])} "
                          f"{'is' if len(unlisted) == 1 else 'are'} not in the bundle's manifest; refused")
    for fname in (*member_files, _PREPROCESS_FILE):
        path = directory / fname
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"{_label(directory)}: {fname} is missing")
        if sha256_file(path) != files[fname]:
            raise BundleError(f"{_label(directory)}: {fname} does not match its recorded SHA-256 "
                              "(the bundle was modified or corrupted); refused")
    try:
        meta = BundleMeta.model_validate(migrate(data))
    except ValidationError as exc:
        where = ".".join(str(x) for x in exc.errors()[0]["loc"]) if exc.errors() else "?"
        raise BundleError(f"{_label(directory)}: {_METADATA_FILE} has a field that is not allowed or not "
                          f"readable ({where})") from None
    meta.legacy_unverified = legacy
    return meta


def load_bundle(directory, *, keras: bool = True) -> RiskModel:
    """Load a bundle saved by :func:`save_bundle`, refusing anything that is not ours, tampered with,
    incomplete, or holds layers that could run code. (The hashes catch corruption and edits of any file;
    safe mode and the layer allowlist are what keep a hostile bundle from executing anything.)

    ``keras=False``: every member's weights are read from its ``.keras`` file as plain arrays (h5py),
    after the same checks (every file's SHA-256, the architecture against the layer allowlist, the
    layers' sizes and activations against the preprocessing and configuration), without importing
    TensorFlow: nothing of the file is deserialised into objects, so nothing in it can run. Risk and
    SHAP run in numpy (core.model.network) on the same float32 weights Keras would load, so the numbers
    are identical; a Keras model is built from them only if asked for (``keras_model_``). What a batch
    worker uses: the TensorFlow import was most of its start-up (10-40 s) and memory (~600 MB)."""
    directory = Path(directory)
    meta = verify_bundle(directory)
    member_files = meta.members
    try:
        pre_data = json.loads((directory / _PREPROCESS_FILE).read_text(encoding="utf-8"))
        schema = Schema.model_validate(pre_data["schema"])
        preprocessor = Preprocessor.from_dict(schema, pre_data["preprocessor"])
        config = TrainConfig.model_validate(meta.config)
        calibration = Calibration.from_dict(meta.calibration)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{_label(directory)}: the preprocessing or configuration cannot be read ({exc})") from None

    if keras:
        import keras as keras_module
        members = [_load_member(directory, fname, preprocessor, config, keras_module) for fname in member_files]
    else:
        members = [(None, _read_member_weights(directory, fname, preprocessor, config)) for fname in member_files]
    keras_model, weights = members[0]

    model = RiskModel(schema, config)
    model.preprocessor_ = preprocessor
    model._weights = weights
    model.member_weights_ = [w for _, w in members]
    model.config = config.model_copy(update={"members": len(members)})
    model.calibration_ = calibration
    model._set_networks()
    model._keras_model = keras_model
    model.input_reference_ = _read_reference(meta.input_reference, preprocessor.n_outputs_)
    model.history_ = {k: [float("nan") if v is None else float(v) for v in vals]
                      for k, vals in meta.history.items()}
    model.best_epoch_ = meta.best_epoch
    model.epochs_run_ = len(model.history_.get("loss", []))
    model.n_train_ = meta.n_train
    model.n_val_ = meta.n_val
    model.prevalence_ = meta.prevalence
    try:
        model.background_ = np.array([[np.nan if v is None else v for v in row] for row in meta.background],
                                     dtype=np.float64).reshape(-1, len(preprocessor.features))
    except ValueError:
        raise BundleError(f"{_label(directory)}: the explanation background does not fit the model's "
                          "features") from None
    weights = meta.background_weights
    if weights is not None and (len(weights) != len(model.background_) or min(weights, default=0) <= 0):
        raise BundleError(f"{_label(directory)}: the explanation background's weights do not fit its rows")
    model.background_weights_ = None if weights is None else np.asarray(weights, dtype=np.float64)
    model.bands_ = BandCutoffs.from_dict(meta.bands)
    model.train_range_ = {name: (lo, hi) for name, lo, hi in zip(
        preprocessor.feature_names, preprocessor.raw_min_, preprocessor.raw_max_)}
    model.stopped_by_user_ = meta.stopped_by_user
    model.members_requested_ = meta.members_requested
    model.disclosure_ = meta.disclosure
    model.metadata_ = meta
    return model


def _load_member(directory: Path, fname: str, preprocessor: Preprocessor, config: TrainConfig, keras):
    """One member's Keras file: architecture checked before deserialising, safe mode, allowlist, shape."""
    _check_keras_config(directory / fname)
    try:
        keras_model = keras.saving.load_model(directory / fname, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; the user needs one message
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise BundleError(f"{_label(directory)}: the Keras model {fname} cannot be loaded "
                          f"({type(exc).__name__}: {first_line})") from None
    bad = [type(layer).__name__ for layer in keras_model.layers if type(layer).__name__ not in _ALLOWED_LAYERS]
    if bad:
        raise BundleError(f"{_label(directory)}: layer classes {bad} are not allowed in a bundle")
    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    activations = [keras.activations.serialize(layer.activation) for layer in dense]
    activations = [a if isinstance(a, str) else a.get("config", a) for a in activations]
    expected_in = preprocessor.n_outputs_
    if (not dense or dense[0].kernel.shape[0] != expected_in or dense[-1].units != 1
            or activations[-1] != "sigmoid" or any(a != config.activation for a in activations[:-1])
            or [layer.units for layer in dense[:-1]] != list(config.hidden)):
        raise BundleError(f"{_label(directory)}: the Keras model {fname} does not match its preprocessing "
                          "and configuration")
    weights = []
    for layer in dense:
        weights += [np.array(layer.kernel.numpy()), np.array(layer.bias.numpy())]
    return keras_model, weights


_WEIGHTS_FILE = "model.weights.h5"
_MAX_WEIGHTS_BYTES = 64 * 2**20  # an MLP of this app's sizes is kilobytes; a bigger file is not one of ours


def _dense_layers(config: dict) -> list[dict]:
    """The Dense layers' configurations, in the model's order (config.json lists layers in call order)."""
    return [layer.get("config") or {} for layer in config["config"]["layers"] if layer.get("class_name") == "Dense"]


def _read_member_weights(directory: Path, fname: str, preprocessor: Preprocessor,
                         config: TrainConfig) -> list[np.ndarray]:
    """One member's weights [W1, b1, ..., Wk, bk] read from its .keras zip without Keras: the
    architecture checked as :func:`_load_member` checks it (allowlist, sizes, activations), then each
    Dense layer's kernel and bias from model.weights.h5 (Keras 3 stores a layer's variables under a
    group whose ``vars`` carry the layer's name), each checked for shape and float type."""
    import io

    import h5py

    path = directory / fname
    keras_config = _check_keras_config(path)
    dense = _dense_layers(keras_config)
    activations = [d.get("activation") for d in dense]
    expected_in = preprocessor.n_outputs_
    units = [d.get("units") for d in dense]
    if (not dense or units[-1] != 1 or activations[-1] != "sigmoid"
            or any(a != config.activation for a in activations[:-1]) or units[:-1] != list(config.hidden)
            or not all(d.get("use_bias", True) is True for d in dense)):
        raise BundleError(f"{_label(directory)}: the Keras model {fname} does not match its preprocessing "
                          "and configuration")
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(_WEIGHTS_FILE)
            if info.file_size > _MAX_WEIGHTS_BYTES:
                raise BundleError(f"{_label(directory)}: {fname} holds weights far larger than this model's")
            data = zf.read(info)
        by_name = {}
        with h5py.File(io.BytesIO(data), "r") as h5:
            for group in h5.get("layers", {}).values():
                if isinstance(group, h5py.Group) and isinstance(group.get("vars"), h5py.Group):
                    by_name[str(group["vars"].attrs.get("name", ""))] = group["vars"]
            weights, fan_in = [], expected_in
            for layer, n_units in zip(dense, units):
                found = by_name.get(str(layer.get("name")))
                shapes = {"0": (fan_in, n_units), "1": (n_units,)}
                if found is None or sorted(found.keys()) != ["0", "1"]:
                    raise BundleError(f"{_label(directory)}: the weights in {fname} do not match its layers")
                for key in ("0", "1"):
                    var = found[key]
                    if not isinstance(var, h5py.Dataset) or var.dtype.kind != "f" or var.shape != shapes[key]:
                        raise BundleError(f"{_label(directory)}: the weights in {fname} do not match its "
                                          "preprocessing and configuration")
                    weights.append(np.asarray(var[()], dtype=np.float32))
                fan_in = n_units
    except BundleError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise BundleError(f"{_label(directory)}: the weights in {fname} cannot be read") from None
    if not all(np.all(np.isfinite(w)) for w in weights):
        raise BundleError(f"{_label(directory)}: the weights in {fname} are not all numbers")
    return weights


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


def save_to_store(model: RiskModel, name: str, meta: BundleMeta | None = None, root: Path | None = None,
                  **fields) -> Path:
    """Save ``model`` as a new version of ``name`` in the store (atomically; see core.model.store): the
    one save path of the dashboard and the CLI. ``meta`` and ``fields`` as for :func:`save_bundle`; the
    saved name is the store's."""
    name = check_name(name)
    return save_model(lambda directory: save_bundle(model, directory, name=name, meta=meta, **fields), name, root)


def save_draft_to_store(model: RiskModel, token: str, user: str | None = None, meta: BundleMeta | None = None,
                        root: Path | None = None) -> Path:
    """Save ``model`` as an unnamed draft of the session ``token`` (see core.model.store); returns the
    draft's bundle path (loaded like any saved bundle, verified)."""
    return save_draft(lambda directory: save_bundle(model, directory, meta=meta), token, user, root)


def import_bundle_zip(data, name: str | None = None, root: Path | None = None) -> Path:
    """A zipped bundle into the store: unpacked safely, verified by loading it (every file's hash, the
    metadata's, safe mode, the layer allowlist; a file the manifest does not list is refused, named),
    then copied in as a new version of ``name`` (default: the name in its metadata)."""
    with tempfile.TemporaryDirectory(prefix="bundle-import-") as tmp:
        bundle_dir = extract_bundle_zip(data, Path(tmp) / "unpacked")
        model = load_bundle(bundle_dir)
        name = (name or "").strip() or str(model.metadata_.name or "imported-model")
        return save_model(lambda target: shutil.copytree(bundle_dir, target), name, root)
