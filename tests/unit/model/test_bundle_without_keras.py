"""load_bundle(keras=False): a batch worker reads the members' weights as arrays (h5py) instead of loading
them through Keras, so it never imports TensorFlow. Same weights to the bit, so the same risks and SHAP
values; the same checks (hashes, layer allowlist, sizes) refuse the same bundles."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.data import DEMO_NAME, cleveland_schema, cohort_from_frame, demo_cohort
from core.errors import BundleError
from core.evaluate import model_splits, recalibrate
from core.model import TrainConfig, load_bundle, save_bundle
from core.workflow import score_table, train_on_cohort
from bundle_edit import read_meta, write_meta

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An ensemble of 2 with dropout, two hidden layers and a Platt calibration folded into the last layer:
    every shape of model the numpy reader must get right."""
    cohort = cohort_from_frame(demo_cohort(), cleveland_schema(), name=DEMO_NAME, synthetic=True)
    config = TrainConfig(epochs=4, members=2, dropout=0.1, hidden=(8, 4))
    result = train_on_cohort(cohort, config)
    model = recalibrate(result.model, cohort, model_splits(result.model, cohort, cohort.fingerprint), method="platt")
    return save_bundle(model, tmp_path_factory.mktemp("nokeras") / "bundle", result.metrics, cohort.fingerprint,
                       "without-keras")


def test_the_weights_are_keras_own_to_the_bit_and_so_are_risk_and_shap(bundle):
    with_keras, without = load_bundle(bundle), load_bundle(bundle, keras=False)
    assert without.n_members_ == 2 and without.calibration_.method == "platt"
    for a, b in zip(with_keras.member_weights_, without.member_weights_, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype == np.float32 and x.shape == y.shape and np.array_equal(x, y)
    people = demo_cohort(n=150, seed=11)
    a = score_table(with_keras, people, with_reasons=True, with_shap=True)
    b = score_table(without, people, with_reasons=True, with_shap=True)
    assert list(a.columns) == list(b.columns)
    numbers = a.select_dtypes("number").columns
    assert np.array_equal(a[numbers].to_numpy(float), b[numbers].to_numpy(float), equal_nan=True)
    assert a.drop(columns=numbers).astype(str).equals(b.drop(columns=numbers).astype(str))
    # The Keras model is still there when asked for, built from the same weights.
    assert np.array_equal(without.keras_model_.get_weights()[0], with_keras.keras_model_.get_weights()[0])


def test_scoring_with_reasons_without_keras_never_imports_tensorflow(bundle):
    code = ("import sys; from core.model import load_bundle; from core.data import demo_cohort; "
            "from core.workflow import score_table; "
            f"m = load_bundle({str(bundle)!r}, keras=False); "
            "t = score_table(m, demo_cohort(n=20, seed=1), with_reasons=True, top=3); "
            "print(len(t), t['reason_1'].notna().all(), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["20", "True", "False", "False"]


def _copy(bundle, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(bundle, target)
    return target


def _rewrite_weights(keras_file: Path, edit) -> None:
    """Rewrite model.weights.h5 inside a .keras zip through ``edit(h5 file)``; the other entries as they were."""
    with zipfile.ZipFile(keras_file) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    buffer = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        edit(h5)
    entries["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(keras_file, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _weights_edited(bundle, tmp_path, name: str, member: str, edit):
    """A copy of the bundle whose ``member`` has its weights rewritten by ``edit`` and every hash recomputed,
    so that only the weights check can refuse it."""
    bad = _copy(bundle, tmp_path, name)
    _rewrite_weights(bad / member, edit)
    write_meta(bad, read_meta(bad), rehash_files=True)
    return bad


def test_a_one_bit_edit_is_refused_before_any_weight_is_read(bundle, tmp_path):
    edited = _copy(bundle, tmp_path, "edited")
    data = bytearray((edited / "member_2.keras").read_bytes())
    data[len(data) // 2] ^= 0x01
    (edited / "member_2.keras").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="member_2.keras does not match its recorded SHA-256"):
        load_bundle(edited, keras=False)


def test_weights_of_the_wrong_shape_are_refused_even_with_consistent_hashes(bundle, tmp_path):
    def wider_kernel(h5):
        group = next(g["vars"] for g in h5["layers"].values() if g["vars"].attrs.get("name") == "hidden_1")
        kernel = group["0"][()]
        del group["0"]
        group["0"] = np.vstack([kernel, kernel[:1]])

    bad = _weights_edited(bundle, tmp_path, "shape", "model.keras", wider_kernel)
    with pytest.raises(BundleError, match="weights in model.keras do not match"):
        load_bundle(bad, keras=False)


def test_missing_weights_are_refused_even_with_consistent_hashes(bundle, tmp_path):
    def drop_output_layer(h5):
        name = next(k for k, g in h5["layers"].items() if g["vars"].attrs.get("name") == "risk")
        del h5["layers"][name]

    bad = _weights_edited(bundle, tmp_path, "missing", "member_2.keras", drop_output_layer)
    with pytest.raises(BundleError, match="weights in member_2.keras do not match its layers"):
        load_bundle(bad, keras=False)


def test_a_layer_that_runs_code_is_refused_without_keras_too(bundle, tmp_path):
    """The architecture is checked from config.json as before: a Lambda layer is refused by name."""
    bad = _copy(bundle, tmp_path, "lambda")
    with zipfile.ZipFile(bad / "model.keras") as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(entries["config.json"])
    config["config"]["layers"][1]["class_name"] = "Lambda"
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(bad / "model.keras", "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    write_meta(bad, read_meta(bad), rehash_files=True)
    with pytest.raises(BundleError, match="layer class 'Lambda' is not allowed"):
        load_bundle(bad, keras=False)


def test_another_architecture_than_the_configuration_says_is_refused(bundle, tmp_path):
    bad = _copy(bundle, tmp_path, "arch")
    meta = read_meta(bad)
    meta["config"]["hidden"] = [8]
    write_meta(bad, meta)
    with pytest.raises(BundleError, match="does not match its preprocessing and configuration"):
        load_bundle(bad, keras=False)
