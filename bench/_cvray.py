"""Section: the 5x5 cross-validation on Cleveland fitted in one process vs as Ray tasks on a local Ray
instance with 2 workers (`python -m core evaluate --engine local --workers 2`), in a fresh process.

    python -m bench._cvray DATA_PATH

Both runs start cold (the one-process run traces its epoch graph; each Ray worker imports TensorFlow and
traces its own), so the comparison is what a user of the command waits for. The Ray figure includes
starting Ray (``cv_5x5_ray_2_startup_s``, also shown alone) and the workers' start-up. Every fold's
metrics and every out-of-fold risk must be the same (``cv_5x5_ray_same_numbers``).
"""
from __future__ import annotations

import os
import sys
import time

from bench._util import emit, quiet_tensorflow, run_subprocess


def cv_ray(data: str, timeout: float = 1200) -> dict:
    return run_subprocess("bench._cvray", [data], timeout)


def _child(data: str) -> None:
    quiet_tensorflow()
    # Ray starts its workers at nice 15: on this shared machine other sessions would take the cores from
    # them and the comparison would be of priorities (as bench._batch does, for the same reason).
    os.environ.setdefault("RAY_worker_niceness", "0")
    import pandas as pd

    from bench.cv_cleveland import load
    from core.evaluate import cross_validate
    from core.model import TrainConfig
    from core.workflow.engine import RayMap, ray_session

    df, schema, y = load(data)
    load_start = os.getloadavg()[0]
    serial = cross_validate(df, y, schema, TrainConfig(), n_splits=5, n_repeats=5, seed=0)
    t0 = time.perf_counter()
    with ray_session("local", workers=2):
        startup = time.perf_counter() - t0
        spread = cross_validate(df, y, schema, TrainConfig(), n_splits=5, n_repeats=5, seed=0, run=RayMap(2))
    ray_s = time.perf_counter() - t0
    timing = ["fit_seconds"]
    try:
        pd.testing.assert_frame_equal(serial.folds.drop(columns=timing), spread.folds.drop(columns=timing),
                                      check_exact=True)
        pd.testing.assert_frame_equal(serial.predictions, spread.predictions, check_exact=True)
        same = True
    except AssertionError:
        same = False
    emit({"cv_5x5_s_serial_cold": serial.seconds, "cv_5x5_s_ray_2": ray_s, "cv_5x5_ray_2_startup_s": startup,
          "cv_5x5_ray_speedup": serial.seconds / ray_s, "cv_5x5_ray_same_numbers": same,
          "cv_5x5_ray_load_average": [load_start, os.getloadavg()[0]]})


if __name__ == "__main__":
    _child(sys.argv[1])
