"""Section: batch scoring with exact SHAP reasons (`python -m core score`, core.workflow.batch) in one
process and on Ray Data with 2 workers on this machine, and a larger run for memory and the 1M projection.

    python -m bench._batch batch BUNDLE_DIR ROWS   # one process vs Ray with 2 workers, in a fresh process
    python -m bench._batch big BUNDLE_DIR ROWS     # Ray with 2 workers on a larger population: its driver's
                                                   # peak RSS (the driver never loads TensorFlow) and the workers'

Rates are "steady": rows per second from the moment every worker was ready to the last part's end (each
part report carries its wall-clock start and end and its actor's ready time; see ``_steady``), so Ray's
start-up and each worker's start (Ray's worker process, imports, the bundle load) are reported
separately (``startup_s``, ``actors_*``) instead of diluting a short run. ``window_rows_per_s`` is rows
over the first part's start to the last part's end (it also counts one worker scoring while the other
starts).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from bench._util import emit, peak_rss_mb, quiet_tensorflow, run_subprocess


def batch_scoring(bundle_dir: str, rows: int, timeout: float = 1200) -> dict:
    return run_subprocess("bench._batch", ["batch", bundle_dir, str(rows)], timeout)


def batch_scoring_big(bundle_dir: str, rows: int, timeout: float = 3600) -> dict:
    return run_subprocess("bench._batch", ["big", bundle_dir, str(rows)], timeout)


def _steady(manifest: dict, workers: int = 1) -> dict:
    """The job's rate once its workers score: rows per second from the moment the last of the first
    ``workers`` actors was ready (inline: the first part's start) to the last part's end, a part
    running across that moment counted for the share of its time after it. This window holds the tail
    (a worker with no part left) and any worker lost and restarted; it leaves out the start-up (Ray's,
    each actor's). ``window_rows_per_s``: all rows over the first part's start to the last part's end
    (it also counts one worker scoring alone while another starts)."""
    reports = [r for r in manifest["parts"].values() if not r.get("error")]
    first, last = min(r["started_at"] for r in reports), max(r["ended_at"] for r in reports)
    ready = sorted({r["actor_ready_at"] for r in reports if r.get("actor_ready_at") is not None})
    since = max(first, ready[workers - 1] if len(ready) >= workers else first)
    rows = 0.0
    for r in reports:
        span = r["ended_at"] - r["started_at"]
        after = max(0.0, r["ended_at"] - max(r["started_at"], since))
        rows += r["rows"] * (after / span if span > 0 else float(r["started_at"] >= since))
    return {"steady_rows_per_s": rows / (last - since), "steady_from_s": since - first, "steady_s": last - since,
            "window_rows_per_s": sum(r["rows"] for r in reports) / (last - first), "window_s": last - first}


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


def _rss_mb() -> dict:
    """This process's resident memory now (VmRSS) and its high-water mark (VmHWM), in MB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss_mb" if line.startswith("VmRSS") else "peak_mb"] = round(int(line.split()[1]) / 1024, 1)
    return out


def _run(bundle: str, inputs: list[str], out: Path, engine: str, workers: int | None, part_rows: int,
         checkpoints: tuple[int, ...] = ()) -> dict:
    """One scoring job, timed. ``checkpoints``: row counts at which the driver's memory is read (the
    first report at or past each), to show it does not grow with the rows scored."""
    from core.workflow.batch import Options, score
    driver_memory = []

    def progress(info: dict) -> None:
        while len(driver_memory) < len(checkpoints) and info["rows_done"] >= checkpoints[len(driver_memory)]:
            driver_memory.append({"rows_done": info["rows_done"], "elapsed_s": round(time.perf_counter() - t0, 1),
                                  **_rss_mb()})

    t0, t0_unix, cpu0, os0 = time.perf_counter(), time.time(), time.process_time(), os.times()
    result = score(bundle, inputs, out, Options(reasons=True, top=3), engine=engine, workers=workers,
                   part_rows=part_rows, progress=progress if checkpoints else None)
    wall = time.perf_counter() - t0
    os1 = os.times()
    m = result.manifest
    assert m["complete"] and not m["parts_failed"], m["bad_files"]
    workers = m["engine"].get("workers") or 1
    steady = _steady(m, workers)
    reports = list(m["parts"].values())
    cpu = sum(r["cpu_s"] for r in reports)
    actors = {r["worker_pid"]: r for r in reports if r.get("actor_ready_at")}
    startup = {
        # When each actor was ready to score (its bundle loaded), from the job's start; and its own load.
        "actors_ready_s": sorted(round(r["actor_ready_at"] - t0_unix, 2) for r in actors.values()),
        "actors_process_start_to_ready_s": sorted(
            round(r["actor_ready_at"] - r["actor_process_started_at"], 2) for r in actors.values()
            if r.get("actor_process_started_at")),
        "actors_bundle_load_s": sorted(r["actor_load_s"] for r in actors.values()),
        "workers_imported_tensorflow": any(r.get("worker_tensorflow") for r in reports)}
    driver_memory.append({"rows_done": m["rows"]["total"], "elapsed_s": round(wall, 1), **_rss_mb()})
    return {"rows": m["rows"]["total"], "wall_s": wall, **steady, "startup_s": wall - steady["window_s"],
            "part_rows": part_rows, "parts": len(reports), **startup,
            # What else used the cores: this driver (planning, Ray Data's executor, the manifest), and the
            # processes it started and waited for (Ray's raylet and GCS, and through them the workers).
            "driver_cpu_s": time.process_time() - cpu0,
            "children_cpu_s": (os1.children_user + os1.children_system) - (os0.children_user + os0.children_system),
            "parts_cpu_s": cpu,
            "driver_memory": driver_memory, "workers_memory": _workers_memory(reports, checkpoints),
            # per CPU-second of the workers: the rate of one free core; the share: how much of its cores
            # the job got on this shared machine (1.0 = every worker on a core of its own all the time)
            "rows_per_worker_cpu_s": m["rows"]["total"] / cpu,
            "rows_per_scoring_thread_cpu_s": m["rows"]["total"] / sum(r["thread_cpu_s"] for r in reports),
            "cpu_share": cpu / (steady["window_s"] * workers),
            "workers_started": len({r["worker_pid"] for r in reports}),  # > workers: one was lost and restarted
            "worker_peak_rss_mb": max(r.get("worker_peak_rss_mb") or 0 for r in reports),
            "workers": m["engine"].get("workers")}


def _workers_memory(reports: list[dict], checkpoints: tuple[int, ...]) -> list[dict]:
    """Each worker's peak RSS (VmHWM, read as it finished each part) once the parts finished so far
    held ``checkpoint`` rows, for every checkpoint, and at the end of the job."""
    done, rows, out = sorted(reports, key=lambda r: r["ended_at"]), 0, []
    marks = list(checkpoints)
    seen: dict[int, float] = {}
    for r in done:
        seen[r["worker_pid"]] = max(seen.get(r["worker_pid"], 0), r.get("worker_peak_rss_mb") or 0)
        rows += r["rows"]
        while marks and rows >= marks[0]:
            out.append({"rows_done": rows, "peak_mb_by_worker": dict(sorted(seen.items()))})
            marks.pop(0)
    out.append({"rows_done": rows, "peak_mb_by_worker": dict(sorted(seen.items()))})
    return out


def _fair_priority() -> None:
    """Ray starts its workers at nice 15; on this shared machine the other sessions' processes would then
    take the cores from them, and one-process-vs-Ray would compare priorities, not engines. A dedicated
    cluster node has nothing else to run, so nice 0 here is the fair comparison."""
    os.environ.setdefault("RAY_worker_niceness", "0")


def _child(bundle: str, rows: int) -> None:
    quiet_tensorflow()
    _fair_priority()
    from core.workflow.batch import read_scores

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        inputs = _population(tmp, rows)
        # 16 parts (8 per worker): large enough that a part's fixed cost (reading, checking, writing
        # Parquet: ~0.2 s) is small, enough of them that the two workers end together.
        part_rows = max(250, rows // 16)
        two = _run(bundle, inputs, tmp / "ray2", "local", 2, part_rows)
        one = _run(bundle, inputs, tmp / "inline", "inline", None, part_rows)
        a, b = read_scores(tmp / "inline"), read_scores(tmp / "ray2")
        same = bool(len(a) == len(b) == rows and (a["risk"] - b["risk"]).abs().max() <= 1e-12
                    and (a["reason_1"] == b["reason_1"]).all())
    emit({"score_reasons_rows_per_s_local_1": one["steady_rows_per_s"],
          "score_reasons_rows_per_s_ray_2": two["steady_rows_per_s"],
          "score_reasons_ray_speedup": two["steady_rows_per_s"] / one["steady_rows_per_s"],
          "score_reasons_ray_speedup_window": two["window_rows_per_s"] / one["window_rows_per_s"],
          "score_reasons_ray_worker_vs_one_process_per_cpu_s": two["rows_per_worker_cpu_s"] / one["rows_per_worker_cpu_s"],
          "score_reasons_rows": rows, "score_reasons_same_numbers_local_ray": same,
          "score_reasons_local_1": one, "score_reasons_ray_2": two})


def _big_child(bundle: str, rows: int) -> None:
    quiet_tensorflow()
    _fair_priority()
    with tempfile.TemporaryDirectory(prefix="bench-batch-big-") as tmp:
        tmp = Path(tmp)
        inputs = _population(tmp, rows, files=8)
        rss_inputs = peak_rss_mb()
        load_start = list(os.getloadavg())
        checkpoints = tuple(n for n in (10_000, 100_000, 1_000_000) if n < rows)
        big = _run(bundle, inputs, tmp / "out", "local", 2, 5000, checkpoints)
        load_end = list(os.getloadavg())
    emit({"score_reasons_big_rows": rows, "score_reasons_ray_2_big": big, "score_reasons_big_s": big["wall_s"],
          "score_reasons_big_load_average": {"start": load_start, "end": load_end},
          "score_reasons_big_worker_peak_rss_mb": big["worker_peak_rss_mb"],
          "score_reasons_big_driver_peak_rss_mb": peak_rss_mb(), "score_reasons_big_driver_rss_inputs_mb": rss_inputs,
          # 1M rows at this run's steady rate plus its start-up: a projection, not a measurement
          "score_reasons_1m_s_projected": 1_000_000 / big["window_rows_per_s"] + big["startup_s"]})


def shap_kernel(model, rows: int = 300, repeat: int = 3) -> dict:
    """The exact-SHAP kernel on one core: rows per CPU-second (float64, float32; 2^17- and 2^19-float
    blocks), interleaved so that a load change hits every variant alike; its floating-point rate from an
    analytic count of the work (2^q coalitions of every (patient, background row) pair with q active
    features, each through the coalition product, the hidden layers and the Shapley weights) against
    numpy's matmul on the same shapes and on 512x512 (one BLAS thread: the kernel's setting).

    CPU seconds (time.process_time), not wall: on a shared machine a process's CPU time is what its core
    did for it."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    import core.explain.shapley as shapley  # _BLOCK: the block size lever, set here and restored
    from core.data import demo_cohort
    from core.explain import explain

    pre, nets, background = model.preprocessor_, model.networks_, model.background_
    raw = pre.encode(demo_cohort(rows, seed=3))
    net = nets[0]
    widths = [W.shape[1] for W, _ in net.layers]
    W1 = net.first[0]
    cx = np.stack([pre.encode_feature_values(j, raw[:, j]) @ W1[sl] for j, sl in enumerate(pre.slices_)], axis=1)
    cb = np.stack([pre.encode_feature_values(j, background[:, j]) @ W1[sl] for j, sl in enumerate(pre.slices_)],
                  axis=1)
    q = np.any(cx[:, None] != cb[None], axis=3).sum(axis=2).ravel().astype(float)
    h1 = widths[0]
    per_coalition = 2 * h1 * (q + 1) + h1 + 2 * q  # coalition product, first activation, Shapley weights
    for k in range(1, len(widths)):
        per_coalition = per_coalition + 2 * widths[k - 1] * widths[k] + 2 * widths[k]
    flops = float((2.0 ** q * per_coalition).sum()) * len(nets)

    variants = {"float64": ("float64", 1 << 17), "float32": ("float32", 1 << 17),
                "float64_block_2^19": ("float64", 1 << 19), "float32_block_2^19": ("float32", 1 << 19)}
    cpu = {k: [] for k in variants}
    additivity = {}
    block = shapley._BLOCK
    try:
        explain(pre, nets, raw[:20], background, n_threads=1)
        for _ in range(repeat):
            for name, (precision, size) in variants.items():
                shapley._BLOCK = size
                t0 = time.process_time()
                e = explain(pre, nets, raw, background, n_threads=1, precision=precision)
                cpu[name].append(time.process_time() - t0)
                additivity[name] = float(np.max(np.abs(e.base_value + e.shap_values.sum(axis=1) - e.output)))
    finally:
        shapley._BLOCK = block
    best = {k: min(v) for k, v in cpu.items()}

    def gflops(a_shape, b_shape, dtype, reps=30):
        a, b = np.random.rand(*a_shape).astype(dtype), np.random.rand(*b_shape).astype(dtype)
        out = np.empty((a_shape[0], b_shape[1]), dtype)
        np.matmul(a, b, out=out)
        t0 = time.process_time()
        for _ in range(reps):
            np.matmul(a, b, out=out)
        return 2 * a_shape[0] * a_shape[1] * b_shape[1] * reps / max(time.process_time() - t0, 1e-9) / 1e9

    qm = int(np.median(q))
    m = max(1, (1 << 17) // ((1 << qm) * h1))  # pairs per block at the median q, as the kernel cuts them
    matmul = {}
    with threadpool_limits(1, "blas"):
        for dtype in ("float64", "float32"):
            matmul[dtype] = {
                "coalition_product": gflops((h1 * m, qm + 1), (qm + 1, 1 << qm), dtype),
                "hidden_layer": gflops((widths[1], h1), (h1, m << qm), dtype) if len(widths) > 2 else None,
                "square_512": gflops((512, 512), (512, 512), dtype, reps=5),
            }
    return {
        "shap_kernel_rows": rows, "shap_kernel_background_rows": int(len(background)),
        "shap_kernel_mean_active_features": float(q.mean()),
        "shap_kernel_gflop_per_row": flops / rows / 1e9,
        "shap_kernel_rows_per_cpu_s": {k: rows / v for k, v in best.items()},
        "shap_kernel_cpu_s_runs": cpu,
        "shap_kernel_gflops": {k: flops / v / 1e9 for k, v in best.items()},
        "shap_kernel_additivity_max_error": additivity,
        "numpy_matmul_gflops_1_thread": matmul,
        "shap_kernel_rows_per_core_s_float64": rows / best["float64"],
        "shap_kernel_rows_per_core_s_float32": rows / best["float32"],
        "shap_kernel_float32_x": best["float64"] / best["float32"],
        "shap_kernel_block_2^19_x": best["float64"] / best["float64_block_2^19"],
        "shap_kernel_gflops_float64": flops / best["float64"] / 1e9,
        "shap_kernel_share_of_matmul_peak": flops / best["float64"] / 1e9 / matmul["float64"]["square_512"],
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("batch", "big"):
        (_child if sys.argv[1] == "batch" else _big_child)(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
