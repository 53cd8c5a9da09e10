"""Section: batch scoring with exact SHAP reasons (`python -m core score`, core.workflow.batch) in one
process and on Ray Data with 2 workers on this machine, and a larger run for memory and the 1M projection.

    python -m bench._batch batch BUNDLE_DIR ROWS   # one process vs Ray with 2 workers, in a fresh process
    python -m bench._batch big BUNDLE_DIR ROWS     # Ray with 2 workers on a larger population: its driver's
                                                   # peak RSS (the driver never loads TensorFlow) and the workers'

Rates are "steady": rows over the wall time from the first part's start to the last part's end (each
part report carries its wall-clock start and end), so Ray's start-up and each worker's bundle load
(TensorFlow import) are reported separately (``*_startup_s``) instead of diluting a short run.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench._util import emit, peak_rss_mb, quiet_tensorflow, run_subprocess


def batch_scoring(bundle_dir: str, rows: int, timeout: float = 1200) -> dict:
    return run_subprocess("bench._batch", ["batch", bundle_dir, str(rows)], timeout)


def batch_scoring_big(bundle_dir: str, rows: int, timeout: float = 3600) -> dict:
    return run_subprocess("bench._batch", ["big", bundle_dir, str(rows)], timeout)


def _steady(manifest: dict) -> tuple[float, float]:
    """(rows per second from the first part's start to the last part's end, that window in seconds)."""
    reports = [r for r in manifest["parts"].values() if not r.get("error")]
    window = max(r["ended_at"] for r in reports) - min(r["started_at"] for r in reports)
    return sum(r["rows"] for r in reports) / window, window


def _population(folder: Path, rows: int, files: int = 4) -> list[str]:
    """A synthetic population (core.data.demo_cohort) as a hospital export in Parquet parts."""
    from core.data import demo_cohort
    people = demo_cohort(rows, seed=21)
    paths = []
    step = -(-rows // files)
    for k in range(files):
        path = folder / f"population-{k}.parquet"
        people.iloc[k * step:(k + 1) * step].to_parquet(path, row_group_size=2000)
        paths.append(str(path))
    return paths


def _run(bundle: str, inputs: list[str], out: Path, engine: str, workers: int | None, part_rows: int) -> dict:
    from core.workflow.batch import Options, score
    t0 = time.perf_counter()
    result = score(bundle, inputs, out, Options(reasons=True, top=3), engine=engine, workers=workers,
                   part_rows=part_rows)
    wall = time.perf_counter() - t0
    m = result.manifest
    assert m["complete"] and not m["parts_failed"], m["bad_files"]
    rate, window = _steady(m)
    reports = list(m["parts"].values())
    return {"rows": m["rows"]["total"], "wall_s": wall, "steady_rows_per_s": rate, "steady_s": window,
            "startup_s": wall - window, "parts": len(reports),
            "worker_peak_rss_mb": max(r.get("worker_peak_rss_mb") or 0 for r in reports),
            "workers": m["engine"].get("workers")}


def _child(bundle: str, rows: int) -> None:
    quiet_tensorflow()
    from core.workflow.batch import read_scores

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        inputs = _population(tmp, rows)
        part_rows = max(250, rows // 16)
        two = _run(bundle, inputs, tmp / "ray2", "local", 2, part_rows)
        one = _run(bundle, inputs, tmp / "inline", "inline", None, part_rows)
        a, b = read_scores(tmp / "inline"), read_scores(tmp / "ray2")
        same = bool(len(a) == len(b) == rows and (a["risk"] - b["risk"]).abs().max() <= 1e-12
                    and (a["reason_1"] == b["reason_1"]).all())
    emit({"score_reasons_rows_per_s_local_1": one["steady_rows_per_s"],
          "score_reasons_rows_per_s_ray_2": two["steady_rows_per_s"],
          "score_reasons_ray_speedup": two["steady_rows_per_s"] / one["steady_rows_per_s"],
          "score_reasons_rows": rows, "score_reasons_same_numbers_local_ray": same,
          "score_reasons_local_1": one, "score_reasons_ray_2": two})


def _big_child(bundle: str, rows: int) -> None:
    quiet_tensorflow()
    with tempfile.TemporaryDirectory(prefix="bench-batch-big-") as tmp:
        tmp = Path(tmp)
        inputs = _population(tmp, rows, files=8)
        rss_inputs = peak_rss_mb()
        big = _run(bundle, inputs, tmp / "out", "local", 2, 5000)
    emit({"score_reasons_big_rows": rows, "score_reasons_ray_2_big": big, "score_reasons_big_s": big["wall_s"],
          "score_reasons_big_worker_peak_rss_mb": big["worker_peak_rss_mb"],
          "score_reasons_big_driver_peak_rss_mb": peak_rss_mb(), "score_reasons_big_driver_rss_inputs_mb": rss_inputs,
          # 1M rows at this run's steady rate plus its start-up: a projection, not a measurement
          "score_reasons_1m_s_projected": 1_000_000 / big["steady_rows_per_s"] + big["startup_s"]})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("batch", "big"):
        (_child if sys.argv[1] == "batch" else _big_child)(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
