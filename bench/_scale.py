"""Section 5: training on large synthetic cohorts, one fresh process per size (its own peak RSS).

    python -m bench._scale ROWS EPOCHS [--no-xla]   # used by bench/run.py

Trains on ROWS synthetic patients (core.demo) and validates on a separate 15% as many, so "1M rows"
means a million training rows. --no-xla forces the plain graph (to price the XLA lever).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from bench._util import emit, peak_rss_mb, quiet_tensorflow, run_subprocess


def scale(rows: int, epochs: int, xla: bool = True, timeout: float = 900) -> dict:
    args = [str(rows), str(epochs)] + ([] if xla else ["--no-xla"])
    return run_subprocess("bench._scale", args, timeout)


def _child(rows: int, epochs: int, xla: bool) -> None:
    quiet_tensorflow()
    import core.model.trainer as core_model
    from core.data import demo_cohort
    from core.model import RiskModel, TrainConfig
    from core.data import cleveland_schema

    if not xla:
        core_model.XLA_MIN_STEPS = 10**15  # benchmark-only: price the XLA lever by turning it off
    import keras  # noqa: F401  -- imports are not training time
    import tensorflow  # noqa: F401
    schema = cleveland_schema()
    t0 = time.perf_counter()
    train = demo_cohort(rows, seed=21)
    val = demo_cohort(max(100, int(rows * 0.15)), seed=22)
    y_train, y_val = schema.outcome(train).to_numpy(), schema.outcome(val).to_numpy()
    made = time.perf_counter() - t0
    rss_data = peak_rss_mb()

    stamps = []
    started = time.perf_counter()
    model = RiskModel(schema, TrainConfig(epochs=epochs)).fit(
        train, y_train, val, y_val, progress=lambda e, m: stamps.append(time.perf_counter()))
    seconds = time.perf_counter() - started
    epoch_times = np.diff([started] + stamps)
    steady = float(np.median(epoch_times[1:])) if len(epoch_times) > 1 else float(epoch_times[0])
    emit({"rows": rows, "epochs": len(stamps), "fit_s": seconds, "s_per_epoch": steady,
          # the first epoch also holds preprocessing, copying the data into tensors and tracing/compiling
          "first_epoch_s": float(epoch_times[0]), "setup_s": float(epoch_times[0]) - steady,
          "xla": bool(core_model.use_xla(rows, model.config)), "peak_rss_mb": peak_rss_mb(),
          "rss_after_data_mb": rss_data, "make_data_s": made,
          "val_auc_last": model.history_["val_auc"][-1]})


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) in (2, 3) and all(a.isdigit() for a in args[:2]) and args[2:] in ([], ["--no-xla"]):
        _child(int(args[0]), int(args[1]), xla="--no-xla" not in args)
    else:
        sys.exit(__doc__)
