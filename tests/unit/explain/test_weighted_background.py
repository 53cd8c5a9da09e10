"""SHAP against a weighted background (cluster centres weighted by their patients): exact, i.e. equal to
shap's Exact explainer on the background with each row repeated as often as its weight (issue 18, 11)."""
from __future__ import annotations

import numpy as np
import pytest

from core.explain import explain
from core.model import Preprocessor
from core.data import cleveland_schema
from test_explain import random_network, shap_exact, synthetic_cleveland


@pytest.fixture(scope="module")
def setup():
    frame = synthetic_cleveland()
    pre = Preprocessor(cleveland_schema()).fit(frame)
    return pre, pre.encode(frame)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_weighted_background_equals_the_repeated_background_brute_force(setup, activation):
    pre, raw = setup
    net = random_network(pre.n_outputs_, activation=activation, seed=4, scale=2.0)
    background = raw[20:30]
    counts = np.array([3, 1, 2, 4, 1, 1, 2, 3, 1, 2])
    repeated = np.repeat(background, counts, axis=0)
    rows = raw[[0, 7, 11]]
    weighted = explain(pre, [net], rows, background, method="exact", background_weights=counts)
    theirs, base = shap_exact(pre, [net], rows, repeated)
    np.testing.assert_allclose(weighted.shap_values, theirs, atol=1e-6, rtol=0)
    np.testing.assert_allclose(weighted.base_value, base, atol=1e-6, rtol=0)
    np.testing.assert_allclose(weighted.base_value + weighted.shap_values.sum(1), weighted.output, atol=1e-9)
    unweighted = explain(pre, [net], rows, background, method="exact")
    assert np.abs(weighted.shap_values - unweighted.shap_values).max() > 1e-4  # the weights matter
    # The sampled method with the same permutations: weighted equals repeated, exactly.
    perm_w = explain(pre, [net], rows, background, method="permutation", n_permutations=8, background_weights=counts)
    perm_r = explain(pre, [net], rows, repeated, method="permutation", n_permutations=8)
    np.testing.assert_allclose(perm_w.shap_values, perm_r.shap_values, atol=1e-12)


def test_weights_must_fit_the_background(setup):
    pre, raw = setup
    net = random_network(pre.n_outputs_, seed=1)
    for bad in ([1.0, 2.0], [1.0] * 9 + [0.0], [1.0] * 9 + [np.nan]):
        with pytest.raises(ValueError, match="background_weights"):
            explain(pre, [net], raw[:2], raw[20:30], background_weights=bad)
