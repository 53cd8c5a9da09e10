"""The Keras MLP that scores heart-disease risk: configuration, training, prediction and bundles.

Architecture (the source document's): inputs -> Dense 10 (ReLU) -> Dense 5 (ReLU) -> Dense 1 (sigmoid),
Adam, binary cross-entropy. Training does not use ``model.fit``: its per-epoch machinery (callbacks,
validation pass, metric objects) costs ~100 ms an epoch, far more than the ~200 rows themselves. Instead
one ``tf.function`` runs a whole epoch in-graph (a ``tf.range`` loop over minibatches of a shuffled
index), and the per-epoch metrics are computed in numpy from the current weights. The traced function,
its model and optimizer are cached per architecture, so cross-validation traces once, not 25 times: each
new fit re-initialises the weights from its seed and zeroes the optimizer state.

Prediction never goes through Keras: the weights are copied into :class:`core.network.Network` (numpy),
which reproduces ``keras_model_(x, training=False)`` to float precision.

A bundle is one directory (``model.keras``, ``preprocess.json``, ``metadata.json``), written atomically,
hashed, and loaded with Keras safe mode plus an allowlist of layer classes. Nothing is pickled.

Uncertainty ensemble (``TrainConfig.members`` > 1, or :func:`add_members` later): member 1 is the model
above; members 2..k share its preprocessing and validation split but train on a bootstrap resample of the
training split with their own weight seed. The risk is the members' mean (SHAP explains that mean:
core.explain takes the list of networks), and their spread is the per-patient interval
(:meth:`RiskModel.predict_interval_raw`). Extra members are cheap: they reuse the architecture's traced
trainer (Cleveland: ~0.3 s each after the first fit's ~0.9 s). Each member is its own ``.keras`` file in
the bundle, hashed and loaded under the same safe mode and layer allowlist.

Recalibration (core.calibration) is saved in ``metadata.json`` as numbers; a Platt map is folded into
every member's last layer, so ``networks_`` are the calibrated networks (``base_networks_`` the trained
ones) and explanations stay exact and additive on the calibrated risk. Bundles with several members or a
calibration are written as version 2 (an older reader refuses them rather than silently dropping them);
version-1 bundles load as before.
"""
from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.calibration import Calibration
from core.errors import BundleError, CohortError, CoreError
from core.network import Network
from core.preprocess import Preprocessor
from core.schema import Schema, format_rows

BUNDLE_FORMAT = "heart-risk-bundle"
BUNDLE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
BACKGROUND_ROWS = 200
_METRIC_ROWS = 50_000
_ALLOWED_LAYERS = {"InputLayer", "Dense", "Dropout"}
_MODEL_FILE, _PREPROCESS_FILE, _METADATA_FILE = "model.keras", "preprocess.json", "metadata.json"


