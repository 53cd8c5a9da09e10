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
