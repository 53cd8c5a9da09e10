"""Fixtures the browser test files share (a pytest plugin, registered in tests/conftest.py): one Chromium and
one dashboard with an empty model store per test module, and a fresh browser context per test. A module
that needs another server (signed-in, say) defines its own ``server``; module fixtures override these."""
from __future__ import annotations

import pytest

from browser_util import BrowserMissing, launch_browser, new_page, start_server, stop_server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # only the browser tests pay for it
    with sync_playwright() as playwright:
        try:
            browser = launch_browser(playwright)
        except BrowserMissing as exc:  # a missing browser is red, not skipped
            pytest.fail(str(exc), pytrace=False)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    base = tmp_path_factory.mktemp(request.module.__name__)
    (base / "store").mkdir()
    server = start_server(base / "store", base / "streamlit.log")
    yield server
    stop_server(server)


@pytest.fixture
def page(browser):
    context, page = new_page(browser)
    yield page
    context.close()
