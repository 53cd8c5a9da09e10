"""SHAP explanations of the risk model, on the raw clinical features and the probability scale.

What is explained: the model output is the *probability of disease* (the mean probability of an
ensemble of :class:`~core.network.Network`, usually one network) of ``preprocessor.transform_raw(raw)``.
Attributions are interventional (background) Shapley values over the *raw* matrix: one column per
clinical feature, so a one-hot group (chest-pain type) is attributed to its one original feature.
A SHAP value of +0.09 means "this feature's value raises the predicted probability by 9 percentage
points compared with the background cohort"; ``base_value + shap_values.sum(1) == output``.

Why it is fast (no shap.KernelExplainer, no Keras call):

* Preprocessing is separable per feature (``Preprocessor.slices_``) and the first Dense layer is
  linear, so the first-layer pre-activation for a coalition S and background row b is
  ``z1 = c(b) + sum_{j in S} (c_j(x_j) - c_j(b_j))`` with ``c_j(v) = encode_feature_values(j, v) @ W1[slice_j]``.
  All coalitions of a game come out of one matrix product ``[c(b), deltas] @ [1, masks]^T``, then only
  the rest of the network runs (``Network.proba_from_first``, here in place on reused buffers).
* For each (patient, background row) pair a feature whose encoded value is the same in both (same sex,
  same chest-pain code, ...; or a feature the network ignores) is a null player of that pair's game: it
  gets exactly 0 and the game is solved over the other q features only (2^q instead of 2^p coalitions).
  Interventional Shapley values are the mean over background rows of these per-pair values, so this
  is exact, not an approximation; with the coded Cleveland features it is ~10x less work.
* Everything runs in float64, chunked to bound memory, so additivity holds to ~1e-12. The Shapley
  weights of every game size are precomputed once (``shapley_weights``) and applied as one product.

``method="exact"`` (automatic for p <= 15 features) enumerates coalitions; ``"permutation"`` (automatic
above) averages marginal contributions over seeded antithetic permutations (each permutation and its
reverse): every permutation telescopes to f(x) - f(b), so additivity is exact there too.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Sequence

import numpy as np

from core.explain.explanation import Explanation
from core.model.network import Network
from core.model.preprocess import Preprocessor

MAX_AUTO_EXACT = 15  # "auto" enumerates coalitions up to this many features
MAX_EXACT = 20  # beyond this even one (patient, background) game is too big to enumerate
# Floats of first-layer pre-activations held at once: 1 MB blocks keep the work in the CPU cache
# (measured faster than 4 MB) and the memory small whatever the cohort or background size.
_BLOCK = 1 << 17


def explain(preprocessor: Preprocessor, networks: Network | Sequence[Network], rows_raw: np.ndarray,
            background_raw: np.ndarray, method: str = "auto", n_permutations: int = 64,
            seed: int = 0, n_threads: int | None = None, precision: str = "float64",
            background_weights: np.ndarray | None = None) -> Explanation:
    """Interventional SHAP values of the predicted probability for each row of ``rows_raw``.

    preprocessor: the fitted Preprocessor of the model (raw matrix -> network inputs).
    networks: one Network or an ensemble; the explained output is their mean probability.
    rows_raw: (n, p) or (p,) raw matrix of the patients (``Preprocessor.encode``; NaN = missing).
    background_raw: (B, p) raw matrix of reference patients (see :func:`background_sample`).
    method: "exact" (all coalitions), "permutation" (seeded antithetic sampling) or "auto"
        (exact for p <= 15 features).
    n_permutations: permutations per patient for "permutation" (rounded up to an even number).
    seed: seeds the permutations (the same permutations serve every row, so a row's values do not
        depend on which other rows are explained with it).
    n_threads: worker threads for many rows (None: one per core this process may use, from 64 rows on);
        results are identical for any number of threads.
    precision: "float64" (default: additivity to ~1e-15, the numbers every page and command show) or
        "float32" for the exact method's coalition games (additivity to ~1e-7; measured in bench/_batch.py).
    background_weights: (B,) positive weights of the background rows (e.g. cluster centres weighted by
        their patients, core.model.privacy); None: equal. Interventional Shapley values are an average
        over background rows, so the weighted average is exact for a weighted background.

    Values are on the probability scale and ``base_value + shap_values.sum(1) == output`` to 1e-9.
    """
    nets = [networks] if isinstance(networks, Network) else list(networks)
    if not nets:
        raise ValueError("explain needs at least one network")
    p = len(preprocessor.features)
    rows = _as_matrix(rows_raw, p, "rows_raw").copy()  # the Explanation keeps its own copy
    background = _as_matrix(background_raw, p, "background_raw")
    if background.shape[0] == 0:
        raise ValueError("the background needs at least one row")
    weights = None
    if background_weights is not None:
        weights = np.asarray(background_weights, dtype=np.float64).reshape(-1)
        if weights.shape[0] != background.shape[0] or not np.all(weights > 0) or not np.all(np.isfinite(weights)):
            raise ValueError("background_weights needs one positive weight per background row")
        weights = weights / weights.sum()
    if method == "auto":
        method = "exact" if p <= MAX_AUTO_EXACT else "permutation"
    if method == "exact" and p > MAX_EXACT:
        raise ValueError(f"exact SHAP enumerates 2^p coalitions; use method='permutation' for {p} features")
    if method not in ("exact", "permutation"):
        raise ValueError(f"unknown method {method!r}; use 'auto', 'exact' or 'permutation'")
    perms = _antithetic_permutations(p, n_permutations, seed) if method == "permutation" else None
    if precision not in ("float64", "float32"):
        raise ValueError(f"unknown precision {precision!r}; use 'float64' or 'float32'")

    if n_threads is None:
        n_threads = _cpu_count() if rows.shape[0] >= 64 else 1
    with single_thread_blas():
        return _explain(preprocessor, nets, rows, background, method, perms, max(1, int(n_threads)),
                        np.dtype(precision), weights)


def _explain(preprocessor, nets, rows, background, method, perms, n_threads,
             dtype=np.dtype(np.float64), weights=None) -> Explanation:
    p = len(preprocessor.features)
    # Encoded once (network-independent), multiplied by each network's first layer below.
    enc_rows = [preprocessor.encode_feature_values(j, rows[:, j]) for j in range(p)]
    enc_back = [preprocessor.encode_feature_values(j, background[:, j]) for j in range(p)]
    slices = preprocessor.slices_

    n = rows.shape[0]
    phi = np.zeros((n, p))
    output = np.zeros(n)
    base = 0.0
    for net in nets:
        W1, b1 = net.first
        cx = _contributions(enc_rows, W1, slices)  # (n, p, h1)
        cb = _contributions(enc_back, W1, slices)  # (B, p, h1)
        start = b1 + cb.sum(axis=1)  # first-layer pre-activation of each background row
        output += net.proba_from_first(b1 + cx.sum(axis=1))
        back_out = net.proba_from_first(start)
        base += float(np.mean(back_out) if weights is None else weights @ back_out)
        solve = (partial(_exact, dtype=dtype, weights=weights) if method == "exact"
                 else partial(_permutation, perms=perms, weights=weights))
        phi += _by_rows(solve, net, cx, cb, start, n_threads)
    k = len(nets)
    return Explanation(shap_values=phi / k, base_value=base / k, output=output / k,
                       feature_names=list(preprocessor.feature_names), raw=rows, method=method,
                       background_size=background.shape[0],
                       n_permutations=None if perms is None else perms.shape[0])


def _by_rows(solve, net, cx, cb, start, n_threads: int) -> np.ndarray:
    """Rows are independent games: split them over threads (numpy and BLAS release the GIL)."""
    n = cx.shape[0]
    if n_threads <= 1 or n < 2:
        return solve(net, cx, cb, start)
    bounds = np.linspace(0, n, min(n_threads, n) + 1).astype(int)
    with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
        parts = pool.map(lambda lo_hi: solve(net, cx[lo_hi[0]:lo_hi[1]], cb, start), zip(bounds[:-1], bounds[1:]))
        return np.concatenate(list(parts))


def _cpu_count() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1




@lru_cache(maxsize=None)
def shapley_weights(q: int) -> np.ndarray:
    """(2^q, q) matrix A with phi = v @ A for a q-player game v given on all 2^q coalitions.

    Coalition s contains player j iff bit j of s is set (the order :func:`_coalitions` builds them in).
    A[s, j] = (|s|-1)!(q-|s|)!/q! if j is in s, else -|s|!(q-|s|-1)!/q!: column j is the Shapley sum of
    weighted marginal contributions v(S+j) - v(S). Each row sums to 0 except the empty coalition (-1)
    and the full one (+1), so the values always add up to v(all) - v(empty), whatever v is.
    """
    s = np.arange(1 << q)
    member = ((s[:, None] >> np.arange(q)) & 1).astype(bool)
    size = member.sum(axis=1)
    # (k-1)!(q-k)!/q! = 1/(q*C(q-1,k-1)) and k!(q-k-1)!/q! = 1/(q*C(q-1,k))
    w_in = np.array([1.0 / (q * math.comb(q - 1, k - 1)) if k >= 1 else 0.0 for k in range(q + 1)])
    w_out = np.array([1.0 / (q * math.comb(q - 1, k)) if k <= q - 1 else 0.0 for k in range(q + 1)])
    A = np.where(member, w_in[size][:, None], -w_out[size][:, None])
    A.setflags(write=False)
    return A


def _exact(net: Network, cx: np.ndarray, cb: np.ndarray, start: np.ndarray,
           dtype: np.dtype = np.dtype(np.float64), weights: np.ndarray | None = None) -> np.ndarray:
    """Exact interventional Shapley values of one network, (n, p); the games in ``dtype``."""
    n, p, h1 = cx.shape
    B = cb.shape[0]
    forward = _Forward(net, dtype)
    if dtype != np.float64:
        cx, cb, start = cx.astype(dtype), cb.astype(dtype), start.astype(dtype)
    phi = np.zeros((n, p))
    rows_per_chunk = max(1, _BLOCK // max(1, B * p * h1))
    for r0 in range(0, n, rows_per_chunk):
        r1 = min(n, r0 + rows_per_chunk)
        # delta[pair, j] = c_j(x_j) - c_j(b_j) for every (row, background row) pair
        delta = (cx[r0:r1, None] - cb[None]).reshape(-1, p, h1)
        active = np.any(delta != 0.0, axis=2)
        q_of_pair = active.sum(axis=1)
        phi_pairs = np.zeros((delta.shape[0], p))
        for q in np.unique(q_of_pair):
            q = int(q)
            if q == 0:  # the row equals this background row as the network sees it
                continue
            pairs = np.flatnonzero(q_of_pair == q)
            players = np.nonzero(active[pairs])[1].reshape(-1, q)  # each pair's active features, ascending
            per_chunk = max(1, _BLOCK // ((1 << q) * h1))
            A = shapley_weights(q)
            for c0 in range(0, pairs.size, per_chunk):
                pr, pl = pairs[c0:c0 + per_chunk], players[c0:c0 + per_chunk]
                d = delta[pr[:, None], pl]  # (m, q, h1)
                z = _coalitions(start[pr % B], d, forward.first_buffer((1 << q) * pr.size))
                v = forward.proba(z).reshape(pr.size, 1 << q)  # (pair, coalition)
                phi_pairs[pr[:, None], pl] = v @ A
        per_background = phi_pairs.reshape(r1 - r0, B, p)
        phi[r0:r1] = (per_background.mean(axis=1) if weights is None
                      else np.einsum("rbp,b->rp", per_background, weights))
    return phi


def _coalitions(z0: np.ndarray, d: np.ndarray, out: np.ndarray) -> np.ndarray:
    """First-layer pre-activations of every coalition: z[s] = z0 + sum of d[:, j] over bits j of s.

    z0: (m, h1) per pair; d: (m, q, h1). Written into ``out`` (h1, m * 2^q), unit-major with the
    coalitions innermost (coalition s of pair i in column i*2^q + s) as one matrix product
    [z0 d] @ [1 M]^T: a BLAS product beats building them by doubling in numpy, whose short broadcast
    loops ran 2-5x slower here.
    """
    m, q, h1 = d.shape
    stacked = np.concatenate([z0[:, None, :], d], axis=1).transpose(2, 0, 1)  # (h1, m, q+1)
    np.matmul(stacked.reshape(h1 * m, q + 1), _coalition_matrix(q, out.dtype), out=out.reshape(h1 * m, 1 << q))
    return out


@lru_cache(maxsize=None)
def _coalition_matrix(q: int, dtype=np.dtype(np.float64)) -> np.ndarray:
    """(q+1, 2^q): row 0 all ones (the background row's start), row 1+j = membership of player j."""
    s = np.arange(1 << q)
    M = np.vstack([np.ones((1, 1 << q)), ((s[None, :] >> np.arange(q)[:, None]) & 1)]).astype(dtype)
    M.setflags(write=False)
    return M


# ---- permutation sampling -----------------------------------------------------------------------

def _antithetic_permutations(p: int, n_permutations: int, seed: int) -> np.ndarray:
    """Seeded permutations, each followed by its reverse (antithetic pairs cut the variance)."""
    half = max(1, math.ceil(int(n_permutations) / 2))
    rng = np.random.default_rng(seed)
    forward = rng.permuted(np.tile(np.arange(p), (half, 1)), axis=1)
    return np.concatenate([forward, forward[:, ::-1]])


def _permutation(net: Network, cx: np.ndarray, cb: np.ndarray, start: np.ndarray,
                 perms: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Permutation-sampled Shapley values of one network, (n, p); each permutation telescopes exactly."""
    n, p, h1 = cx.shape
    B = cb.shape[0]
    P = perms.shape[0]
    forward = _Forward(net)
    inverse = np.argsort(perms, axis=1)  # position of feature j in permutation k
    per_pair = P * (p + 1) * h1
    back_per_chunk = max(1, min(B, _BLOCK // per_pair))
    rows_per_chunk = max(1, _BLOCK // (per_pair * back_per_chunk)) if back_per_chunk == B else 1
    phi = np.zeros((n, p))
    for r0 in range(0, n, rows_per_chunk):
        r1 = min(n, r0 + rows_per_chunk)
        r = r1 - r0
        value_sum = np.zeros((r, p + 1, P))  # sum over background rows of f along each path
        for b0 in range(0, B, back_per_chunk):
            b1 = min(B, b0 + back_per_chunk)
            # (h1, r, b, p): c_j(x_j) - c_j(b_j), unit-major like the forward pass
            delta = (cx[r0:r1, None] - cb[None, b0:b1]).transpose(3, 0, 1, 2)
            # the path of each permutation: start at the background row, add one feature per step
            flat = forward.first_buffer(r * (b1 - b0) * (p + 1) * P)
            z = flat.reshape(h1, r, b1 - b0, p + 1, P)  # step t of permutation k at [..., t, k]
            z[..., 0, :] = start[b0:b1].T[:, None, :, None]
            for t in range(p):
                np.add(z[..., t, :], delta[..., perms[:, t]], out=z[..., t + 1, :])
            v = forward.proba(flat).reshape(r, b1 - b0, p + 1, P)
            value_sum += (v.sum(axis=1) if weights is None
                          else np.einsum("rbtk,b->rtk", v, weights[b0:b1]))
        # (r, p, P): the contribution of the feature added at step t
        marginal = np.diff(value_sum / B if weights is None else value_sum, axis=1)
        by_feature = np.take_along_axis(marginal, np.broadcast_to(inverse.T, marginal.shape), axis=1)
        phi[r0:r1] = by_feature.mean(axis=2)
    return phi


# ---- the network after its first layer, in place ------------------------------------------------

_buffers = threading.local()
_INPLACE_ACTIVATIONS = ("relu", "tanh", "sigmoid")  # others run through Network.proba_from_first


def _scratch(name: str, size: int, dtype=np.dtype(np.float64)) -> np.ndarray:
    """A reusable work array of at least ``size`` elements, one set per thread and dtype.

    Fresh multi-megabyte arrays cost page faults on every chunk (measured: 2-3x slower than the
    arithmetic itself), so the chunks reuse these.
    """
    store = getattr(_buffers, "arrays", None)
    if store is None:
        store = _buffers.arrays = {}
    key = (name, np.dtype(dtype).char)
    buf = store.get(key)
    if buf is None or buf.size < size:
        buf = store[key] = np.empty(max(size, _BLOCK if name == "z" else 0), dtype=dtype)
    return buf[:size]


def _act_inplace(name: str, h: np.ndarray) -> None:
    if name == "relu":
        np.maximum(h, 0.0, out=h)
    elif name == "tanh":
        np.tanh(h, out=h)
    else:
        _sigmoid_inplace(h)


def _sigmoid_inplace(z: np.ndarray) -> None:
    # sigmoid(z) = (1 + tanh(z/2)) / 2: no overflow for any z, one transcendental call
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


class _Forward:
    """``Network.proba_from_first`` on (rows, h1) blocks, computed in reusable buffers.

    Same arithmetic as the Network (tested against it and against shap); networks with an activation
    this does not know fall back to the Network itself.
    """

    def __init__(self, net: Network, dtype: np.dtype = np.dtype(np.float64)):
        self.net = net
        self.dtype = np.dtype(dtype)
        self.h1 = net.first[0].shape[1]
        self.inplace = net.activation in _INPLACE_ACTIVATIONS or self.dtype != np.float64
        if net.activation not in _INPLACE_ACTIVATIONS and self.dtype != np.float64:
            raise ValueError(f"float32 games need a relu, tanh or sigmoid network, not {net.activation!r}")
        self.weights_t = [np.ascontiguousarray(W.T, dtype=self.dtype) for W, _ in net.layers]
        self.biases = [b.astype(self.dtype)[:, None] for _, b in net.layers]

    def first_buffer(self, rows: int) -> np.ndarray:
        """Work array for ``rows`` first-layer pre-activations, unit-major: (h1, rows)."""
        return _scratch("z", rows * self.h1, self.dtype).reshape(self.h1, rows)

    def proba(self, z: np.ndarray) -> np.ndarray:
        """Probabilities (rows,) of unit-major first-layer pre-activations ``z`` (h1, rows); overwrites z.

        Unit-major because the products are then W.T @ H with the long axis last, which BLAS runs
        ~1.5x faster than H @ W for these thin layers, and the output row is contiguous.
        """
        if not self.inplace:
            return self.net.proba_from_first(z.T)
        layers = self.net.layers
        if len(layers) == 1:  # logistic regression: z is already the logit
            logit = z[0]
        else:
            h = z
            _act_inplace(self.net.activation, h)
            for k, (W, b) in enumerate(layers[1:], start=1):
                out = _scratch(f"h{k}", W.shape[1] * h.shape[1], self.dtype).reshape(W.shape[1], h.shape[1])
                np.matmul(self.weights_t[k], h, out=out)
                out += self.biases[k]
                if k < len(layers) - 1:
                    _act_inplace(self.net.activation, out)
                h = out
            logit = h[0]
        _sigmoid_inplace(logit)
        return logit


_blas_lock = threading.Lock()
_blas_state = {"users": 0, "limiter": None}


@contextlib.contextmanager
def single_thread_blas():
    """Run the small matrix products on one BLAS thread.

    They are far too small to gain from threads, and when the cores are busy (another session, a
    training run) OpenBLAS's thread hand-off made them 20-40x slower in measurements here. The limit
    is process-wide: overlapping calls from several threads share it (counted), and the last one out
    restores the original setting. It only changes speed, never results.
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with _blas_lock:
        if _blas_state["users"] == 0:
            _blas_state["limiter"] = controller.limit(limits=1, user_api="blas")
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                _blas_state["limiter"].restore_original_limits()
                _blas_state["limiter"] = None


@lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
        return ThreadpoolController()
    except Exception:  # threadpoolctl missing or a BLAS it cannot drive: run as is
        return None


# ---- helpers ------------------------------------------------------------------------------------

def _as_matrix(values, p: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != p:
        raise ValueError(f"{name} must have {p} columns (one per model feature), got shape {arr.shape}")
    return arr


def _contributions(encoded: list[np.ndarray], W1: np.ndarray, slices: list[slice]) -> np.ndarray:
    """c_j(v) = encode_feature_values(j, v) @ W1[slice_j] for every feature: (rows, p, h1)."""
    return np.stack([e @ W1[sl] for e, sl in zip(encoded, slices)], axis=1)
