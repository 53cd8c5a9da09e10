"""The benchmark modules import the way their documented commands run them (outside pytest's sys.path),
so a refactor of the shared test helpers cannot silently break `python -m bench` or `python bench/dashboard.py`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    # cwd is the repo (as in the README), PYTHONPATH cleared: only the documented import path counts.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_every_bench_module_imports_as_the_readme_runs_it():
    modules = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem not in {"__init__", "__main__"})
    assert "dashboard" in modules and "run" in modules
    code = "import importlib; [importlib.import_module('bench.' + m) for m in %r]" % modules
    done = _run(["-c", code])
    assert done.returncode == 0, done.stderr[-2000:]


def test_dashboard_bench_runs_as_a_script():
    # `python bench/dashboard.py` puts bench/ (not the repo) first on sys.path.
    done = _run(["-c", "import sys; "
                       "sys.path.insert(0, 'bench'); "
                       "import importlib.util as u; s = u.spec_from_file_location('d', 'bench/dashboard.py'); "
                       "m = u.module_from_spec(s); s.loader.exec_module(m); print(callable(m.main))"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


def test_server_cpu_time_is_read_from_proc():
    import os
    import time

    from bench.dashboard import _process_cpu_ms
    before = _process_cpu_ms(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # 200 ms of CPU in this process
        pass
    after = _process_cpu_ms(os.getpid())
    assert before is not None and after - before >= 150
    assert _process_cpu_ms(2 ** 22 + 7) is None  # no such process: no number, no exception


def _report(pid, start, end, rows, peak=300.0):
    return {"worker_pid": pid, "started_at": start, "ended_at": end, "rows": rows, "worker_peak_rss_mb": peak}


def test_batch_steady_rate_counts_from_when_every_worker_was_ready():
    """Worker 2 was ready 10 s after worker 1: the steady window starts then; worker 1's part running
    across that moment counts for its share after it. A worker restarted later (pid 3) does not move the
    window's start. The window rate counts everything from the first part's start."""
    from bench._batch import _steady
    ready = {1: 0.0, 2: 10.0, 3: 25.0}
    parts = [_report(1, 0, 12, 1200), _report(1, 12, 22, 1000), _report(2, 10, 20, 1000), _report(2, 20, 22, 200),
             _report(3, 25, 30, 500)]
    for r in parts:
        r["actor_ready_at"] = ready[r["worker_pid"]]
    out = _steady({"parts": {str(k): r for k, r in enumerate(parts)}}, workers=2)
    assert out["steady_from_s"] == 10 and out["steady_s"] == 20
    assert abs(out["steady_rows_per_s"] - (200 + 1000 + 1000 + 200 + 500) / 20) < 1e-9
    assert out["window_s"] == 30 and abs(out["window_rows_per_s"] - 3900 / 30) < 1e-9
    inline = _steady({"parts": {"a": _report(1, 5, 15, 1000)}})
    assert inline["steady_rows_per_s"] == inline["window_rows_per_s"] == 100.0


def test_batch_worker_memory_is_read_at_each_row_checkpoint_and_at_the_end():
    from bench._batch import _workers_memory
    parts = [_report(1, 0, 1, 50_000, 310.0), _report(2, 0, 2, 60_000, 305.0), _report(1, 1, 3, 900_000, 312.0)]
    marks = _workers_memory(parts, (100_000,))
    assert marks == [{"rows_done": 110_000, "peak_mb_by_worker": {1: 310.0, 2: 305.0}},
                     {"rows_done": 1_010_000, "peak_mb_by_worker": {1: 312.0, 2: 305.0}}]


def test_batch_sections_fill_the_1m_keys_only_from_a_run_of_1m_rows(monkeypatch):
    from types import SimpleNamespace

    from bench import _batch, run
    big = {"score_reasons_big_s": 600.0, "score_reasons_big_driver_peak_rss_mb": 250.0,
           "score_reasons_big_worker_peak_rss_mb": 320.0, "score_reasons_1m_s_projected": 590.0,
           "score_reasons_big_load_average": {"start": [1.0, 1.0, 1.0], "end": [2.0, 2.0, 2.0]}}
    monkeypatch.setattr(_batch, "batch_scoring_big", lambda bundle, rows: dict(big))
    section = lambda name, fn: fn()  # noqa: E731
    results = {"notes": {"score_reasons_1m_s": "not run"}, "other_key": 1}
    run.batch_sections(SimpleNamespace(batch_compare_rows=0, quick=False, batch_rows=1_000_000), "b", results,
                       section)
    assert results["score_reasons_1m_s"] == 600.0 and results["score_reasons_peak_rss_mb_1m"] == 320.0
    assert results["score_reasons_1m_load_average"] == big["score_reasons_big_load_average"]
    assert "score_reasons_1m_s" not in results["notes"] and results["other_key"] == 1
    small = {"notes": {}}
    run.batch_sections(SimpleNamespace(batch_compare_rows=0, quick=False, batch_rows=100_000), "b", small, section)
    assert small["score_reasons_1m_s"] is None and "projected" in small["notes"]["score_reasons_1m_s"]
