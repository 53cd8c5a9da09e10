"""The Keras MLP that scores heart-disease risk: configuration, training, prediction and bundles.

Architecture (the source document's): inputs -> Dense 10 (ReLU) -> Dense 5 (ReLU) -> Dense 1 (sigmoid),
Adam, binary cross-entropy. Training does not use ``model.fit``: its per-epoch machinery (callbacks,
validation pass, metric objects) costs ~100 ms an epoch, far more than the ~200 rows themselves. Instead
one ``tf.function`` runs a whole epoch in-graph (a ``tf.range`` loop over minibatches of a shuffled
index), and the per-epoch metrics are computed in numpy from the current weights. The traced function,
its model and optimizer are cached per architecture, so cross-validation traces once, not 25 times: each
new fit re-initialises the weights from its seed and zeroes the optimizer state.

Prediction never goes through Keras: the weights are copied into :class:`core.network.Network` (numpy),
"""
from __future__ import annotations

import collections
import math
import threading

import numpy as np

from core.metrics.discrimination import rank_auc
from core.model.config import TrainConfig
from core.model.network import Network

_METRIC_ROWS = 50_000


def epoch_metrics(net: Network, X: np.ndarray, y: np.ndarray, loss: str) -> tuple[float, float, float]:
    z = net.logit(X)
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    if loss == "bce":
        value = float(np.mean(np.logaddexp(0.0, z) - y * z))  # BCE from logits, as Keras computes it
    else:
        value = float(np.mean((y - p) ** 2))
    return value, float(np.mean((p >= 0.5) == (y == 1))), rank_auc(y, z)


# ---- the cached trainer -----------------------------------------------------------------------------
def build_keras_model(n_inputs: int, config: TrainConfig):
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


def initial_weights(n_inputs: int, config: TrainConfig, seed: int) -> list[np.ndarray]:
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


class _Optimizer:
    """Keras' Adam (beta 0.9 / 0.999, epsilon 1e-7) and plain SGD, step for step as keras.optimizers
    computes them, on variables of our own. Written here because a Keras optimizer's apply() traced into a
    tf.function keeps ~1.5 MB per trace that nothing releases (measured with TensorFlow 2.21 / Keras 3:
    the same trace with these updates keeps none), and each new architecture traces anew (issue 18.3)."""

    BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7

    def __init__(self, kind: str, learning_rate: float, variables):
        import tensorflow as tf
        self.adam = kind == "adam"
        self.learning_rate = tf.Variable(learning_rate, dtype=tf.float32, trainable=False)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        zeros = [tf.zeros(v.shape, dtype=tf.float32) for v in variables]
        self.momentums = [tf.Variable(z, trainable=False) for z in zeros] if self.adam else []
        self.velocities = [tf.Variable(z, trainable=False) for z in zeros] if self.adam else []

    @property
    def variables(self) -> list:
        return [self.learning_rate, self.iterations, *self.momentums, *self.velocities]

    def apply(self, grads, variables) -> None:
        import tensorflow as tf
        lr = self.learning_rate
        if self.adam:
            local_step = tf.cast(self.iterations + 1, tf.float32)
            beta_1_power = tf.pow(tf.constant(self.BETA_1, tf.float32), local_step)
            beta_2_power = tf.pow(tf.constant(self.BETA_2, tf.float32), local_step)
            alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            for grad, var, m, v in zip(grads, variables, self.momentums, self.velocities):
                m.assign_add((grad - m) * (1 - self.BETA_1))
                v.assign_add((tf.square(grad) - v) * (1 - self.BETA_2))
                var.assign_sub((m * alpha) / (tf.sqrt(v) + self.EPSILON))
        else:
            for grad, var in zip(grads, variables):
                var.assign_sub(grad * lr)
        self.iterations.assign_add(1)


class _Trainer:
    """One Keras model + optimizer + traced epoch function, re-used by every fit of one architecture."""

    def __init__(self, n_inputs: int, config: TrainConfig):
        import keras
        import tensorflow as tf

        self.lock = threading.Lock()  # Streamlit sessions run in threads; one fit at a time per trainer
        self.model = build_keras_model(n_inputs, config)
        self.dropouts = [layer for layer in self.model.layers if isinstance(layer, keras.layers.Dropout)]
        variables = self.model.trainable_variables
        self.optimizer = _Optimizer(config.optimizer, config.learning_rate, variables)
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
        # cohorts (Cleveland: 7 minibatches an epoch) use the graph, large ones XLA (see use_xla).
        self.run_graph = tf.function(run_epoch, input_signature=signature, autograph=False)
        self.run_xla = tf.function(run_epoch, input_signature=signature, autograph=False, jit_compile=True)

    def reset(self, weights: list[np.ndarray], learning_rate: float, seed: int) -> None:
        for var, value in zip(self.model.trainable_variables, weights):
            var.assign(value)
        for var in self.optimizer.variables:
            if var is self.optimizer.learning_rate:
                var.assign(learning_rate)
            else:
                var.assign(np.zeros(var.shape, dtype=var.dtype.as_numpy_dtype))
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


def cached_trainer(n_inputs: int, config: TrainConfig) -> _Trainer:
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


XLA_MIN_STEPS = 20_000


def use_xla(n_rows: int, config: TrainConfig) -> bool:
    """XLA pays off when a fit runs enough minibatch steps to repay its ~2 s compile."""
    return -(-n_rows // config.batch_size) * config.epochs >= XLA_MIN_STEPS


def networks_from_weights(weights: list[np.ndarray], activation: str) -> list[Network]:
    layers = [(weights[i], weights[i + 1]) for i in range(0, len(weights), 2)]
    return [Network(layers=layers, activation=activation)]
