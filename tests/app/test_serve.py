"""ui/serve.py, the launcher scripts/start.sh runs: what it moves out of the first page's way still happens.
(The browser tests and bench/dashboard.py start every server through it.)"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from streamlit.components.v2 import manifest_scanner
from streamlit.components.v2.component_manager import BidiComponentManager
from streamlit.runtime.pages_manager import PagesManager

from ui import serve

ROOT = Path(__file__).resolve().parents[2]


def fresh_python(code: str, env: dict | None = None) -> str:
    """What ``code`` prints in a new interpreter from the project's root (this test process has long
    imported everything a launcher must import in its own order)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture
def scans(monkeypatch):
    calls = []
    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", lambda *a, **k: calls.append(1) or [])
    original = BidiComponentManager.discover_and_register_components
    yield calls
    BidiComponentManager.discover_and_register_components = original


def test_the_component_scan_is_deferred_then_run_once(scans):
    run_pending = serve.defer_component_scan()
    manager = BidiComponentManager()
    manager.discover_and_register_components(start_file_watching=False)  # what Runtime() does at start
    assert scans == []  # not before the server listens
    run_pending()
    assert scans == [1]
    manager.discover_and_register_components(start_file_watching=False)  # the real method is back
    assert scans == [1, 1]


def test_preload_imports_the_first_page_first_and_the_rest_after_it():
    code = ("import sys; from ui import serve\n"
            "with serve.plotly_theme_deferred():\n    import streamlit\n"
            "import plotly.io as pio\n"
            "seen = lambda: [sorted(m for m in ('core.data', 'ui.state', 'ui.common', 'ui.figures', "
            "'tensorflow', 'keras') if m in sys.modules), 'streamlit' in pio.templates]\n"
            "serve.preload_first_page(None); print(seen())\n"
            "done = []; serve.preload_rest(lambda: done.append(1), None); print(seen(), done)")
    first, rest = fresh_python(code).splitlines()
    assert first == "[['core.data', 'ui.common', 'ui.state'], False]"
    assert rest == "[['core.data', 'ui.common', 'ui.figures', 'ui.state'], True] [1]"


def test_the_rest_of_the_preload_waits_for_the_first_page(monkeypatch):
    from ui import state
    calls = []
    monkeypatch.setattr(state, "FIRST_PAGE_DRAWN", threading.Event())
    monkeypatch.setattr(serve, "wait_until_listening", lambda **kw: None)
    monkeypatch.setattr(serve, "runtime_script_cache", lambda: None)
    monkeypatch.setattr(serve, "preload_first_page", lambda cache: calls.append("first"))
    monkeypatch.setattr(serve, "preload_rest", lambda scan, cache: calls.append("rest"))
    thread = threading.Thread(target=serve.preload)
    thread.start()
    thread.join(0.5)
    assert calls == ["first"] and thread.is_alive()  # the first page has not been drawn
    state.FIRST_PAGE_DRAWN.set()
    thread.join(10)
    assert calls == ["first", "rest"] and not thread.is_alive()


@pytest.mark.parametrize("warm", ["0", "1"])
def test_the_end_of_the_first_script_run_says_the_first_page_is_drawn(monkeypatch, warm):
    from ui import jobs, state
    monkeypatch.setattr(state, "FIRST_PAGE_DRAWN", threading.Event())
    monkeypatch.setattr(state, "_warm_thread", None)
    monkeypatch.setattr(jobs, "import_tensorflow", lambda: None)  # not the real 7 s import
    monkeypatch.setenv(state.WARM_ENV, warm)
    state.warm_tensorflow()
    assert state.FIRST_PAGE_DRAWN.is_set()


def test_streamlits_plotly_template_is_registered_after_its_import_not_during_it():
    # In a fresh interpreter, as the launcher imports Streamlit: the template is not built on the way to the
    # server's start, plotly.graph_objects imports normally afterwards, and the preload registers the template
    # Streamlit registers itself (compared with a plain import of Streamlit in another interpreter).
    plain = fresh_python("import json; from streamlit.web import cli; import plotly.io as pio; "
                         "print(json.dumps(pio.templates['streamlit'].to_plotly_json(), sort_keys=True))")
    code = ("import json, sys; from ui import serve\n"
            "with serve.plotly_theme_deferred():\n    from streamlit.web import cli\n"
            "import plotly.io as pio; before = 'streamlit' in pio.templates\n"
            "import plotly.graph_objects as go; go.Figure()\n"
            "serve.register_plotly_theme()\n"
            "print(before, sys.modules['plotly.graph_objects'] is go)\n"
            "print(json.dumps(pio.templates['streamlit'].to_plotly_json(), sort_keys=True))")
    flags, registered = fresh_python(code).split("\n", 1)
    assert flags == "False True"
    assert registered == plain and '"colorscale"' in registered


