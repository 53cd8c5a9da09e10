"""The Keras MLP: training, numpy prediction, reproducibility, callbacks and bundles."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from core.metrics import discrimination as model_module
from core.model import trainer as trainer_module
from core.errors import BundleError, CohortError
from core.model import RiskModel, TrainConfig, load_bundle, save_bundle, split
from core.data import CLEVELAND_COLUMNS, cleveland_schema, infer_schema
from bundle_edit import read_meta, write_meta

FAST = TrainConfig(epochs=15, patience=5)


@pytest.fixture(scope="module")
def cleveland(cleveland_path):
    df = pd.read_csv(cleveland_path, header=None, names=CLEVELAND_COLUMNS, na_values="?")
    schema = cleveland_schema()
    return df, schema, schema.outcome(df).to_numpy()


@pytest.fixture(scope="module")
def splits(cleveland):
    _, _, y = cleveland
    return split(y, FAST)


@pytest.fixture(scope="module")
def fitted(cleveland, splits):
    df, schema, y = cleveland
    train, val, _ = splits
    calls = []
    model = RiskModel(schema, FAST).fit(df.iloc[train], y[train], df.iloc[val], y[val],
                                        progress=lambda epoch, metrics: calls.append((epoch, metrics)))
    return model, calls


@pytest.fixture(scope="module")
def bundle_dir(fitted, tmp_path_factory):
    model, _ = fitted
    path = tmp_path_factory.mktemp("bundles") / "cleveland-mlp"
    save_bundle(model, path, metrics={"roc_auc": 0.9, "brier": float("nan")}, data_fingerprint="abc123",
                name="Cleveland MLP", extra={"note": "test"})
    return path


def _copy_bundle(src, dst):
    dst.mkdir()
    for name in os.listdir(src):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


# ---- messages and imports (issue 18.8) -------------------------------------------------------------
def test_a_refusal_names_the_model_and_version_never_the_server_path(bundle_dir, tmp_path):
    (tmp_path / "store" / "heart-mlp").mkdir(parents=True)
    bad = _copy_bundle(bundle_dir, tmp_path / "store" / "heart-mlp" / "v3")
    (bad / "preprocess.json").write_text((bad / "preprocess.json").read_text() + " ")
    with pytest.raises(BundleError) as refused:
        load_bundle(bad)
    assert "heart-mlp (v3)" in str(refused.value) and str(tmp_path) not in str(refused.value)
    (bad / "metadata.json").unlink()
    with pytest.raises(BundleError) as refused:
        load_bundle(bad)
    assert "heart-mlp (v3)" in str(refused.value) and str(tmp_path) not in str(refused.value)


def test_a_zip_with_a_file_the_bundle_does_not_list_is_refused_and_named(bundle_dir, tmp_path):
    import io
    import zipfile

    from core.model import bundle_to_zip, import_bundle_zip, list_models
    buffer = io.BytesIO(bundle_to_zip(bundle_dir))
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("notes.txt", "not part of the model")
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(BundleError, match="notes.txt") as refused:
        import_bundle_zip(buffer.getvalue(), "imported", root=store)
    assert str(tmp_path) not in str(refused.value) and "/tmp" not in str(refused.value)
    assert list_models(store) == []  # nothing copied into the store
    assert import_bundle_zip(bundle_to_zip(bundle_dir), "imported", root=store).name == "v1"  # the bundle alone


# ---- splitting ------------------------------------------------------------------------------------
def test_split_is_stratified_disjoint_and_seeded(cleveland):
    _, _, y = cleveland
    train, val, test = split(y, TrainConfig())
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(y)))
    assert len(test) == pytest.approx(0.15 * len(y), abs=1)
    assert len(val) == pytest.approx(0.15 * len(y), abs=1)
    for part in (train, val, test):
        assert y[part].mean() == pytest.approx(y.mean(), abs=0.03)
    again = split(y, TrainConfig())
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = split(y, TrainConfig(seed=7))
    assert not np.array_equal(test, other[2])


def test_training_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(float)
    score = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties across classes
    assert model_module.rank_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(model_module.rank_auc(np.zeros(5), np.arange(5.0)))


def test_split_refuses_a_class_too_small():
    with pytest.raises(CohortError):
        split(np.array([0.0] * 20 + [1.0]))


# ---- training and prediction ---------------------------------------------------------------------
def test_predictions_are_risks(fitted, cleveland):
    model, _ = fitted
    df, _, _ = cleveland
    risk = model.predict_risk(df)
    assert risk.shape == (len(df),)
    assert np.all((risk >= 0) & (risk <= 1))
    proba = model.predict_proba(df.iloc[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], risk[:5])
    # Even a briefly trained model separates diseased from healthy patients.
    assert risk[cleveland[2] == 1].mean() > risk[cleveland[2] == 0].mean() + 0.2


def test_numpy_network_matches_keras(fitted, cleveland):
    model, _ = fitted
    df, _, _ = cleveland
    X = model.preprocessor_.transform(df)
    keras_risk = np.asarray(model.keras_model_(X, training=False))[:, 0]
    np.testing.assert_allclose(model.predict_risk(df), keras_risk, atol=1e-5)
    assert len(model.networks_) == 1
    raw = model.preprocessor_.encode(df)
    np.testing.assert_array_equal(model.predict_risk_raw(raw), model.predict_risk(df))


def test_same_seed_same_model(cleveland, splits, fitted):
    df, schema, y = cleveland
    train, val, _ = splits
    again = RiskModel(schema, FAST).fit(df.iloc[train], y[train], df.iloc[val], y[val])
    np.testing.assert_array_equal(again.predict_risk(df), fitted[0].predict_risk(df))
    other = RiskModel(schema, FAST.model_copy(update={"seed": 3})).fit(df.iloc[train], y[train],
                                                                       df.iloc[val], y[val])
    assert np.abs(other.predict_risk(df) - fitted[0].predict_risk(df)).max() > 1e-4


def test_preprocessing_fitted_on_training_rows_only(fitted, cleveland, splits):
    model, _ = fitted
    df, _, _ = cleveland
    train, _, _ = splits
    j = model.preprocessor_.feature_names.index("age")
    assert model.preprocessor_.center_[j] == pytest.approx(df["age"].iloc[train].mean())
    assert model.preprocessor_.center_[j] != pytest.approx(df["age"].mean(), abs=1e-9)
    assert model.n_train_ == len(train)
    # The SHAP background is raw training rows, not rows from elsewhere.
    train_raw = model.preprocessor_.encode(df.iloc[train])
    rows = {tuple(np.nan_to_num(r, nan=-999)) for r in train_raw}
    assert all(tuple(np.nan_to_num(r, nan=-999)) in rows for r in model.background_)
    assert len(model.background_) == min(200, len(train))


def test_progress_called_once_per_epoch_with_metrics(fitted):
    model, calls = fitted
    assert [epoch for epoch, _ in calls] == list(range(1, model.epochs_run_ + 1))
    for _, metrics in calls:
        assert set(metrics) == {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"}
    assert {k: len(v) for k, v in model.history_.items()} == {k: model.epochs_run_ for k in calls[0][1]}
    assert calls[-1][1]["val_loss"] == model.history_["val_loss"][-1]


def test_early_stopping_keeps_the_best_epoch(fitted, cleveland, splits):
    model, _ = fitted
    df, _, y = cleveland
    _, val, _ = splits
    val_loss = np.asarray(model.history_["val_loss"])
    assert model.best_epoch_ == int(np.argmin(val_loss)) + 1
    # The kept weights are those of the best epoch: their validation loss is the recorded minimum.
    p = np.clip(model.predict_risk(df.iloc[val]), 1e-7, 1 - 1e-7)
    bce = -np.mean(y[val] * np.log(p) + (1 - y[val]) * np.log(1 - p))
    assert bce == pytest.approx(val_loss.min(), rel=1e-4)


def test_should_stop_ends_training(cleveland, splits):
    df, schema, y = cleveland
    train, val, _ = splits
    epochs = []
    model = RiskModel(schema, TrainConfig(epochs=50, early_stopping=False)).fit(
        df.iloc[train], y[train], df.iloc[val], y[val],
        progress=lambda e, m: epochs.append(e), should_stop=lambda: len(epochs) >= 3)
    assert epochs == [1, 2, 3]
    assert model.stopped_by_user_ and model.epochs_run_ == 3
    assert np.all(np.isfinite(model.predict_risk(df.iloc[:10])))


def test_fit_without_validation_holds_out_part_of_training(cleveland, splits):
    df, schema, y = cleveland
    train, _, _ = splits
    model = RiskModel(schema, FAST).fit(df.iloc[train], y[train])
    assert model.n_val_ == pytest.approx(0.15 * len(train), abs=1)
    assert model.n_train_ + model.n_val_ == len(train)
    assert "val_loss" in model.history_


def test_missing_outcome_is_refused(cleveland):
    df, schema, y = cleveland
    y = y.copy()
    y[[4, 9]] = np.nan
    with pytest.raises(CohortError, match="rows"):
        RiskModel(schema, FAST).fit(df, y)


def test_xla_path_trains_the_same_model(cleveland, splits, fitted, monkeypatch):
    """Large cohorts train through XLA; forcing it on a small one must give (nearly) the same network."""
    df, schema, y = cleveland
    train, val, _ = splits
    monkeypatch.setattr(trainer_module, "XLA_MIN_STEPS", 0)
    xla = RiskModel(schema, FAST).fit(df.iloc[train], y[train], df.iloc[val], y[val])
    np.testing.assert_allclose(xla.predict_risk(df), fitted[0].predict_risk(df), atol=1e-3)


def test_synthetic_cohort_with_text_columns_trains():
    rng = np.random.default_rng(0)
    n = 240
    smoker = rng.choice(["Yes", "No"], size=n)
    group = rng.choice(["A", "B", "C"], size=n)
    dose = rng.normal(50, 10, size=n)
    logit = 1.5 * (smoker == "Yes") + 0.08 * (dose - 50) - 1.0 * (group == "C") - 0.3
    outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "event", "none")
    df = pd.DataFrame({"dose": dose, "smoker": smoker, "group": group, "outcome": outcome})
    df.loc[[3, 17], "dose"] = np.nan
    schema = infer_schema(df, target="outcome", positive_rule="== event")
    assert schema["smoker"].kind == "binary"
    y = schema.outcome(df).to_numpy()
    model = RiskModel(schema, TrainConfig(epochs=40, patience=10)).fit(df, y)
    risk = model.predict_risk(df)
    assert np.all(np.isfinite(risk))
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(y, risk) > 0.7
    assert model.predict_risk(df.assign(smoker="Yes")).mean() > model.predict_risk(df.assign(smoker="No")).mean()


# ---- bundles --------------------------------------------------------------------------------------
def test_bundle_round_trip_gives_identical_predictions(fitted, bundle_dir, cleveland):
    model, _ = fitted
    df, _, _ = cleveland
    loaded = load_bundle(bundle_dir)
    assert np.max(np.abs(loaded.predict_risk(df) - model.predict_risk(df))) == 0
    # The raw background rows never leave: the bundle holds weighted cluster centres of them.
    assert len(loaded.background_) < len(model.background_) and loaded.background_weights_.sum() == pytest.approx(1)
    assert loaded.background_weights_.min() * len(model.background_) >= 5 - 1e-9
    assert loaded.best_epoch_ == model.best_epoch_
    assert loaded.history_["val_loss"] == pytest.approx(model.history_["val_loss"])
    assert loaded.config == model.config
    assert loaded.schema.feature_names == model.schema.feature_names
    meta = loaded.metadata_
    assert meta.format == "heart-risk-bundle" and meta.name == "Cleveland MLP"
    assert meta.data_fingerprint == "abc123" and meta.metrics["brier"] is None
    assert set(meta.files) == {"model.keras", "preprocess.json"}
    assert meta.extra.model_extra == {"note": "test"} and "keras" in meta.libraries


def test_save_replaces_a_bundle_atomically(fitted, tmp_path):
    model, _ = fitted
    target = tmp_path / "m"
    save_bundle(model, target, {}, "fp1", "first")
    save_bundle(model, target, {}, "fp2", "second")
    assert json.loads((target / "metadata.json").read_text())["name"] == "second"
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temp or old directory left behind
    foreign = tmp_path / "not-a-bundle"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not a model bundle"):
        save_bundle(model, foreign, {}, "fp", "x")
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_tampered_bundle_is_refused(bundle_dir, tmp_path):
    bad = _copy_bundle(bundle_dir, tmp_path / "tampered")
    data = json.loads((bad / "preprocess.json").read_text())
    data["preprocessor"]["center"][0] += 1.0
    (bad / "preprocess.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(bad)


def test_directory_without_our_metadata_is_refused(bundle_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="metadata.json is missing"):
        load_bundle(empty)
    foreign = _copy_bundle(bundle_dir, tmp_path / "foreign")
    meta = json.loads((foreign / "metadata.json").read_text())
    meta["format"] = "something-else"
    (foreign / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format marker"):
        load_bundle(foreign)
    missing = _copy_bundle(bundle_dir, tmp_path / "missing")
    (missing / "model.keras").unlink()
    with pytest.raises(BundleError, match="model.keras is missing"):
        load_bundle(missing)
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "does-not-exist")


def test_lambda_layer_model_is_refused(bundle_dir, tmp_path):
    """A bundle whose hashes are consistent but whose model holds a Lambda layer (code) is refused."""
    import keras

    bad = _copy_bundle(bundle_dir, tmp_path / "lambda")
    n_inputs = load_bundle(bundle_dir).preprocessor_.n_outputs_
    inputs = keras.Input(shape=(n_inputs,))
    hidden = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
    keras.Model(inputs, outputs).save(bad / "model.keras")
    write_meta(bad, read_meta(bad), rehash_files=True)
    with pytest.raises(BundleError, match="Lambda"):
        load_bundle(bad)
