"""Driving the live dashboard in Debian's Chromium: start it (`python -m ui.serve`) on a free port, open
pages, wait on Streamlit's own state, take readable full-page screenshots.

Shared by tests/test_browser.py and bench/dashboard.py. No pytest here: a missing browser raises
BrowserMissing and the caller decides (the tests fail, never skip).
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

try:
    from i18n_table import tr  # under pytest: tests/ is on sys.path
except ModuleNotFoundError:  # imported as tests.browser_util by bench/dashboard.py
    from tests.i18n_table import tr

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("HEART_RISK_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 900}  # a common clinic laptop; the README's screenshots
SCREENSHOT_LIMIT = 400_000  # bytes: the README shows these images

# Streamlit's root element says whether a script run is going on (its own e2e tests wait on it).
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'


class BrowserMissing(RuntimeError):
    pass


# ---- the server --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path
    started: float  # time.perf_counter() just before the process was spawned
    env: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_server(store: Path, log_path: Path, warm_tensorflow: bool = True, timeout: float = 60.0,
                 wait: bool = True, file_watcher: str | None = "none", launcher: bool = True,
                 port: int | None = None) -> Server:
    """The dashboard on a free localhost port, with the model store in ``store``: started as
    scripts/start.sh starts it (`python -m ui.serve`), or with ``launcher=False`` as `streamlit run app.py`.

    The file watcher is off by default: the tree may change while the tests run (other work in progress),
    and a module reloaded under a running training thread is not what is being tested. ``None`` keeps
    whatever .streamlit/config.toml says (what `scripts/start.sh` gets).
    """
    port = free_port() if port is None else port
    env = dict(os.environ, HEART_RISK_STORE=str(store), TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    if not warm_tensorflow:
        env["HEART_RISK_WARM_TF"] = "0"
    start = ["-m", "ui.serve"] if launcher else ["-m", "streamlit", "run", "app.py"]
    cmd = [sys.executable, *start, "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    if file_watcher is not None:
        cmd += ["--server.fileWatcherType", file_watcher]
    log = open(log_path, "wb")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child has its own handle
    server = Server(proc, port, log_path, started, env)
    if wait:
        wait_healthy(server, timeout)
    return server


def wait_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/_stcore/health"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


# ---- the browser -------------------------------------------------------------------------------
def chromium_path() -> str:
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        raise BrowserMissing(f"Chromium not found at {CHROMIUM!r}: install Debian's package (`apt-get install "
                             "chromium`, as scripts/test.sh does) or set HEART_RISK_CHROMIUM. Browser tests never skip.")
    return path


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=LAUNCH_ARGS)


def new_page(browser, timeout_ms: float = 30_000):
    """A fresh browser context (a new Streamlit session: its own cohort and model) with one page."""
    context = browser.new_context(viewport=dict(VIEWPORT), locale="en-US")
    context.set_default_timeout(timeout_ms)
    return context, context.new_page()


def wait_idle(page, timeout_ms: float = 30_000) -> None:
    """No script run going on. Only meaningful once the change that starts a run was seen to land."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def sidebar(page):
    return page.get_by_test_id("stSidebar")


def nav_link(page, nav_key: str, lang: str = "en"):
    """A sidebar navigation link by its exact label ("Cohort" is also part of other pages' labels)."""
    return sidebar(page).get_by_test_id("stSidebarNav").get_by_role("link", name=tr(nav_key, lang), exact=True)


def go_to(page, nav_key: str, lang: str = "en") -> None:
    """Open a page through the sidebar's navigation (a URL load would start a new session)."""
    nav_link(page, nav_key, lang).click()
    heading = {"nav.cohort": "cohort.title", "nav.train": "train.title", "nav.patient": "patient.title",
               "nav.explain": "explain.title", "nav.model_card": "card_page.title",
               "nav.scoring": "scoring.title", "nav.trust": "trust.title"}[nav_key]
    page.get_by_role("heading", name=tr(heading, lang), level=1).wait_for()


def choose(page, selectbox, option: str) -> None:
    """Pick ``option`` in a Streamlit selectbox (a baseweb combobox: open it, click the option)."""
    selectbox.locator("input").click()
    page.get_by_role("option", name=option, exact=True).click()