def test_streamlit_still_runs_pages_folders_by_the_flag_we_clear():
    """ui.legacy_pages clears a private Streamlit flag (no public switch exists while pages/ is kept): fail
    loudly when an upgrade moves or stops reading it, instead of silently losing the first click again."""
    import inspect

    from streamlit.runtime import pages_manager
    from streamlit.runtime.scriptrunner import script_runner

    assert "uses_pages_directory" in vars(PagesManager)
    assert "if PagesManager.uses_pages_directory:" in inspect.getsource(script_runner)  # runs legacy mode by it
    assert 'PagesManager.uses_pages_directory = Path(' in inspect.getsource(pages_manager)  # set from pages/


def test_legacy_pages_mode_is_left_before_any_session(monkeypatch):
    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)
    serve.skip_legacy_pages_mode()
    assert PagesManager.uses_pages_directory is False


@pytest.mark.parametrize("operator_setting, threads", [(None, 1), ("2", 2)])
def test_numpy_gets_one_blas_thread_unless_the_operator_says_otherwise(operator_setting, threads):
    # In a fresh interpreter: numpy reads the setting once, when it is first imported.
    code = ("from ui import serve; serve.limit_blas_threads(); import numpy; "
            "from threadpoolctl import threadpool_info; "
            "print([p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if operator_setting:
        env["OPENBLAS_NUM_THREADS"] = operator_setting
    assert fresh_python(code, env) == f"[{threads}]"


def test_the_launcher_limits_blas_threads_before_it_imports_streamlit(monkeypatch):
    import streamlit.web.cli as cli
    order = []
    monkeypatch.setattr(serve, "limit_blas_threads", lambda: order.append("limit"))
    monkeypatch.setattr(serve, "skip_legacy_pages_mode", lambda: None)
    monkeypatch.setattr(serve, "defer_component_scan", lambda: (lambda: None))
    monkeypatch.setattr(serve.threading, "Thread", lambda *a, **k: type("T", (), {"start": lambda self: None})())
    monkeypatch.setattr(cli, "main", lambda **kw: order.append("streamlit") or 0)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    switch = sys.getswitchinterval()
    try:
        assert serve.main([]) == 0
    finally:
        sys.setswitchinterval(switch)
    assert order == ["limit", "streamlit"]


def test_the_repl_check_is_marked_done_before_the_first_element(monkeypatch):
    from streamlit import delta_generator, env_util
    monkeypatch.setattr(delta_generator, "_use_warning_has_been_displayed", False)
    monkeypatch.setattr(env_util, "is_repl", lambda: pytest.fail("inspect.stack() walked on the first page's time"))
    serve.skip_use_warning()
    delta_generator._maybe_print_use_warning()  # what Streamlit calls before drawing the first element
    assert delta_generator._use_warning_has_been_displayed is True


def test_scripts_are_compiled_into_streamlits_cache_once():
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    cache = ScriptCache()
    pages = sorted((ROOT / "pages").glob("*.py"))
    serve.compile_scripts(cache, [*serve.FIRST_SCRIPTS, *pages])
    # keyed as Streamlit keys them (absolute paths), so the first visit to a page finds its bytecode
    assert set(cache._cache) == {str(p.resolve()) for p in [ROOT / "app.py", *pages]}
    first = cache.get_bytecode(str(ROOT / "pages" / "cohort.py"))
    assert first is cache._cache[str((ROOT / "pages" / "cohort.py").resolve())]
    assert first.co_filename.endswith("cohort.py")


def test_no_page_relies_on_magic():
    """.streamlit/config.toml turns Streamlit's "magic" off: a bare expression on its own line would show
    nothing. None of the scripts has one (docstrings and calls are not magic)."""
    import ast
    import tomllib
    assert tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["runner"]["magicEnabled"] is False
    bare = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)) \
                    and not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                bare.append(f"{path.name}:{node.lineno}")
    assert bare == []
