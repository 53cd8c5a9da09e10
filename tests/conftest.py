"""Shared fixtures. The real UCI Cleveland file is read from ../shared (never copied into the repo)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from browser_fixtures import browser, page, server  # noqa: E402,F401  (one copy for every browser test file)


def cleveland_file() -> Path:
    """Where the real Cleveland file is: $HEART_DATA_DIR, else ../shared/data/uci-heart-disease."""
    base = Path(os.environ.get("HEART_DATA_DIR", ROOT.parent / "shared" / "data" / "uci-heart-disease"))
    return base / "processed.cleveland.data"


@pytest.fixture(scope="session")
def cleveland_path() -> Path:
    path = cleveland_file()
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the UCI Cleveland file is missing at {path}")
        pytest.skip(f"UCI Cleveland file not found at {path} (set HEART_DATA_DIR)")
    return path


# Hypothesis: deterministic in CI (a red CI must be reproducible), no deadline (the machine is shared).
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Run every AppTest run as a live server runs all but its very first script run: in st.navigation mode.

    AppTest resets Streamlit's process-wide "legacy pages/ folder" flag before each run, so every run would
    start inside the legacy wrapper that a real server only uses once (and app.py leaves at once, with a
    rerun, before drawing anything). Here the flag is cleared right after AppTest's reset instead.
    """
    from streamlit.runtime.pages_manager import PagesManager

    from ui.legacy_pages import leave_legacy_pages_mode
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        leave_legacy_pages_mode()

    monkeypatch.setattr(PagesManager, "__init__", init)
