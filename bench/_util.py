"""Small helpers shared by the benchmark sections: timers, peak memory, JSON from subprocesses."""
from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARK = "BENCH_JSON "


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter would drown the table; set before TF is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory, in MB.

    VmHWM from /proc/self/status, not ``getrusage(...).ru_maxrss``: Linux carries ru_maxrss across
    fork and exec, so a subprocess started by a 1 GB parent (TensorFlow loaded) reports at least 1 GB
    whatever it does itself (measured here). VmHWM belongs to the process's own address space.
    ru_maxrss (KiB on Linux) is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn, repeat: int, warmup: int = 0) -> tuple[float, list[float]]:
    """Median wall time of ``repeat`` calls after ``warmup`` untimed ones (the median shrugs off the
    occasional stall a shared machine throws in)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2, times


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def clean(value):
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit(result: dict) -> None:
    """A subprocess hands its numbers back as one marked JSON line on stdout."""
    print(_MARK + json.dumps(clean(result)), flush=True)


def run_subprocess(module: str, args: list[str], timeout: float) -> dict:
    """Run ``python -m module args`` in a fresh interpreter (cold imports, its own peak RSS) and
    return the JSON it emitted. Raises with the tail of stderr if it failed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{module} {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return json.loads(lines[-1][len(_MARK):])
