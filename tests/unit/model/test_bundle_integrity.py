"""Every byte of a bundle that changes a risk, a reason or a displayed number is verified on load, in
core and in zip import (issue 18, item 1); old bundles still load; optional HMAC signing."""
from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from core.data import DEMO_NAME, cleveland_schema, cohort_from_frame, demo_cohort
from core.errors import BundleError
from core.evaluate import model_splits, recalibrate
from core.model import (BundleMeta, TrainConfig, bundle_to_zip, import_bundle_zip, load_bundle, save_bundle,
                        verify_bundle)
from core.workflow import cohort_summary, train_on_cohort, training_metadata
from bundle_edit import read_meta, write_meta


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    cohort = cohort_from_frame(demo_cohort(), cleveland_schema(), name=DEMO_NAME, synthetic=True)
    result = train_on_cohort(cohort, TrainConfig(epochs=8, members=2))
    model = recalibrate(result.model, cohort, model_splits(result.model, cohort, cohort.fingerprint), method="platt")
    meta = training_metadata(model, result.metrics, name="integrity", cohort=cohort_summary(cohort), sizes=result.sizes)
    path = tmp_path_factory.mktemp("bundles") / "integrity"
    save_bundle(model, path, meta=meta)
    return path


def _copy(bundle, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(bundle, target)
    return target


def _import(bundle_dir, tmp_path):
    (tmp_path / "store").mkdir(exist_ok=True)
    return import_bundle_zip(bundle_to_zip(bundle_dir), "imported", root=tmp_path / "store")


def test_the_saved_bundle_verifies_and_round_trips_its_metadata(bundle):
    meta = verify_bundle(bundle)
    assert isinstance(meta, BundleMeta) and meta.version == 3 and not meta.legacy_unverified
    assert set(meta.files) == {"model.keras", "member_2.keras", "preprocess.json"}
    model = load_bundle(bundle)
    assert model.metadata_.calibration_method == "platt" and model.n_members_ == 2


@pytest.mark.parametrize("name", ["model.keras", "member_2.keras", "preprocess.json", "metadata.json"])
def test_a_one_bit_edit_of_any_file_is_refused_naming_it_in_core_and_zip_import(bundle, tmp_path, name):
    edited = _copy(bundle, tmp_path, "edited")
    data = bytearray((edited / name).read_bytes())
    # metadata.json: a digit of a number (still valid JSON); others: one bit in the middle
    pos = data.find(b'"b": ') + 5 if name == "metadata.json" else len(data) // 2
    data[pos] ^= 0x01
    (edited / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{name} does not match its recorded SHA-256"):
        load_bundle(edited)
    with pytest.raises(BundleError, match=f"{name} does not match its recorded SHA-256"):
        _import(edited, tmp_path)
    assert not (tmp_path / "store" / "imported").exists() or not any((tmp_path / "store" / "imported").iterdir())


def _set(meta: dict, path: tuple, value):
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


# Every field that changes a risk, a reason, an out-of-distribution flag or a displayed number.
EDITS = {
    "calibration": (("calibration",), {"method": "platt", "a": 1, "b": 3}),
    "calibration.b": (("calibration", "b"), 3.0),
    "metrics.roc_auc": (("metrics", "roc_auc"), 0.997),
    "background": (("background", 0, 0), 99.0),
    "background_weights": (("background_weights",), [0.5]),
    "schema.label": (("schema", "features", 0, "label"), "Weight"),
    "schema.max": (("schema", "features", 0, "max"), 10.0),
    "config.hidden": (("config", "hidden"), [10, 6]),
    "config.activation": (("config", "activation"), "tanh"),
    "input_reference.d2_99": (("input_reference", "d2_99"), 1e9),
    "history": (("history", "val_loss", 0), 0.0),
    "best_epoch": (("best_epoch",), 1),
    "prevalence": (("prevalence",), 0.9),
    "bands": (("bands",), {"low": 0.5, "high": 0.9}),
    "n_train": (("n_train",), 10_000),
    "members": (("members",), ["model.keras"]),
    "stopped_by_user": (("stopped_by_user",), True),
    "extra.cohort.name": (("extra", "cohort", "name"), "Mayo"),
    "extra.sizes": (("extra", "sizes", "test"), 1000),
    "name": (("name",), "another"),
    "data_fingerprint": (("data_fingerprint",), "0" * 64),
    "files": (("files", "model.keras"), "0" * 64),
}


@pytest.mark.parametrize("field", list(EDITS))
def test_an_edit_of_any_metadata_field_is_refused_in_core_and_zip_import(bundle, tmp_path, field):
    edited = _copy(bundle, tmp_path, "edited")
    meta = read_meta(edited)
    path, value = EDITS[field]
    _set(meta, path, value)
    (edited / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="metadata.json does not match its recorded SHA-256"):
        load_bundle(edited)
    with pytest.raises(BundleError, match="metadata.json does not match its recorded SHA-256"):
        _import(edited, tmp_path)


def test_removing_the_metadata_hash_or_claiming_an_old_version_is_not_a_way_round(bundle, tmp_path):
    edited = _copy(bundle, tmp_path, "edited")
    meta = read_meta(edited)
    del meta["metadata_sha256"]
    (edited / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="does not match its recorded SHA-256"):
        load_bundle(edited)
    # An old version number loads (old bundles must), but is marked unverified for the pages to say so.
    meta["version"] = 2
    (edited / "metadata.json").write_text(json.dumps(meta))
    assert verify_bundle(edited).legacy_unverified


def test_a_file_not_in_the_manifest_is_refused_by_name(bundle, tmp_path):
    extra = _copy(bundle, tmp_path, "extra")
    (extra / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match="notes.txt is not in the bundle's manifest"):
        load_bundle(extra)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for p in sorted(bundle.iterdir()):
            zf.write(p, p.name)
        zf.writestr("payload.py", "print('hi')")
    (tmp_path / "store").mkdir()
    with pytest.raises(BundleError, match="payload.py is not in the bundle's manifest"):
        import_bundle_zip(buffer.getvalue(), "x", root=tmp_path / "store")
    assert not any((tmp_path / "store").glob("*/v*"))


def test_an_intact_zip_imports(bundle, tmp_path):
    path = _import(bundle, tmp_path)
    assert path.name == "v1" and load_bundle(path).metadata_.name == "integrity"


def test_a_version_2_bundle_still_loads_and_is_marked_unverified(bundle, tmp_path):
    old = _copy(bundle, tmp_path, "old")
    meta = read_meta(old)
    for key in ("metadata_sha256", "background_weights", "disclosure", "members_requested", "epochs_run"):
        meta.pop(key, None)
    meta["version"] = 2
    meta["background"] = meta["background"][:5]
    (old / "metadata.json").write_text(json.dumps(meta))
    model = load_bundle(old)
    assert model.metadata_.legacy_unverified and model.background_.shape[0] == 5
    assert model.background_weights_ is None
    raw = model.background_[:3]
    np.testing.assert_allclose(model.predict_risk_raw(raw), load_bundle(bundle).predict_risk_raw(raw))


def test_signed_bundles_need_the_installation_key(bundle, tmp_path, monkeypatch):
    from core.model import load_bundle as load
    monkeypatch.setenv("HEART_RISK_SIGNING_KEY", "site-secret")
    with pytest.raises(BundleError, match="not signed with this installation's signing key"):
        load(bundle)  # saved without a key
    model = load_bundle_unsigned(bundle, monkeypatch)
    monkeypatch.setenv("HEART_RISK_SIGNING_KEY", "site-secret")
    signed = save_bundle(model, tmp_path / "signed", meta=model.metadata_)
    assert read_meta(signed)["signature"]
    assert load(signed).metadata_.name == "integrity"
    forged = _copy(signed, tmp_path, "forged")
    meta = read_meta(forged)
    meta["calibration"]["b"] = 3.0
    monkeypatch.delenv("HEART_RISK_SIGNING_KEY")
    write_meta(forged, meta)  # hash recomputed, but the forger has no key
    monkeypatch.setenv("HEART_RISK_SIGNING_KEY", "site-secret")
    with pytest.raises(BundleError, match="not signed"):
        load(forged)
    monkeypatch.setenv("HEART_RISK_SIGNING_KEY", "another-site")
    with pytest.raises(BundleError, match="not signed"):
        load(signed)


def load_bundle_unsigned(path, monkeypatch):
    monkeypatch.delenv("HEART_RISK_SIGNING_KEY", raising=False)
    return load_bundle(path)


def test_the_cli_refuses_an_edited_bundle_in_one_line_naming_the_file(bundle, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    edited = _copy(bundle, tmp_path, "edited")
    meta = read_meta(edited)
    meta["calibration"]["b"] = 3.0  # the edit of issue 18: row 1 went from 0.057 to 0.547
    (edited / "metadata.json").write_text(json.dumps(meta))
    patients = tmp_path / "patients.csv"
    demo_cohort(n=5, seed=2).to_csv(patients, index=False)
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-m", "core", "predict", "--model", str(edited), "--input", str(patients),
                           "--output", str(tmp_path / "out.csv")], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "metadata.json does not match its recorded SHA-256" in lines[0]
    assert not (tmp_path / "out.csv").exists()