class TrainConfig(BaseModel):
    """How the MLP is built and trained.

    The architecture, optimizer, loss, epochs and batch size are the source document's. The other defaults
    were chosen by measurement (bench/cv_cleveland.py: 5x5 repeated stratified CV on the 303 Cleveland
    patients, each setting run with 3 weight seeds; AUC / accuracy / Brier / pooled calibration slope):
    - the source recipe (lr 0.001, no L2, no early stopping, 100 epochs): 0.901 / 0.830 / 0.127 / slope 0.81
      — overfits: risks too extreme, and below the quality bar.
    - l2 0.001-0.01 with early stopping: AUC 0.904-0.906, Brier 0.124-0.126 (not enough shrinkage).
    - l2 0.03 on the hidden kernels, lr 0.01, patience 20 (the default): 0.912 / 0.844 / 0.120 / 1.09;
      the same on CV seeds 1 and 2: 0.912 / 0.849 / 0.117 and 0.908 / 0.847 / 0.119.
    - l2 0.03 on every kernel, output included: AUC 0.915 but slope 1.30 (risks squeezed towards the
      middle); leaving the output layer unpenalised lets it set the confidence scale: better calibrated,
      equal Brier. l2 0.02: AUC 0.907 (one seed 0.904); 0.05: 0.914, slope 1.13; 0.1: training collapses.
    - lr 0.001 / 0.003: same AUC, ~2x the epochs; lr 0.02: worse. patience 10: same AUC, shorter fits,
      noisier; 30-50: no gain. dropout 0.1: no gain. batch 16 / 64: no gain. ``ca`` one-hot instead of
      ordinal: AUC 0.904 vs 0.906 (kept ordinal, as the schema says).
    """
    model_config = ConfigDict(extra="forbid")

    hidden: tuple[int, ...] = (10, 5)
    activation: Literal["relu", "tanh", "sigmoid"] = "relu"
    optimizer: Literal["adam", "sgd"] = "adam"
    loss: Literal["bce", "mse"] = "bce"  # mse: the source document's alternative
    learning_rate: float = Field(0.01, gt=0, le=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    l2: float = Field(0.03, ge=0)  # on the hidden layers' kernels (see above)
    epochs: int = Field(100, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1)
    early_stopping: bool = True
    patience: int = Field(20, ge=1)
    seed: int = Field(42, ge=0, lt=2**31)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    # Networks in the uncertainty ensemble (1 = a single network, the cross-validated default).
    members: int = Field(1, ge=1, le=20)

    @model_validator(mode="after")
    def _check(self):
        if any(units < 1 for units in self.hidden):
            raise ValueError("every hidden layer needs at least one unit")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation + test fractions leave too few patients to train on")
        return self


# ---- splitting -------------------------------------------------------------------------------------
def _as_outcome(y, n_rows: int | None = None) -> np.ndarray:
    y = np.asarray(pd.Series(y).to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if n_rows is not None and len(y) != n_rows:
        raise CohortError(f"the outcome has {len(y)} values but the table has {n_rows} rows")
    missing = np.flatnonzero(np.isnan(y))
    if missing.size:
        raise CohortError(f"the outcome is missing in {missing.size} rows ({format_rows(missing)}); "
                          "drop or complete them before training")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise CohortError(f"the outcome must be 0 or 1; rows {format_rows(bad)} are not")
    return y


def _stratified(idx: np.ndarray, y: np.ndarray, fraction: float, seed: int, what: str):
    from sklearn.model_selection import train_test_split
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() < 2:
        raise CohortError(f"cannot split off a {what} set: one outcome class has {int(counts.min())} patients "
                          "(at least 2 of each are needed)")
    try:
        keep, held = train_test_split(idx, test_size=fraction, stratify=y, random_state=seed)
    except ValueError as exc:  # too few patients for the requested fraction
        raise CohortError(f"cannot split off a {what} set of {fraction:.0%}: {exc}") from None
    return np.sort(keep), np.sort(held)


def split(y, config: TrainConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded train / validation / test positions (70/15/15 by default)."""
    config = config or TrainConfig()
    y = _as_outcome(y)
    idx = np.arange(len(y))
    rest, test = _stratified(idx, y, config.test_fraction, config.seed, "test")
    # The validation share of what is left, so that it is val_fraction of all patients.
    train, val = _stratified(rest, y[rest], config.val_fraction / (1 - config.test_fraction),
                             config.seed, "validation")
    return train, val, test


# ---- numpy metrics used during training ------------------------------------------------------------
def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get their average rank): the same number as sklearn,
    in plain numpy (this runs twice an epoch)."""
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse.ravel()]
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _epoch_metrics(net: Network, X: np.ndarray, y: np.ndarray, loss: str) -> tuple[float, float, float]:
    z = net.logit(X)
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    if loss == "bce":
        value = float(np.mean(np.logaddexp(0.0, z) - y * z))  # BCE from logits, as Keras computes it
    else:
        value = float(np.mean((y - p) ** 2))
    return value, float(np.mean((p >= 0.5) == (y == 1))), _auc(y, z)


# ---- the cached trainer -----------------------------------------------------------------------------
def _build_keras_model(n_inputs: int, config: TrainConfig):
    import keras
    inputs = keras.Input(shape=(n_inputs,), name="inputs")
    x = inputs
    for i, units in enumerate(config.hidden):
        x = keras.layers.Dense(units, activation=config.activation, name=f"hidden_{i + 1}",
                               kernel_regularizer=keras.regularizers.L2(config.l2) if config.l2 > 0 else None)(x)
        if config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, seed=config.seed, name=f"dropout_{i + 1}")(x)
    # The output layer is not penalised: it sets the scale of the logit, i.e. how confident risks are.
    # With no hidden layer (hidden=()) this is plain, unpenalised logistic regression.
    outputs = keras.layers.Dense(1, activation="sigmoid", name="risk")(x)
    return keras.Model(inputs, outputs, name="heart_risk_mlp")


def _initial_weights(n_inputs: int, config: TrainConfig, seed: int) -> list[np.ndarray]:
    """Glorot-uniform kernels and zero biases (Keras' Dense defaults), drawn from ``seed`` in numpy so a
    re-used model restarts from exactly the weights a fresh model with that seed would get."""
    rng = np.random.default_rng(seed)
    sizes = [n_inputs, *config.hidden, 1]
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32))
        weights.append(np.zeros(fan_out, dtype=np.float32))
    return weights