def number_input(page, label: str):
    return page.get_by_test_id("stNumberInput").filter(has_text=label).locator("input")


def text_input(page, label: str):
    """A text field by its label (the patient form's measurements are text fields read by ui.numbers)."""
    return page.get_by_test_id("stTextInput").filter(has_text=label).locator("input")


def wait_charts_drawn(page, timeout_ms: float = 30_000) -> None:
    """Every element's code has loaded (Streamlit shows a skeleton until then: charts and tables come in
    chunks fetched on first use) and every Plotly chart has drawn its SVG."""
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stSkeleton"]')
                 && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                    .every(el => el.querySelector('.main-svg'))""", timeout=timeout_ms)


def screenshot(page, path: Path, limit: int = SCREENSHOT_LIMIT) -> Path:
    """The whole page as a PNG under ``limit`` bytes.

    Streamlit scrolls inside its main element, not the document, so full_page alone stops at the window:
    the viewport is stretched to the content's height for the shot, then put back.
    """
    # No hover or focus styling in the picture (the sidebar's collapse button, a red input border).
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    wait_idle(page)
    wait_charts_drawn(page)
    height = page.evaluate("""() => Math.max(window.innerHeight,
        ...['stMain', 'stSidebarContent'].map(id => {
            const el = document.querySelector(`[data-testid="${id}"]`); return el ? el.scrollHeight : 0; }))""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(height)})
    try:
        wait_charts_drawn(page)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        data = page.screenshot(full_page=True, animations="disabled", caret="hide")
    finally:
        page.set_viewport_size(dict(VIEWPORT))
    if len(data) > limit:  # a palette PNG: charts and text on white lose nothing visible
        from PIL import Image
        image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- dashboard steps ---------------------------------------------------------------------------
def open_dashboard(page, server: Server) -> None:
    page.goto(server.url)
    page.get_by_role("heading", name=tr("cohort.title"), level=1).wait_for()
    sidebar(page).get_by_text(tr("sidebar.cohort")).wait_for()


def write_cohort_csv(path: Path, n: int = 250, seed: int = 11) -> Path:
    """A hospital-style export of synthetic patients: semicolon separated, GB18030, Cleveland header plus a
    ward column in Chinese (so the encoding matters)."""
    from core.data import demo_cohort
    df = demo_cohort(n=n, seed=seed)
    df["科室"] = ["心内科门诊" if i % 2 else "胸痛中心" for i in range(len(df))]
    path.write_bytes(df.to_csv(sep=";", index=False, float_format="%g").encode("gb18030"))
    return path


def upload_cohort(page, path: Path) -> None:
    """Choose the upload source on the Cohort page and hand the file to the uploader."""
    page.get_by_role("radio", name=tr("cohort.source_upload")).click()
    uploader = page.get_by_test_id("stFileUploader")
    uploader.locator('input[type="file"]').set_input_files(str(path))


def train(page, epochs: int = 15, timeout_ms: float = 120_000) -> None:
    """Train a model from the Train page's form; returns when the results are drawn."""
    go_to(page, "nav.train")
    number_input(page, tr("train.epochs")).fill(str(epochs))
    page.get_by_test_id("stFormSubmitButton").get_by_role("button").click()
    page.get_by_role("heading", name=tr("train.results")).wait_for(timeout=timeout_ms)
    wait_idle(page)


def cohort_rows(page):
    """The Cohort page's patient count (a key figure: Markdown, not st.metric)."""
    return page.locator(".st-key-figure_rows h3")


def risk_metric(page, lang: str = "en"):
    """The patient's risk: the first metric of that name (similar patients repeat it further down)."""
    return page.get_by_test_id("stMetric").filter(has_text=tr("patient.risk", lang)).first


def risk_text(page) -> str:
    return risk_metric(page).get_by_test_id("stMetricValue").inner_text().strip()


def waterfall_signature(page) -> str:
    """What the drawn waterfall says (its bars' labels and values), to see it change."""
    return page.evaluate(WATERFALL_JS)


WATERFALL_JS = """() => {
    const el = document.querySelector('.st-key-waterfall .js-plotly-plot');
    return el && el.data ? JSON.stringify(el.data.map(d => [d.x, d.y, d.text])) : null; }"""
