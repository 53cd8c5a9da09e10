"""The trained risk model (RiskModel): fitting, ensemble members, calibrated prediction.

Uncertainty ensemble (``TrainConfig.members`` > 1, or :func:`add_members` later): member 1 is the model
above; members 2..k share its preprocessing and validation split but train on a bootstrap resample of the
training split with their own weight seed. The risk is the members' mean (SHAP explains that mean:
core.explain takes the list of networks), and their spread is how much they disagree on a patient
(:meth:`RiskModel.predict_interval_raw`; not a calibrated confidence interval). Extra members are cheap:
they reuse the architecture's traced trainer (Cleveland: ~0.3 s each after the first fit's ~0.9 s). Each
member is its own ``.keras`` file in the bundle, hashed and loaded under the same safe mode and layer
allowlist.

Recalibration (core.calibration) is saved in ``metadata.json`` as numbers; a Platt map is folded into
every member's last layer, so ``networks_`` are the calibrated networks (``base_networks_`` the trained
ones) and explanations stay exact and additive on the calibrated risk. Bundles with several members or a
calibration are written as version 2 (an older reader refuses them rather than silently dropping them);
version-1 bundles load as before.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pandas as pd

from core.data.schema import Schema
from core.errors import CohortError, CoreError
from core.metrics.discrimination import as_outcome
from core.model.bands import DEFAULT_BANDS
from core.model.config import TrainConfig, stratified
from core.model.preprocess import Preprocessor
from core.model.recalibration import Calibration
from core.model.trainer import (
    build_keras_model,
    cached_trainer,
    epoch_metrics,
    initial_weights,
    networks_from_weights,
    use_xla,
)

BACKGROUND_ROWS = 200
_METRIC_ROWS = 50_000


class RiskModel:
    """Heart-disease risk MLP with the preprocessing that travels with it (scikit-learn style).

    Learned attributes (set by :meth:`fit` or :func:`load_bundle`): ``preprocessor_``, ``networks_``,
    ``history_`` (per epoch, 1-based epochs: loss, accuracy, auc, val_loss, val_accuracy, val_auc — losses
    are the data loss without the L2 penalty, measured on all rows after the epoch), ``best_epoch_``
    (1-based), ``keras_model_``, ``background_`` (raw training rows for SHAP), ``train_range_``,
    ``n_train_``, ``n_val_``, ``prevalence_``, ``stopped_by_user_``, ``fit_seconds_``.
    """

    # A raw background until summarised (core.explain.summarise_background): then cluster centres, their
    # weights, and what the model reveals about its training patients.
    background_weights_ = None
    disclosure_ = None
    members_requested_ = None

    def __init__(self, schema: Schema, config: TrainConfig | None = None):
        self.schema = schema
        self.config = config or TrainConfig()
        self.bands_ = DEFAULT_BANDS  # risk bands: chosen by a clinician (Trust page), kept in the bundle

    # ---- training --------------------------------------------------------------------------------
    def fit(self, df_train: pd.DataFrame, y_train, df_val: pd.DataFrame | None = None, y_val=None,
            progress: Callable[[int, dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            network_progress: Callable[[int, int, int], None] | None = None,
            run: Callable | None = None) -> "RiskModel":
        """Fit the preprocessing on ``df_train`` only, then train the network.

        Without ``df_val`` and with early stopping on, a stratified ``val_fraction`` of ``df_train`` is held
        out for early stopping (and the preprocessing is fitted on the rest).
        ``progress(epoch, metrics)`` is called after every epoch; ``should_stop()`` returning True ends
        training after the current epoch, keeping the best weights so far. ``network_progress(k, n, epoch)``
        is called after every epoch of every network of the ensemble (k of n, 1-based): a page can show
        progress over the whole job, not only over the first network (whose curves ``progress`` gets).

        ``run``: how the ensemble's networks are trained. None: here, one after another. Else
        ``run(fit_network, shared, range(members))`` must return ``[fit_network(shared, k) for k in ...]``
        (core.workflow.engine.RayMap: the members as Ray tasks, the same numbers: each network is seeded
        from its own seed). ``progress`` and ``should_stop`` apply to the in-process run only.
        """
        import keras

        started = time.perf_counter()
        cfg = self.config
        y_train = as_outcome(y_train, len(df_train))
        if df_val is None and cfg.early_stopping:
            fit_rows, val_rows = stratified(np.arange(len(df_train)), y_train, cfg.val_fraction, cfg.seed,
                                             "validation")
            df_val, y_val = df_train.iloc[val_rows], y_train[val_rows]
            df_train, y_train = df_train.iloc[fit_rows], y_train[fit_rows]
        if len(np.unique(y_train)) < 2:
            raise CohortError("the training patients all have the same outcome; the model needs both")
        has_val = df_val is not None
        if has_val:
            y_val = as_outcome(y_val, len(df_val))

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
        trainer = cached_trainer(n_inputs, cfg)
        def first_progress(epoch, metrics):
            if progress is not None:
                progress(epoch, metrics)
            if network_progress is not None:
                network_progress(1, cfg.members, epoch)

        if run is not None and cfg.members > 1:
            shared = {"config": cfg.model_dump(mode="json"), "X_train": X_train, "y_train": y_train,
                      "X_val": X_val, "y_val": y_val, "X_metric": X_metric, "y_metric": y_metric}
            networks = run(fit_network, shared, range(cfg.members))
            final, history, best_epoch = networks[0]
            member_weights, stopped = [final] + [weights for weights, _, _ in networks[1:]], False
        else:
            final, history, best_epoch = self._train_network(trainer, X_train, y_train, X_val, y_val, X_metric,
                                                             y_metric, cfg.seed, first_progress, should_stop)
            stopped = bool(self._stopped)
            member_weights = [final]
        # Uncertainty ensemble: bootstrap resamples of the training split, a weight seed each. A stop ends it
        # with the members trained in full; the one it interrupted is dropped (it did not finish its epochs).
        for k in range(len(member_weights), cfg.members if not stopped else 1):
            weights = self._bootstrap_member(trainer, X_train, y_train, X_val, y_val, k, should_stop,
                                             network_progress)
            if weights is None:
                stopped = True
                break
            member_weights.append(weights)
        del X_train
        self.stopped_by_user_ = stopped
        self.members_requested_ = int(cfg.members)
        # What the model is, not what was asked for: the card and the bundle read config.members.
        self.config = cfg.model_copy(update={"members": len(member_weights)})
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
            trainer.reset(initial_weights(n_inputs, cfg, seed), cfg.learning_rate, seed)
            n = len(y_train)
            n_pad = trainer.padded_rows(n)
            X_t = tf.constant(np.pad(X_train, ((0, n_pad - n), (0, 0))), dtype=tf.float32)
            y_t = tf.constant(np.pad(y_train.astype(np.float32), (0, n_pad - n)), dtype=tf.float32)
            n_batches = tf.constant(-(-n // trainer.batch_size), dtype=tf.int32)
            mask = np.zeros(n_pad, dtype=np.float32)
            mask[:n] = 1.0
            mask_t = tf.constant(mask)
            order = np.zeros(n_pad, dtype=np.int32)
            run_epoch = trainer.run_xla if use_xla(n, cfg) else trainer.run_graph
            weights = trainer.weights()
            for epoch in range(1, cfg.epochs + 1):
                order[:n] = rng.permutation(n)
                _, flat = run_epoch(X_t, y_t, tf.constant(order), mask_t, n_batches)
                weights = trainer.unflatten(flat.numpy())
                net = networks_from_weights(weights, cfg.activation)[0]
                row = dict(zip(("loss", "accuracy", "auc"), epoch_metrics(net, X_metric, y_metric, cfg.loss)))
                if has_val:
                    row.update(zip(("val_loss", "val_accuracy", "val_auc"),
                                   epoch_metrics(net, X_val, y_val, cfg.loss)))
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

    def _bootstrap_member(self, trainer, X_train, y_train, X_val, y_val, k: int, should_stop=None,
                          network_progress=None):
        """Member k (1-based extra): a bootstrap resample of the training rows, weight seed seed + 1000k.
        None when a stop came before or during its training (a half-trained member is not kept)."""
        if should_stop is not None and should_stop():
            return None
        seed = self.config.seed + 1000 * k
        rows = bootstrap_rows(y_train, np.random.default_rng(seed))
        Xb, yb = X_train[rows], y_train[rows]
        X_metric, y_metric = (Xb, yb) if len(yb) <= _METRIC_ROWS else (Xb[:_METRIC_ROWS], yb[:_METRIC_ROWS])
        members = self.config.members
        progress = None if network_progress is None else (lambda epoch, _: network_progress(k + 1, members, epoch))
        weights, _, _ = self._train_network(trainer, Xb, yb, X_val, y_val, X_metric, y_metric, seed,
                                            progress=progress, should_stop=should_stop)
        interrupted, self._stopped = self._stopped, False
        return None if interrupted else weights

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
        self.base_networks_ = [networks_from_weights(w, activation)[0] for w in members]
        cal = getattr(self, "calibration_", None)
        if cal is not None and cal.method == "platt":
            # a * logit + b in the last layer: W -> a W, bias -> a bias + b (exact, SHAP stays additive)
            folded = []
            for w in members:
                w = [np.array(x, dtype=np.float64) for x in w]
                w[-2] = w[-2] * cal.a
                w[-1] = w[-1] * cal.a + cal.b
                folded.append(networks_from_weights(w, activation)[0])
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
            model = build_keras_model(self.preprocessor_.n_outputs_, self.config)
            model.set_weights(self._weights)
            self._keras_model = model
        return self._keras_model

    def member_keras_models(self) -> list:
        """A standalone Keras model per ensemble member (the first is ``keras_model_``); uncalibrated."""
        self._check_fitted()
        out = [self.keras_model_]
        for w in (getattr(self, "member_weights_", None) or [self._weights])[1:]:
            model = build_keras_model(self.preprocessor_.n_outputs_, self.config)
            model.set_weights(w)
            out.append(model)
        return out


def fit_network(shared: dict, k: int) -> tuple[list[np.ndarray], dict | None, int | None]:
    """Network ``k`` of an ensemble, trained in this process from the preprocessed arrays and the settings
    as JSON (``shared``, see RiskModel.fit's ``run``): k = 0 the first network on the training rows
    (weights, history, best epoch), k >= 1 bootstrap member k (weights, None, None). What a Ray worker
    runs; the in-process fit runs the same two methods with the same seeds."""
    import keras

    config = TrainConfig(**shared["config"])
    keras.utils.set_random_seed(config.seed)  # as RiskModel.fit does before its first network
    model = RiskModel(None, config)
    X_train, y_train, X_val, y_val = shared["X_train"], shared["y_train"], shared["X_val"], shared["y_val"]
    trainer = cached_trainer(X_train.shape[1], config)
    if k == 0:
        return model._train_network(trainer, X_train, y_train, X_val, y_val, shared["X_metric"], shared["y_metric"],
                                    config.seed)
    return model._bootstrap_member(trainer, X_train, y_train, X_val, y_val, k), None, None


def add_members(model: RiskModel, df_train: pd.DataFrame, y_train, df_val: pd.DataFrame, y_val,
                members: int = 5, should_stop: Callable[[], bool] | None = None) -> RiskModel:
    """Grow a trained model into an ensemble of ``members`` networks, trained on bootstrap resamples of
    the *same* training split (give the split the model was trained on) with early stopping on the same
    validation split. Modifies and returns ``model``; its first member and preprocessing are unchanged.
    A calibration in force is kept (re-fit it: the ensemble's risks differ from the single network's)."""
    model._check_fitted()
    if not 1 <= int(members) <= 20:
        raise CoreError("an ensemble has 1 to 20 members")
    y_train = as_outcome(y_train, len(df_train))
    y_val = as_outcome(y_val, len(df_val))
    pre = model.preprocessor_
    X_train, X_val = pre.transform(df_train), pre.transform(df_val)
    trainer = cached_trainer(X_train.shape[1], model.config)
    weights = list(getattr(model, "member_weights_", None) or [model._weights])[:int(members)]
    for k in range(len(weights), int(members)):
        member = model._bootstrap_member(trainer, X_train, y_train, X_val, y_val, k, should_stop)
        if member is None:
            model.stopped_by_user_ = True
            break
        weights.append(member)
    model.members_requested_ = int(members)
    model.member_weights_ = weights
    model.config = model.config.model_copy(update={"members": len(weights)})
    model._set_networks()
    return model


OOD_RATE = 0.01    # the share of patients like the training ones that the warning may flag
OOD_METHOD = "leave-one-out distances, 99th percentile"


def _mahalanobis_fit(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    cov = np.atleast_2d(np.cov(X - mean, rowvar=False)) if len(X) > 1 else np.eye(X.shape[1])
    # One-hot groups make the covariance singular; the pseudo-inverse ignores those exact dependencies.
    return mean, np.linalg.pinv(cov, rcond=1e-8, hermitian=True)


def _d2(X: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    centred = X - mean
    return np.einsum("ij,jk,ik->i", centred, precision, centred)


def leave_one_out_d2(d2: np.ndarray, n: int) -> np.ndarray:
    """Each row's squared Mahalanobis distance from the mean and covariance of the *other* n - 1 rows,
    from its in-sample distance ``d2`` (covariance with n - 1 degrees of freedom), exactly: removing row i
    moves the mean by e_i / (n - 1) and the scatter matrix by a rank-one term, so by Sherman-Morrison
    D_i = (n / (n - 1))^2 (n - 2) a / (1 - n a / (n - 1)) with a = d2_i / (n - 1). Infinite for a row
    alone in a direction (the only patient with some code)."""
    a = np.asarray(d2, dtype=np.float64) / (n - 1)
    rest = 1 - n * a / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rest > 1e-12, (n / (n - 1)) ** 2 * (n - 2) * a / rest, np.inf)


def bootstrap_rows(y: np.ndarray, rng: np.random.Generator, tries: int = 100) -> np.ndarray:
    """Row positions of a bootstrap resample that holds both outcomes: a plain resample (redrawn while
    it has one class), else a stratified one (each outcome resampled within itself, its count kept)."""
    y = np.asarray(y)
    n = len(y)
    for _ in range(tries):
        rows = rng.integers(0, n, n)
        if 0 < y[rows].sum() < n:
            return rows
    positive, negative = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    if len(positive) == 0 or len(negative) == 0:
        raise CohortError("the training patients all have the same outcome; an ensemble member needs both")
    return np.sort(np.concatenate([rng.choice(positive, len(positive)), rng.choice(negative, len(negative))]))


def input_reference(X: np.ndarray) -> dict:
    """What a typical training patient looks like to the network: the mean and the (pseudo-)inverse
    covariance of the network inputs (standardised numbers, one-hot codes), and the out-of-distribution
    threshold ``d2_99`` on the squared Mahalanobis distance.

    The threshold is set out of sample, so that about OOD_RATE of *new* patients like the training ones
    exceed it: the 99th percentile of the training patients' leave-one-out distances (each from the
    others' mean and covariance, as a new patient's is). The in-sample 99th percentile was too low (a
    patient's own row pulls the mean and covariance towards it): on Cleveland it flagged 1.5% of held-out
    patients (5-fold CV, 10 repeats), the leave-one-out one 0.9%."""
    X = np.asarray(X, dtype=np.float64)
    mean, precision = _mahalanobis_fit(X)
    n = len(X)
    in_sample = _d2(X, mean, precision)
    if n >= 10:
        threshold, method = float(np.percentile(leave_one_out_d2(in_sample, n), 100 * (1 - OOD_RATE))), OOD_METHOD
    else:  # too few rows for a percentile out of sample: the in-sample one, and the method says so
        threshold, method = float(np.percentile(in_sample, 100 * (1 - OOD_RATE))), "in-sample 99th percentile"
    return {"mean": mean.tolist(), "precision": precision.tolist(), "d2_99": threshold, "n": int(n),
            "method": method, "d2_99_in_sample": float(np.percentile(in_sample, 100 * (1 - OOD_RATE)))}


def _background(raw: np.ndarray, seed: int) -> np.ndarray:
    """Up to BACKGROUND_ROWS training rows, the same ones for the same data and seed."""
    if len(raw) <= BACKGROUND_ROWS:
        return raw.copy()
    rows = np.sort(np.random.default_rng(seed).choice(len(raw), BACKGROUND_ROWS, replace=False))
    return raw[rows].copy()
