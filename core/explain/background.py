"""The explanation background a model keeps and a bundle carries: weighted cluster centres of the
training rows instead of the rows themselves (core.model.privacy), with as few centres as keep the
reasons within a tolerance of those computed against the rows.

Measured on the demo cohort's model (200 background rows, 50 of them explained, 13 features): the
largest change of any reason was 0.062 / 0.024 / 0.015 / 0.014 (probability scale) with 10 / 20 / 30 / 40
requested centres (25 left after merging clusters under 5 patients), the mean change 0.003; drawing a
different 200 training rows as the background moves reasons by up to 0.009-0.013 (mean 0.002-0.003).
"""
from __future__ import annotations

import numpy as np

from core.explain.shapley import explain
from core.model.privacy import MIN_CLUSTER_ROWS, RANGE_PERCENTILES, cluster_background

REASON_TOLERANCE = 0.02  # largest change of any reason (2 percentage points of risk) allowed
CENTRES = (10, 20, 30, 40)  # tried in this order; the first within the tolerance is kept
PROBE_ROWS = 50  # background rows explained against both backgrounds to measure the change


def summarise_background(model, tolerance: float = REASON_TOLERANCE, centres=CENTRES, seed: int = 0) -> dict:
    """Replace ``model``'s raw background rows by weighted cluster centres (the fewest of ``centres``
    that move no reason of ``PROBE_ROWS`` training patients by more than ``tolerance``; else those that
    move them least) and record what the model now reveals (``model.disclosure_``). Returns it."""
    if getattr(model, "background_weights_", None) is not None:
        return model.disclosure_  # already a summary
    pre, nets = model.preprocessor_, model.networks_
    rows = np.asarray(model.background_, dtype=np.float64)
    kinds = [f.kind for f in pre.features]
    probes = rows[:PROBE_ROWS]
    reference = explain(pre, nets, probes, rows).shap_values
    best = None
    for k in centres:
        centre_rows, weights = cluster_background(rows, kinds, k, seed=seed)
        change = explain(pre, nets, probes, centre_rows, background_weights=weights).shap_values - reference
        worst = float(np.abs(change).max())
        if best is None or worst < best[0]:
            best = (worst, float(np.abs(change).mean()), centre_rows, weights)
        if worst <= tolerance:
            break
    worst, mean, centre_rows, weights = best
    model.background_ = centre_rows
    model.background_weights_ = weights
    model.disclosure_ = {
        "centres": int(len(centre_rows)), "rows": int(len(rows)),
        "min_weight_rows": int(round(float(weights.min()) * len(rows))),
        "tolerance": tolerance, "max_reason_change": round(worst, 4), "mean_reason_change": round(mean, 5),
        "probe_rows": int(len(probes)),
        "range_low": f"{RANGE_PERCENTILES[0]:g}", "range_high": f"{RANGE_PERCENTILES[1]:g}",
        "min_cluster_rows": MIN_CLUSTER_ROWS,
    }
    return model.disclosure_
