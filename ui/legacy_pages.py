"""The one place that touches a private Streamlit API: leaving the legacy `pages/` folder mode.

The user asked for a top-level `pages/` folder, and Streamlit (1.67) runs an app that has one in its legacy
multipage mode until `st.navigation` is called, wrapping the first script run of a server (and every AppTest
run) in that mode; the sidebar's widgets then get another identity than on every later run (a lost first
click). Streamlit has no public switch for this: its own advice is to rename the folder (issues #10276 and
the `st.navigation was called in an app with a pages/ directory` warning), which the user's layout rules
out. So the flag is cleared here, and `tests/app/test_serve.py` fails when Streamlit moves or stops reading
it, so an upgrade cannot silently bring the lost click back.
"""
from __future__ import annotations


def leave_legacy_pages_mode() -> bool:
    """Clear Streamlit's process-wide legacy-pages flag; True when it was set (the caller may rerun)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # moved: tests/app/test_serve.py says so; the worst case is one lost first click
        return False
    was_set = bool(PagesManager.uses_pages_directory)
    PagesManager.uses_pages_directory = False
    return was_set
