"""Start the dashboard: `streamlit run app.py`, with the first page's imports done while the browser loads.

    python -m ui.serve [streamlit options]        # what scripts/start.sh runs

Streamlit runs app.py only once a browser session connects, ~0.7 s after the server answers: the time
Chromium takes to fetch and parse Streamlit's frontend. That first run then spent ~0.75 s importing numpy,
pandas, scipy, pydantic and the app's own modules. Here a thread does that work as soon as the server
listens, while the browser is still busy with the frontend (started earlier, it slowed the server's own
start), and the interpreter switches threads every 1 ms instead of 5 ms. Only what the first page imports
is preloaded first; the rest waits until that page is drawn. Three things Streamlit did before the first
page are moved out of its way: its scan of all installed packages for components and the registration of
its Plotly template (both now after the first page is drawn, with the figure modules and the other pages'
bytecode), and app.py's rerun out of the legacy pages-folder mode (not needed). bench/dashboard.py
measures the first page both ways. `streamlit run app.py` still works; its first page is that much slower.

TensorFlow is not imported here: it would take the CPU the first page needs (app.py warms it after the
first page is drawn).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from ui.legacy_pages import leave_legacy_pages_mode

APP = Path(__file__).resolve().parent.parent / "app.py"
SWITCH_INTERVAL_S = 0.001
BLAS_THREADS = "1"


def limit_blas_threads() -> None:
    """numpy's OpenBLAS gets one thread per call (said before numpy is imported; an operator's
    OPENBLAS_NUM_THREADS wins). The server's numpy work is many small products (one patient's 8,192 SHAP
    coalitions, a what-if search): a second BLAS thread saved no wall time but spun on the other core, the
    one the browser and the other sessions need. The what-if search took 12 ms of CPU with one thread and
    24 ms with two; with the what-if tab open, the server's CPU per form change fell from ~190 to ~70 ms.
    TensorFlow trains on its own threads, not OpenBLAS's."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)


PLOTLY_OBJECTS = "plotly.graph_objects"


@contextmanager
def plotly_theme_deferred() -> Iterator[None]:
    """Around Streamlit's import: it registers its Plotly template ("streamlit" in plotly.io.templates) by
    building a Template from plotly.graph_objects, ~0.12 of the ~0.43 s the import takes, all before the
    server listens. Inside this block that import fails on purpose, so Streamlit skips the template as it
    does when Plotly is not installed; register_plotly_theme() adds it once the first page is drawn.
    Streamlit's charts never read it (their theme is applied in the browser): it exists for figures that
    name it, and none of this app's do."""
    blocked = PLOTLY_OBJECTS not in sys.modules
    if blocked:
        sys.modules[PLOTLY_OBJECTS] = None  # an import of it raises ImportError
    try:
        yield
    finally:
        if blocked and PLOTLY_OBJECTS in sys.modules and sys.modules[PLOTLY_OBJECTS] is None:
            del sys.modules[PLOTLY_OBJECTS]


def register_plotly_theme() -> None:
    """Streamlit's Plotly template, as its import would have registered it (see plotly_theme_deferred)."""
    try:
        from streamlit.elements.lib.streamlit_plotly_theme import configure_streamlit_plotly_theme
        configure_streamlit_plotly_theme()
    except ImportError:  # moved in another Streamlit: its import registered the template itself
        pass


def wait_until_listening(timeout: float = 30.0) -> None:
    """Until Streamlit's runtime has started its server (or ``timeout``: then preload anyway)."""
    from streamlit.runtime import Runtime, RuntimeState
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Runtime.exists() and Runtime.instance().state != RuntimeState.INITIAL:
            return
        time.sleep(0.02)


FIRST_SCRIPTS = [APP, APP.parent / "pages" / "cohort.py"]  # what the first page runs


def compile_scripts(script_cache, paths) -> None:
    """Scripts into Streamlit's script cache (what it compiles on a page's first run, under a lock, on the
    first visitor's time: ~60 ms for app.py and the Cohort page here)."""
    for path in paths:
        try:
            script_cache.get_bytecode(str(path))
        except Exception:  # noqa: BLE001 - a page that does not compile reports itself when it is opened
            pass


def runtime_script_cache():
    """The running Streamlit's script cache, or None (then scripts compile on first use, as usual)."""
    try:
        from streamlit.runtime import Runtime
        return getattr(Runtime.instance(), "_script_cache", None)
    except Exception:  # noqa: BLE001 - moved in another Streamlit
        return None


FIRST_PAGE_WAIT_S = 15.0  # the second phase starts then even if no browser has come


def preload_first_page(cache) -> None:
    """Compile the first page's scripts, import what app.py and the Cohort page import and build the shared
    demo cohort. The first page's script ran into this work and waited for it (~0.9 s after the server
    listens), so nothing else is done before it."""
    try:
        if cache is not None:
            compile_scripts(cache, FIRST_SCRIPTS)
        from ui.state import shared_demo_cohort
        shared_demo_cohort()  # fills the cache the first session reads (st.cache_resource: one per process)
        import core.data.uci  # noqa: F401
        import ui.common, ui.shell  # noqa: F401,E401
    except Exception:  # noqa: BLE001 - a failed preload costs only the head start; the page's import reports it
        pass


