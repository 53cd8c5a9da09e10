"""Issue 18.6 and 18.9 in a real browser, with the shared password on: before signing in and after signing
out the page lists no links to the app's pages, and the server answers /_stcore/metrics to no one.
The server is started as scripts/start.sh starts it (python -m ui.serve)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from browser_util import (ROOT, Server, free_port, new_page, stop_server, tr,
                          wait_healthy)

from ui.auth import hash_password


PASSWORD = "a-test-password-18"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("signed-out")
    secrets = base / "secrets.toml"
    secrets.write_text(f'password_pbkdf2 = "{hash_password(PASSWORD, iterations=1000)}"\n')
    port = free_port()
    env = dict(os.environ, HEART_RISK_STORE=str(base / "store"), TF_CPP_MIN_LOG_LEVEL="2", HEART_RISK_WARM_TF="0")
    cmd = [sys.executable, "-m", "ui.serve", "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--secrets.files", str(secrets)]
    with open(base / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, port, base / "streamlit.log", time.perf_counter(), env)
    wait_healthy(server)
    yield server
    stop_server(server)


def page_links(page) -> int:
    return page.get_by_test_id("stSidebarNav").get_by_role("link").count()


def test_no_page_links_before_sign_in_and_after_sign_out(server, browser):
    context, page = new_page(browser)
    try:
        page.goto(server.url)
        password = page.get_by_test_id("stTextInputField")
        password.wait_for()
        page.wait_for_timeout(1500)  # the run has ended: whatever links it sends are there
        assert page_links(page) == 0
        password.fill(PASSWORD)
        page.get_by_role("button", name=tr("auth.login")).click()
        page.get_by_test_id("stSidebarNav").get_by_role("link").first.wait_for()
        assert page_links(page) >= 7
        page.get_by_role("button", name=tr("auth.logout")).click()
        page.get_by_test_id("stTextInputField").wait_for()
        page.wait_for_timeout(1500)
        assert page_links(page) == 0  # they stayed on screen after signing out
    finally:
        context.close()


def test_the_metrics_endpoint_is_closed(server):
    with urllib.request.urlopen(f"{server.url.rstrip('/')}/_stcore/metrics", timeout=10) as response:
        body = response.read().decode("utf-8", errors="replace")
        kind = response.headers.get("Content-Type", "")
    assert "openmetrics" not in kind and "# TYPE" not in body  # the app's page (any unknown path), no metrics