class _Trainer:
    """One Keras model + optimizer + traced epoch function, re-used by every fit of one architecture."""

    def __init__(self, n_inputs: int, config: TrainConfig):
        import keras
        import tensorflow as tf

        self.lock = threading.Lock()  # Streamlit sessions run in threads; one fit at a time per trainer
        self.model = _build_keras_model(n_inputs, config)
        self.dropouts = [layer for layer in self.model.layers if isinstance(layer, keras.layers.Dropout)]
        if config.optimizer == "adam":
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        else:
            self.optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate)
        variables = self.model.trainable_variables
        self.optimizer.build(variables)  # create slot variables outside the traced function
        model, optimizer, use_bce = self.model, self.optimizer, config.loss == "bce"

        batch = int(config.batch_size)
        self.batch_size = batch
        self.shapes = [tuple(v.shape) for v in variables]

        signature = [tf.TensorSpec([None, n_inputs], tf.float32), tf.TensorSpec([None], tf.float32),
                     tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32),
                     tf.TensorSpec([], tf.int32)]

        # Every minibatch has exactly ``batch`` rows (static shapes, which XLA needs): the epoch's order is
        # padded and padded rows weigh 0 — the same gradient as Keras' short last batch. autograph is
        # off (an explicit while_loop): converting Keras' source costs ~0.4 s of the first trace.
        def run_epoch(X, y, order, mask, n_batches):
            def step(i, total):
                rows = tf.slice(order, [i * batch], [batch])
                weight = tf.slice(mask, [i * batch], [batch])
                xb = tf.gather(X, rows)
                yb = tf.gather(y, rows)[:, None]
                with tf.GradientTape() as tape:
                    p = model(xb, training=True)
                    if use_bce:
                        per_row = keras.losses.binary_crossentropy(yb, p)
                    else:
                        per_row = tf.square(yb - p)[:, 0]
                    data_loss = tf.reduce_sum(weight * per_row) / tf.reduce_sum(weight)
                    penalties = model.losses
                    loss = data_loss + tf.add_n(penalties) if penalties else data_loss
                grads = tape.gradient(loss, variables)
                optimizer.apply(grads, variables)
                return i + 1, total + data_loss * tf.reduce_sum(weight)

            _, total = tf.while_loop(lambda i, _: i < n_batches, step, [tf.constant(0), tf.constant(0.0)])
            flat = tf.concat([tf.reshape(v, [-1]) for v in variables], axis=0)
            return total / tf.reduce_sum(mask), flat

        # Two compilations of the same epoch, each traced on first use. The plain graph traces in ~1 s but
        # costs ~0.25 ms per minibatch; XLA compiles in ~2 s and then runs a minibatch in ~0.06 ms. Small
        # cohorts (Cleveland: 7 minibatches an epoch) use the graph, large ones XLA (see _use_xla).
        self.run_graph = tf.function(run_epoch, input_signature=signature, autograph=False)
        self.run_xla = tf.function(run_epoch, input_signature=signature, autograph=False, jit_compile=True)

    def reset(self, weights: list[np.ndarray], learning_rate: float, seed: int) -> None:
        for var, value in zip(self.model.trainable_variables, weights):
            var.assign(value)
        for var in self.optimizer.variables:
            if var is self.optimizer._learning_rate:
                var.assign(learning_rate)
            else:
                var.assign(np.zeros(var.shape, dtype=var.dtype))
        for layer in self.dropouts:
            layer.seed_generator.state.assign(np.array([seed, 0], dtype=layer.seed_generator.state.dtype))

    def weights(self) -> list[np.ndarray]:
        return [np.array(v.numpy()) for v in self.model.trainable_variables]

    def unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(flat[start:start + size].reshape(shape).copy())
            start += size
        return out

    def padded_rows(self, n: int) -> int:
        """Rows after padding: a multiple of 8 minibatches, so nearby sizes share a compiled program."""
        block = self.batch_size * 8
        return -(-n // block) * block


_TRAINERS: "collections.OrderedDict[tuple, _Trainer]" = collections.OrderedDict()
_TRAINERS_LOCK = threading.Lock()
_MAX_TRAINERS = 8


def _trainer(n_inputs: int, config: TrainConfig) -> _Trainer:
    # Everything baked into the graph is in the key; learning rate and seed are reset per fit.
    key = (n_inputs, tuple(config.hidden), config.activation, config.optimizer, config.loss,
           float(config.dropout), float(config.l2), int(config.batch_size))
    with _TRAINERS_LOCK:
        trainer = _TRAINERS.get(key)
        if trainer is None:
            trainer = _Trainer(n_inputs, config)
            _TRAINERS[key] = trainer
            while len(_TRAINERS) > _MAX_TRAINERS:
                _TRAINERS.popitem(last=False)
        else:
            _TRAINERS.move_to_end(key)
        return trainer


_XLA_MIN_STEPS = 20_000


def _use_xla(n_rows: int, config: TrainConfig) -> bool:
    """XLA pays off when a fit runs enough minibatch steps to repay its ~2 s compile."""
    return -(-n_rows // config.batch_size) * config.epochs >= _XLA_MIN_STEPS


def _networks_from_weights(weights: list[np.ndarray], activation: str) -> list[Network]:
    layers = [(weights[i], weights[i + 1]) for i in range(0, len(weights), 2)]
    return [Network(layers=layers, activation=activation)]


# ---- the model --------------------------------------------------------------------------------------
class RiskModel:
    """Heart-disease risk MLP with the preprocessing that travels with it (scikit-learn style).

    Learned attributes (set by :meth:`fit` or :func:`load_bundle`): ``preprocessor_``, ``networks_``,
    ``history_`` (per epoch, 1-based epochs: loss, accuracy, auc, val_loss, val_accuracy, val_auc — losses
    are the data loss without the L2 penalty, measured on all rows after the epoch), ``best_epoch_``
    (1-based), ``keras_model_``, ``background_`` (raw training rows for SHAP), ``train_range_``,
    ``n_train_``, ``n_val_``, ``prevalence_``, ``stopped_by_user_``, ``fit_seconds_``.
    """

    def __init__(self, schema: Schema, config: TrainConfig | None = None):
        self.schema = schema
        self.config = config or TrainConfig()

    # ---- training --------------------------------------------------------------------------------
    def fit(self, df_train: pd.DataFrame, y_train, df_val: pd.DataFrame | None = None, y_val=None,
            progress: Callable[[int, dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> "RiskModel":
        """Fit the preprocessing on ``df_train`` only, then train the network.

        Without ``df_val`` and with early stopping on, a stratified ``val_fraction`` of ``df_train`` is held
        out for early stopping (and the preprocessing is fitted on the rest).
        ``progress(epoch, metrics)`` is called after every epoch; ``should_stop()`` returning True ends
        training after the current epoch, keeping the best weights so far.
        """
        import keras
        import tensorflow as tf

        started = time.perf_counter()
        cfg = self.config
        y_train = _as_outcome(y_train, len(df_train))
        if df_val is None and cfg.early_stopping:
            fit_rows, val_rows = _stratified(np.arange(len(df_train)), y_train, cfg.val_fraction, cfg.seed,
                                             "validation")
            df_val, y_val = df_train.iloc[val_rows], y_train[val_rows]
            df_train, y_train = df_train.iloc[fit_rows], y_train[fit_rows]
        if len(np.unique(y_train)) < 2:
            raise CohortError("the training patients all have the same outcome; the model needs both")
        has_val = df_val is not None
        if has_val:
            y_val = _as_outcome(y_val, len(df_val))

        keras.utils.set_random_seed(cfg.seed)
        self.preprocessor_ = Preprocessor(self.schema).fit(df_train)
        raw_train = self.preprocessor_.encode(df_train)
        X_train = self.preprocessor_.transform_raw(raw_train)  # float32
        X_val = self.preprocessor_.transform(df_val) if has_val else None
        n_inputs = X_train.shape[1]

        self.background_ = _background(raw_train, cfg.seed)
        del raw_train
        # Training-set curves on at most _METRIC_ROWS rows (a fixed sample): exact for clinical cohorts,
        # and an epoch of a million rows is not slowed by scoring them all.
        if len(y_train) > _METRIC_ROWS:
            rows = np.sort(np.random.default_rng(cfg.seed + 1).choice(len(y_train), _METRIC_ROWS, replace=False))
            X_metric, y_metric = X_train[rows], y_train[rows]
        else:
            X_metric, y_metric = X_train, y_train

        self.input_reference_ = input_reference(X_metric)
        trainer = _trainer(n_inputs, cfg)
        final, history, best_epoch = self._train_network(trainer, X_train, y_train, X_val, y_val, X_metric,
                                                         y_metric, cfg.seed, progress, should_stop)
        self.stopped_by_user_ = bool(self._stopped)
        member_weights = [final]
        # Uncertainty ensemble: bootstrap resamples of the training split, a weight seed each.
        for k in range(1, cfg.members):
            if should_stop is not None and should_stop():
                break
            member_weights.append(self._bootstrap_member(trainer, X_train, y_train, X_val, y_val, k, should_stop))
        del X_train
        self._weights = final
        self.member_weights_ = member_weights
        self.calibration_ = Calibration()
        self._set_networks()
        self._keras_model = None
        self.history_ = history
        self.best_epoch_ = int(best_epoch)
        self.epochs_run_ = len(history["loss"])
        self.n_train_ = int(len(y_train))
        self.n_val_ = int(len(y_val)) if has_val else 0
        self.prevalence_ = float(np.mean(y_train))
        self.train_range_ = {name: (lo, hi) for name, lo, hi in zip(
            self.preprocessor_.feature_names, self.preprocessor_.raw_min_, self.preprocessor_.raw_max_)}
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _train_network(self, trainer, X_train, y_train, X_val, y_val, X_metric, y_metric, seed,
                       progress=None, should_stop=None):
        """One network from ``seed`` on the given rows: (final weights, history, best epoch)."""
        import tensorflow as tf
        cfg = self.config
        has_val = X_val is not None
        n_inputs = X_train.shape[1]
        rng = np.random.default_rng(seed)
        history: dict[str, list[float]] = {k: [] for k in ("loss", "accuracy", "auc")}
        if has_val:
            history.update({k: [] for k in ("val_loss", "val_accuracy", "val_auc")})
        best_loss, best_epoch, best_weights, waited = math.inf, 0, None, 0
        self._stopped = False
        with trainer.lock:
            trainer.reset(_initial_weights(n_inputs, cfg, seed), cfg.learning_rate, seed)
            n = len(y_train)
            n_pad = trainer.padded_rows(n)
            X_t = tf.constant(np.pad(X_train, ((0, n_pad - n), (0, 0))), dtype=tf.float32)
            y_t = tf.constant(np.pad(y_train.astype(np.float32), (0, n_pad - n)), dtype=tf.float32)
            n_batches = tf.constant(-(-n // trainer.batch_size), dtype=tf.int32)
            mask = np.zeros(n_pad, dtype=np.float32)
            mask[:n] = 1.0
            mask_t = tf.constant(mask)
            order = np.zeros(n_pad, dtype=np.int32)
            run_epoch = trainer.run_xla if _use_xla(n, cfg) else trainer.run_graph
            weights = trainer.weights()
            for epoch in range(1, cfg.epochs + 1):
                order[:n] = rng.permutation(n)
                _, flat = run_epoch(X_t, y_t, tf.constant(order), mask_t, n_batches)
                weights = trainer.unflatten(flat.numpy())
                net = _networks_from_weights(weights, cfg.activation)[0]
                row = dict(zip(("loss", "accuracy", "auc"), _epoch_metrics(net, X_metric, y_metric, cfg.loss)))
                if has_val:
                    row.update(zip(("val_loss", "val_accuracy", "val_auc"),
                                   _epoch_metrics(net, X_val, y_val, cfg.loss)))
                for k, v in row.items():
                    history[k].append(v)
                monitored = row["val_loss"] if has_val else row["loss"]
                if monitored < best_loss:
                    best_loss, best_epoch, best_weights, waited = monitored, epoch, weights, 0
                else:
                    waited += 1
                if progress is not None:
                    progress(epoch, dict(row))
                if should_stop is not None and should_stop():
                    self._stopped = True
                    break
                if cfg.early_stopping and has_val and waited >= cfg.patience:
                    break
        # Early stopping (or a stop by the user) keeps the epoch with the lowest validation loss.
        final = best_weights if (cfg.early_stopping and has_val) or self._stopped else weights
        if final is None or not all(np.all(np.isfinite(w)) for w in final):
            raise CohortError("training diverged (the loss is not a number); lower the learning rate")
        if not (cfg.early_stopping and has_val) and not self._stopped:
            best_epoch = len(history["loss"])
        return final, history, best_epoch

    def _bootstrap_member(self, trainer, X_train, y_train, X_val, y_val, k: int, should_stop=None):
        """Member k (1-based extra): a bootstrap resample of the training rows, weight seed seed + 1000k."""
        seed = self.config.seed + 1000 * k
        rng = np.random.default_rng(seed)
        for _ in range(100):  # a resample needs both outcomes
            rows = rng.integers(0, len(y_train), len(y_train))
            if 0 < y_train[rows].sum() < len(rows):
                break
        Xb, yb = X_train[rows], y_train[rows]
        X_metric, y_metric = (Xb, yb) if len(yb) <= _METRIC_ROWS else (Xb[:_METRIC_ROWS], yb[:_METRIC_ROWS])
        weights, _, _ = self._train_network(trainer, Xb, yb, X_val, y_val, X_metric, y_metric, seed,
                                            should_stop=should_stop)
        self._stopped = False
        return weights

    # ---- prediction (numpy) ----------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "networks_"):
            raise CoreError("the model is not trained yet")

    def predict_risk_raw(self, raw: np.ndarray) -> np.ndarray:
        """Risk (probability of disease) for a raw feature matrix (see core.preprocess): the calibrated
        mean of the ensemble's members (one member unless the model is an ensemble)."""
        self._check_fitted()
        X = self.preprocessor_.transform_raw(np.atleast_2d(np.asarray(raw, dtype=np.float64)))
        cal = getattr(self, "calibration_", None)
        if cal is not None and not cal.folds_into_networks:
            return cal.apply_logits(np.array([net.logit(X) for net in self.base_networks_]))
        return np.mean([net.proba(X) for net in self.networks_], axis=0)

    def member_risks_raw(self, raw: np.ndarray) -> np.ndarray:
        """(members, rows): each member's calibrated risk (isotonic: the map applied to each member)."""
        self._check_fitted()
        X = self.preprocessor_.transform_raw(np.atleast_2d(np.asarray(raw, dtype=np.float64)))
        risks = np.array([net.proba(X) for net in self.networks_])
        cal = getattr(self, "calibration_", None)
        return cal.apply_risk(risks) if cal is not None and cal.method == "isotonic" else risks

    def predict_interval_raw(self, raw: np.ndarray, low: float = 10.0, high: float = 90.0) -> tuple:
        """(risk, lower, upper): the ensemble's mean risk and the ``low``-``high`` percentiles of its
        members' risks (linear interpolation between members). One member: lower == upper == risk."""
        risk = self.predict_risk_raw(raw)
        members = self.member_risks_raw(raw)
        return risk, np.percentile(members, low, axis=0), np.percentile(members, high, axis=0)

    def base_logits_raw(self, raw: np.ndarray) -> np.ndarray:
        """(members, rows): the uncalibrated output logits of every member (what calibration is fitted on)."""
        self._check_fitted()
        X = self.preprocessor_.transform_raw(np.atleast_2d(np.asarray(raw, dtype=np.float64)))
        return np.array([net.logit(X) for net in self.base_networks_])

    @property
    def n_members_(self) -> int:
        return len(getattr(self, "member_weights_", None) or [None])

    def set_calibration(self, calibration: Calibration | None) -> "RiskModel":
        """Use ``calibration`` from now on (None: none). Platt is folded into every member's last layer."""
        self._check_fitted()
        self.calibration_ = calibration or Calibration()
        self._set_networks()
        return self

    def _set_networks(self) -> None:
        members = getattr(self, "member_weights_", None) or [self._weights]
        activation = self.config.activation
        self.base_networks_ = [_networks_from_weights(w, activation)[0] for w in members]
        cal = getattr(self, "calibration_", None)
        if cal is not None and cal.method == "platt":
            # a * logit + b in the last layer: W -> a W, bias -> a bias + b (exact, SHAP stays additive)
            folded = []
            for w in members:
                w = [np.array(x, dtype=np.float64) for x in w]
                w[-2] = w[-2] * cal.a
                w[-1] = w[-1] * cal.a + cal.b
                folded.append(_networks_from_weights(w, activation)[0])
            self.networks_ = folded
        else:
            self.networks_ = list(self.base_networks_)

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self.predict_risk_raw(self.preprocessor_.encode(df))

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        p = self.predict_risk(df)
        return np.column_stack([1.0 - p, p])

    # ---- the Keras model -------------------------------------------------------------------------
    @property
    def keras_model_(self):
        """A standalone Keras model holding the trained weights (built on first use; the training
        model itself is shared with later fits and must not leak out)."""
        self._check_fitted()
        if getattr(self, "_keras_model", None) is None:
            model = _build_keras_model(self.preprocessor_.n_outputs_, self.config)
            model.set_weights(self._weights)
            self._keras_model = model
        return self._keras_model

    def member_keras_models(self) -> list:
        """A standalone Keras model per ensemble member (the first is ``keras_model_``); uncalibrated."""
        self._check_fitted()
        out = [self.keras_model_]
        for w in (getattr(self, "member_weights_", None) or [self._weights])[1:]:
            model = _build_keras_model(self.preprocessor_.n_outputs_, self.config)
            model.set_weights(w)
            out.append(model)
        return out


def add_members(model: RiskModel, df_train: pd.DataFrame, y_train, df_val: pd.DataFrame, y_val,
                members: int = 5, should_stop: Callable[[], bool] | None = None) -> RiskModel:
    """Grow a trained model into an ensemble of ``members`` networks, trained on bootstrap resamples of
    the *same* training split (give the split the model was trained on) with early stopping on the same
    validation split. Modifies and returns ``model``; its first member and preprocessing are unchanged.
    A calibration in force is kept (re-fit it: the ensemble's risks differ from the single network's)."""
    model._check_fitted()
    if not 1 <= int(members) <= 20:
        raise CoreError("an ensemble has 1 to 20 members")
    y_train = _as_outcome(y_train, len(df_train))
    y_val = _as_outcome(y_val, len(df_val))
    pre = model.preprocessor_
    X_train, X_val = pre.transform(df_train), pre.transform(df_val)
    trainer = _trainer(X_train.shape[1], model.config)
    weights = list(getattr(model, "member_weights_", None) or [model._weights])[:int(members)]
    for k in range(len(weights), int(members)):
        if should_stop is not None and should_stop():
            break
        weights.append(model._bootstrap_member(trainer, X_train, y_train, X_val, y_val, k, should_stop))
    model.member_weights_ = weights
    model.config = model.config.model_copy(update={"members": len(weights)})
    model._set_networks()
    return model


def input_reference(X: np.ndarray) -> dict:
    """What a typical training patient looks like to the network: the mean and the (pseudo-)inverse
    covariance of the network inputs (standardised numbers, one-hot codes), and the 99th percentile of
    the training patients' squared Mahalanobis distance — the out-of-distribution threshold."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    centred = X - mean
    cov = np.atleast_2d(np.cov(centred, rowvar=False)) if len(X) > 1 else np.eye(X.shape[1])
    # One-hot groups make the covariance singular; the pseudo-inverse ignores those exact dependencies.
    precision = np.linalg.pinv(cov, rcond=1e-8, hermitian=True)
    d2 = np.einsum("ij,jk,ik->i", centred, precision, centred)
    return {"mean": mean.tolist(), "precision": precision.tolist(), "d2_99": float(np.percentile(d2, 99)),
            "n": int(len(X))}


def _background(raw: np.ndarray, seed: int) -> np.ndarray:
    """Up to BACKGROUND_ROWS training rows, the same ones for the same data and seed."""
    if len(raw) <= BACKGROUND_ROWS:
        return raw.copy()
    rows = np.sort(np.random.default_rng(seed).choice(len(raw), BACKGROUND_ROWS, replace=False))
    return raw[rows].copy()


# ---- bundles ----------------------------------------------------------------------------------------
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
    return {"mean": mean.tolist(), "precision": precision.tolist(), "d2_99": threshold, "n": data.get("n")}
