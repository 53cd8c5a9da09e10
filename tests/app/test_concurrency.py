"""Several clinicians at once: 8 dashboard sessions in one process, each uploading its own cohort,
training its own model and scoring a patient, all at the same time.

Sessions are AppTest instances, one thread each, sharing one process as the sessions of one Streamlit
server do (st.cache_resource, the Keras trainers, TensorFlow's threads are shared; st.session_state is
not). AppTest was written for one test at a time: each run installs a mock Runtime in a class attribute,
sets ``global.appTest`` and resets both when it ends, which would pull them away from the other threads'
runs. The test installs one Runtime and one script cache for all sessions (as a server has one of each)
and sets the option once; everything else — script runs, widget state, uploads, session state — is AppTest's, per session.

Printed with ``pytest -s`` and recorded in docs/operations.md: memory per session (growth of the
process's resident memory over the 8 sessions, divided by 8) and the time of a Patient-page rerun while
the other sessions upload and train.
"""
from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data import demo_cohort

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
SESSIONS = 8
RERUNS = 4


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture
def shared_runtime(monkeypatch, tmp_path):
    """One Runtime for every concurrent session, and ``global.appTest`` on for the whole test."""
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test
    from streamlit.testing.v1.util import patch_config_options

    # What AppTest._run builds for each run (Streamlit 1.67), built once.
    runtime = MagicMock(spec=Runtime)
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.dataframe_source_mgr = DataframeSourceManager()
    runtime.cache_storage_manager = MemoryCacheStorageManager()
    components = BidiComponentManager()
    components.discover_and_register_components(start_file_watching=False)
    runtime.bidi_component_registry = components

    class KeepsItsRuntime(type):
        def __setattr__(cls, name, value):
            if name != "_instance":  # AppTest's per-run install and reset are ignored
                super().__setattr__(name, value)

    class SessionRuntime(metaclass=KeepsItsRuntime):
        pass

    monkeypatch.setattr(app_test, "Runtime", SessionRuntime)
    monkeypatch.setattr(Runtime, "_instance", runtime)
    monkeypatch.setattr(app_test, "patch_config_options", lambda options: contextlib.nullcontext())
    # A server compiles each page once into its runtime's script cache, under a lock; AppTest makes a
    # new cache per run, and on CPython 3.11 ast.parse in several threads at once can fail with a spurious
    # "AST constructor recursion depth mismatch" (python/cpython#106905). One cache, as on a server.
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    scripts = ScriptCache()
    monkeypatch.setattr(app_test, "ScriptCache", lambda: scripts)
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")
    with patch_config_options({"global.appTest": True}):
        yield


def ward_cohort(i: int) -> tuple[str, bytes]:
    """A different cohort per session: its own patients, its own size, its own file name."""
    df = demo_cohort(n=150 + 10 * i, seed=100 + i)
    return f"ward-{i}.csv", df.to_csv(index=False).encode()


def widget(elements, label: str):
    return next(w for w in elements if w.label == label)


