"""Section 4: scoring synthetic cohorts (core.demo), risk only and risk + top-3 SHAP reasons, against
shap.KernelExplainer on the same model and background.

    python -m bench._cohort score-1m BUNDLE_DIR REASON_ROWS   # 1M rows in a fresh process (peak RSS)
"""
from __future__ import annotations

import copy
import sys
import time

import numpy as np

from bench import peers
from bench._util import emit, median_seconds, peak_rss_mb, quiet_tensorflow, run_subprocess

KERNEL_BACKGROUND = 100  # background rows for both explainers in the head-to-head


def explain_with_reasons(model, raw: np.ndarray, background: np.ndarray):
    """Risk + SHAP + top-3 reasons for every row: core.explain.explain then reasons_frame (the same
    numbers and texts score_table produces, but keeping the SHAP values so additivity can be checked)."""
    from core.explain import explain, reasons_frame
    t0 = time.perf_counter()
    expl = explain(model.preprocessor_, model.networks_, raw, background)
    t1 = time.perf_counter()
    frame = reasons_frame(expl, model.schema, model.preprocessor_, top=3)
    t2 = time.perf_counter()
    additivity = float(np.max(np.abs(expl.base_value + expl.shap_values.sum(axis=1) - expl.output)))
    return expl, frame, {"seconds": t2 - t0, "explain_s": t1 - t0, "reasons_s": t2 - t1,
                         "additivity_max_error": additivity}


def _with_background(model, background: np.ndarray):
    """A shallow copy of the model explaining against ``background`` (score_table reads model.background_)."""
    clone = copy.copy(model)
    clone.background_ = background
    return clone


def cohort_10k(model, quick: bool) -> dict:
    from core.data import demo_cohort
    from core.explain import background_sample
    from core.workflow import score_table

    cohort = demo_cohort(10_000, seed=11)
    risk_s, risk_runs = median_seconds(lambda: score_table(model, cohort, with_reasons=False), 9, warmup=1)

    background = background_sample(model.background_, KERNEL_BACKGROUND, seed=0)
    n_reasons = 1_000 if quick else 10_000
    raw = model.preprocessor_.encode(cohort.iloc[:n_reasons])
    expl, frame, timing = explain_with_reasons(model, raw, background)
    ours_rows_per_s = n_reasons / timing["seconds"]

    # score_table is the product path: same risks and reason texts on a slice, and its own speed.
    n_table = 200 if quick else 1_000
    table, table_s = _timed_table(_with_background(model, background), cohort.iloc[:n_table])
    # (rows with an input not measured are scored over its plausible values: compared on complete rows)
    complete = ~np.isnan(raw[:n_table]).any(axis=1)
    same_risk = float(np.max(np.abs(table["risk"].to_numpy() - expl.output[:n_table])[complete]))
    first_reason = frame[frame["rank"] == 1].set_index("row")["text"].reindex(range(n_table), fill_value="")
    same_text = bool((table["reason_1"].to_numpy() == first_reason.to_numpy())[complete].all())

    n_kernel = 10 if quick else 20
    kernel = peers.kernel_explainer(model, raw[:n_kernel], background)
    gap = float(np.max(np.abs(kernel["shap_values"] - expl.shap_values[:n_kernel])))
    return {
        "score_rows_per_s_10k": 10_000 / risk_s, "score_10k_s_runs": risk_runs,
        "score_explain_rows_per_s": ours_rows_per_s, "score_explain_rows": n_reasons,
        "score_explain_background_rows": len(background),
        "score_explain_additivity_max_error": timing["additivity_max_error"],
        "score_explain_reasons_share": timing["reasons_s"] / timing["seconds"],
        "score_table_explain_rows_per_s": n_table / table_s, "score_table_rows_checked": n_table,
        "score_table_matches_explain": same_risk < 1e-12 and same_text,
        "kernel_explainer_rows_per_s": kernel["rows_per_s"], "kernel_explainer_rows": kernel["rows"],
        "kernel_explainer_additivity_max_error": kernel["additivity_max_error"],
        "kernel_vs_exact_max_abs_gap": gap,
        "shap_speedup_vs_kernel": ours_rows_per_s / kernel["rows_per_s"],
    }


def _timed_table(model, df):
    from core.workflow import score_table
    t0 = time.perf_counter()
    out = score_table(model, df, with_reasons=True)
    return out, time.perf_counter() - t0


def cohort_1m(bundle_dir: str, reason_rows: int, timeout: float = 1200) -> dict:
    return run_subprocess("bench._cohort", ["score-1m", bundle_dir, str(reason_rows)], timeout)


def _cohort_1m_child(bundle_dir: str, reason_rows: int) -> None:
    quiet_tensorflow()
    from core.data import demo_cohort
    from core.model import load_bundle
    from core.workflow import score_table

    model = load_bundle(bundle_dir)
    rss_loaded = peak_rss_mb()
    t0 = time.perf_counter()
    cohort = demo_cohort(1_000_000, seed=12)
    made = time.perf_counter() - t0
    rss_cohort = peak_rss_mb()
    risk_s, _ = median_seconds(lambda: score_table(model, cohort, with_reasons=False), 3)
    rss_scored = peak_rss_mb()
    out = {"score_rows_per_s_1m": 1_000_000 / risk_s, "score_1m_s": risk_s, "demo_1m_s": made,
           "score_1m_rss_after_load_mb": rss_loaded, "score_1m_rss_after_cohort_mb": rss_cohort,
           "score_1m_peak_rss_mb": rss_scored}
    if reason_rows:
        raw = model.preprocessor_.encode(cohort.iloc[:reason_rows])
        _, _, timing = explain_with_reasons(model, raw, model.background_)
        out.update({"score_explain_rows_per_s_1m_subset": reason_rows / timing["seconds"],
                    "score_explain_1m_subset_rows": reason_rows,
                    "score_explain_1m_subset_background_rows": int(len(model.background_)),
                    "score_explain_1m_subset_additivity_max_error": timing["additivity_max_error"],
                    "score_explain_1m_subset_peak_rss_mb": peak_rss_mb()})
    emit(out)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "score-1m":
        _cohort_1m_child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