def preload_rest(component_scan: Callable[[], None], cache) -> None:
    """What the first page does not need: Streamlit's Plotly template, the figure modules, Streamlit's
    component scan (deferred from its start) and the other pages' bytecode. Done before the first page's
    script had finished, it slowed that script by taking the GIL and the CPU (bench/dashboard.py)."""
    try:
        # PIL first: plotly looks it up in sys.modules and must not find it half-imported (ui/jobs.py).
        from ui.jobs import import_shared_modules
        import_shared_modules()
        register_plotly_theme()
        from core import plots  # noqa: F401
        import ui.figures  # noqa: F401
    except Exception:  # noqa: BLE001 - the pages import these themselves
        pass
    component_scan()  # logs its own failures (Streamlit's code)
    if cache is not None:
        compile_scripts(cache, sorted((APP.parent / "pages").glob("*.py")))


def first_page_drawn(timeout: float) -> None:
    """Until this process has drawn a first page (ui.state.FIRST_PAGE_DRAWN), at most ``timeout``."""
    try:
        from ui.state import FIRST_PAGE_DRAWN
    except Exception:  # noqa: BLE001 - an app that does not import: nothing to wait for
        return
    FIRST_PAGE_DRAWN.wait(timeout)


def preload(component_scan: Callable[[], None] = lambda: None) -> None:
    """Once the server listens: the first page's imports; once that page is drawn: the rest."""
    wait_until_listening()
    cache = runtime_script_cache()
    preload_first_page(cache)
    first_page_drawn(FIRST_PAGE_WAIT_S)
    preload_rest(component_scan, cache)


def skip_use_warning() -> None:
    """Before the first element a process draws, Streamlit checks whether it runs in a REPL (to warn that
    apps need `streamlit run`): inspect.stack(), which resolves the real path of every loaded module's file,
    ~1,650 modules once the first page's imports are in: 0.2-0.4 s of the first page's script. This process
    is `streamlit run` by construction, so that check is marked done."""
    try:
        from streamlit import delta_generator
    except ImportError:
        return
    if hasattr(delta_generator, "_use_warning_has_been_displayed"):  # else: moved; the check runs as usual
        delta_generator._use_warning_has_been_displayed = True


def defer_component_scan() -> Callable[[], None]:
    """Streamlit scans the metadata of every installed package for "v2 components" before its server
    listens (~0.2 s here; this app uses none). Returns the scan, to run once the server listens."""
    try:
        from streamlit.components.v2.component_manager import BidiComponentManager
    except ImportError:  # moved in another Streamlit: scan at start as usual
        return lambda: None
    scan = BidiComponentManager.discover_and_register_components
    pending = []
    BidiComponentManager.discover_and_register_components = lambda self, **kw: pending.append((self, kw))

    def run_pending() -> None:
        BidiComponentManager.discover_and_register_components = scan
        for manager, kw in pending:
            scan(manager, **kw)
    return run_pending


def skip_legacy_pages_mode() -> None:
    """Streamlit sees pages/ and first runs app.py in its legacy pages-folder mode; app.py leaves that mode
    with an extra rerun (~0.2 s of the first page). Said up front here, that rerun never happens."""
    leave_legacy_pages_mode()


def close_metrics_endpoint() -> None:
    """Serve no /_stcore/metrics. Streamlit answers it to anyone, signed in or not (session counts, cache
    sizes, per-page activity), and 1.67 has no option to turn it off; the dashboard does not use it. The
    Starlette server builds its routes from ``create_metrics_routes``: replaced by one that adds none.
    Another Streamlit layout leaves the endpoint as it is (docs/operations.md says so)."""
    try:
        from streamlit.web.server.starlette import starlette_app
    except ImportError:
        return
    if hasattr(starlette_app, "create_metrics_routes"):
        starlette_app.create_metrics_routes = lambda runtime, base_url: []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    limit_blas_threads()  # first: Streamlit's import below imports numpy
    # Streamlit's command line (and so all of Streamlit) is imported here first, so the preload thread
    # never meets a half-imported Streamlit module.
    with plotly_theme_deferred():
        from streamlit.web import cli
    sys.path.insert(0, str(APP.parent))
    # One process serves the browser's files and runs the scripts: a thread holding the GIL (an import, a
    # page's pandas work) made the web server (Uvicorn) wait up to 5 ms at each switch while it sent
    # Streamlit's 9 MB frontend. 1 ms lets it in sooner; heavy numerics (TensorFlow, numpy) release the GIL.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    skip_legacy_pages_mode()
    skip_use_warning()
    close_metrics_endpoint()
    scan = defer_component_scan()
    threading.Thread(target=preload, args=(scan,), daemon=True, name="preload").start()
    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main(prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