def session(i: int, results: dict, start: threading.Barrier) -> None:
    """One clinician: open the app, upload the ward's cohort, train 5 epochs, score a patient."""
    from ui.i18n import table
    tr = lambda key: table()[key]["en"]  # noqa: E731
    out = results[i] = {"errors": [], "latencies": []}

    def check(step: str) -> None:
        out["errors"] += [f"{step}: {e.message or e.value} {' | '.join(e.stack_trace[-6:])}" for e in at.exception]

    try:
        name, data = ward_cohort(i)
        at = AppTest.from_file(APP, default_timeout=300)
        at.session_state["lang"] = "en"
        start.wait()
        at.run()
        at.segmented_control(key="cohort_source@en").set_value("upload").run()
        at.file_uploader(key="cohort_upload").set_value((name, data, "text/csv")).run()
        check("upload")
        out["cohort"] = at.session_state["cohort"]
        at.switch_page("pages/train.py").run()
        widget(at.number_input, tr("train.epochs")).set_value(5)
        widget(at.number_input, tr("train.seed")).set_value(i)
        at.get("form_submit_button")[0].click().run()
        job = at.session_state["train_job"]
        assert job.wait(300), "training did not finish"
        at.run()
        check("train")
        out["model"] = at.session_state["model"]
        out["meta"] = at.session_state["model_meta"]
        at.switch_page("pages/patient.py").run()
        check("patient")
        out["first_risk"] = widget(at.metric, tr("patient.risk")).value
        heart_rate = lambda: widget(at.text_input, "Max heart rate (bpm)")  # noqa: E731
        hr = heart_rate()
        for k in range(RERUNS):  # a what-if change, timed as the clinician waits for it
            hr.set_value(f"{float(hr.value) + (5 if k % 2 == 0 else -5):g}")
            t0 = time.perf_counter()
            at.run()
            out["latencies"].append(time.perf_counter() - t0)
            check(f"what-if {k + 1}")
            hr = heart_rate()
        out["texts"] = " ".join(str(getattr(e, "value", "")) for kind in ("text", "caption", "markdown", "title", "metric")
                                for e in getattr(at, kind)) + " ".join(e.value for e in at.sidebar.text)
        out["app"] = at
    except Exception as exc:  # noqa: BLE001 - reported by the test with the session's number
        import traceback
        out["errors"].append(f"{type(exc).__name__}: {exc} {traceback.format_exc()[-1500:]}")


def test_eight_sessions_upload_train_and_score_at_once_without_seeing_each_other(shared_runtime):
    # One session alone first: it warms the process (imports, TensorFlow, the traced epoch), so that the
    # memory measured next is the sessions' own, and its reruns are the latency without load.
    alone: dict[int, dict] = {}
    session(SESSIONS, alone, threading.Barrier(1))
    assert alone[SESSIONS]["errors"] == []
    import gc
    gc.collect()
    before = rss_mb()

    results: dict[int, dict] = {}
    start = threading.Barrier(SESSIONS)
    threads = [threading.Thread(target=session, args=(i, results, start), name=f"clinician-{i}") for i in range(SESSIONS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()

    assert {i: r["errors"] for i, r in results.items() if r["errors"]} == {}
    assert len(results) == SESSIONS
    cohorts = [results[i]["cohort"] for i in range(SESSIONS)]
    models = [results[i]["model"] for i in range(SESSIONS)]
    for i in range(SESSIONS):
        name, data = ward_cohort(i)
        cohort, model, meta = results[i]["cohort"], results[i]["model"], results[i]["meta"]
        assert cohort.name == name and cohort.n == 150 + 10 * i  # its own cohort, nobody else's
        assert meta.extra.cohort["fingerprint"] == cohort.fingerprint  # trained on its own cohort
        assert model.n_train_ + model.n_val_ < cohort.n and model.config.seed == i
        others = [ward_cohort(j)[0] for j in range(SESSIONS) if j != i]
        assert name in results[i]["texts"] and not [o for o in others if o in results[i]["texts"]]
        assert 0 <= float(results[i]["first_risk"].rstrip("%")) <= 100
    assert len({id(c) for c in cohorts}) == len({id(m) for m in models}) == SESSIONS
    assert len({c.fingerprint for c in cohorts}) == SESSIONS

    latencies = sorted(x for i in range(SESSIONS) for x in results[i]["latencies"])
    per_session = (after - before) / SESSIONS
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    print(f"\n{SESSIONS} concurrent sessions in {wall:.1f} s: resident memory {before:.0f} -> {after:.0f} MB, "
          f"{per_session:.1f} MB per session; Patient-page rerun alone: median "
          f"{statistics.median(alone[SESSIONS]['latencies']) * 1000:.0f} ms; under the load of {SESSIONS} sessions: "
          f"median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
          f"({len(latencies)} reruns)")
    assert np.isfinite(per_session)
