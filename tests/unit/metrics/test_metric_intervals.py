"""95% intervals of the test metrics (core.metrics.metric_intervals): they exist, hold the estimate, are
never of zero width, match the reference formulas, and say "too few" below MIN_PER_CLASS per class."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.metrics import (
    MIN_PER_CLASS,
    Z95,
    binary_metrics,
    interval_fields,
    metric_intervals,
    proportion_intervals,
)


def _test_split(n=46, seed=3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.45).astype(float)
    p = np.clip(0.25 * y + 0.75 * rng.random(n), 0, 1)
    return y, p


def _wilson(k, n, z=Z95):
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_every_test_metric_has_an_interval_holding_its_estimate_with_width():
    y, p = _test_split()
    point = binary_metrics(y, p, 0.5)
    ivs = metric_intervals(y, p, 0.5, n_boot=200)
    assert set(ivs) == {"accuracy", "sensitivity", "specificity", "ppv", "npv", "roc_auc", "brier",
                        "calibration_slope", "calibration_intercept"}
    for name, iv in ivs.items():
        assert not iv["too_few"], name
        assert iv["value"] == pytest.approx(point[name]), name
        assert iv["low"] <= iv["value"] <= iv["high"], name
        assert iv["high"] - iv["low"] > 0.01, name
        if not name.startswith("calibration"):
            assert 0 <= iv["low"] and iv["high"] <= 1, name


def test_proportions_match_wilson_by_formula():
    y, p = _test_split()
    m = binary_metrics(y, p, 0.4)
    ivs = proportion_intervals(y, p, 0.4)
    for name, k, n in (("sensitivity", m["tp"], m["tp"] + m["fn"]), ("specificity", m["tn"], m["tn"] + m["fp"]),
                       ("ppv", m["tp"], m["tp"] + m["fp"]), ("npv", m["tn"], m["tn"] + m["fn"]),
                       ("accuracy", m["tp"] + m["tn"], m["n"])):
        low, high = _wilson(k, n)
        assert (ivs[name]["low"], ivs[name]["high"]) == pytest.approx((low, high), abs=1e-12), name


def test_auc_interval_centres_on_sklearn_and_matches_delong_by_brute_force():
    y, p = _test_split()
    iv = metric_intervals(y, p, n_boot=50)["roc_auc"]
    assert iv["value"] == pytest.approx(roc_auc_score(y, p))
    # DeLong by its definition: placement values from every (positive, negative) pair
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    se = math.sqrt(psi.mean(axis=1).var(ddof=1) / pos.size + psi.mean(axis=0).var(ddof=1) / neg.size)
    centre, half = math.log(auc / (1 - auc)), Z95 * se / (auc * (1 - auc))
    expected = (1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half))))
    assert (iv["low"], iv["high"]) == pytest.approx(expected, abs=1e-12)


def test_perfect_separation_still_has_a_width():
    y = np.array([0.0] * 20 + [1.0] * 20)
    p = np.r_[np.linspace(0.05, 0.4, 20), np.linspace(0.6, 0.95, 20)]
    ivs = metric_intervals(y, p, 0.5, n_boot=200)
    for name in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "roc_auc"):
        assert ivs[name]["value"] == 1.0
        assert ivs[name]["low"] < 1.0, name
    assert ivs["brier"]["high"] > ivs["brier"]["low"]


def test_brier_bootstrap_is_seeded():
    y, p = _test_split()
    a, b = metric_intervals(y, p, n_boot=100), metric_intervals(y, p, n_boot=100)
    assert a["brier"] == b["brier"]


def test_too_few_patients_with_the_outcome_gives_no_interval():
    y = np.array([1.0] * (MIN_PER_CLASS - 1) + [0.0] * 30)
    p = np.linspace(0.1, 0.9, y.size)
    ivs = metric_intervals(y, p, n_boot=50)
    assert all(iv["too_few"] and math.isnan(iv["low"]) for iv in ivs.values())
    fields = interval_fields(ivs)
    assert fields["roc_auc_low"] is None and fields["roc_auc_too_few"] is True


def test_a_small_denominator_alone_is_too_few():
    y, p = _test_split()
    ivs = proportion_intervals(y, p, 0.99)  # nobody flagged: PPV has no patients
    assert ivs["ppv"]["too_few"] and not ivs["npv"]["too_few"]
