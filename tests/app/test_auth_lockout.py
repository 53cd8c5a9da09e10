"""Issue 18.2 and 18.9: the password lockout holds across sessions (a reload gave five more tries), and
signing out forgets the uploaded file's bytes and hides the links to the pages."""
from __future__ import annotations

from pathlib import Path

import pytest
from i18n_table import tr
from streamlit.testing.v1 import AppTest

from core.data import demo_cohort
from ui import auth

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch, tmp_path):
    monkeypatch.setenv("HEART_RISK_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HEART_RISK_WARM_TF", "0")
    monkeypatch.delenv("HEART_RISK_AUDIT", raising=False)
    fake = Clock()
    monkeypatch.setattr(auth.THROTTLE, "clock", fake)
    auth.THROTTLE.clear()
    yield fake
    auth.THROTTLE.clear()


@pytest.fixture(scope="module")
def secrets():
    return {"password_pbkdf2": auth.hash_password(PASSWORD, iterations=1000)}


def session(secrets) -> AppTest:
    """A new browser tab: its own session, nothing shared but the server."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets.update(secrets)
    at.session_state["lang"] = "en"
    return at.run()


def try_password(at: AppTest, password: str) -> AppTest:
    at.text_input(key="auth_password").input(password)
    return at.get("form_submit_button")[0].click().run()


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def signed_in(at: AppTest) -> bool:
    return bool(at.session_state["auth_ok"]) if "auth_ok" in at.session_state else False


# ---- the throttle itself ------------------------------------------------------------------------------
def test_the_wait_doubles_with_every_failure_past_the_free_ones():
    clock = Clock()
    throttle = auth.LoginThrottle(base=30, cap=3600, clock=clock)
    keys = [(("address", "a", "10.0.0.1"), 5)]
    for _ in range(4):
        throttle.failure(keys)
    assert throttle.wait(keys) == 0
    waits = []
    for _ in range(5):
        throttle.failure(keys)
        waits.append(throttle.wait(keys))
        clock.now += waits[-1]
    assert waits == [30, 60, 120, 240, 480]
    for _ in range(10):
        throttle.failure(keys)
    assert throttle.wait(keys) == 3600  # capped
    throttle.success(keys)
    assert throttle.wait(keys) == 0
    other = [(("address", "a", "10.0.0.2"), 5)]
    assert throttle.wait(other) == 0  # another address is not held up by this one


def test_the_throttle_is_bounded_and_forgets():
    clock = Clock()
    throttle = auth.LoginThrottle(max_keys=100, forget_after=3600, clock=clock)
    for i in range(1000):  # a flood of addresses
        throttle.failure([(("address", "a", f"10.0.{i // 256}.{i % 256}"), 5)])
    assert len(throttle) == 100
    key = [(("account", "a"), 1)]
    throttle.failure(key)
    assert throttle.wait(key) > 0
    clock.now += 3601
    assert throttle.wait(key) == 0


# ---- in the dashboard: several sessions -------------------------------------------------------------
def test_wrong_passwords_in_several_sessions_lock_every_session(clock, secrets):
    """Five wrong passwords spread over three tabs; a fourth tab, with the right password, still waits."""
    tabs = [session(secrets) for _ in range(3)]
    for tab, tries in zip(tabs, (2, 2, 1)):
        for _ in range(tries):
            try_password(tab, "guess")
            assert tr("auth.wrong") in errors(tab)
    fresh = try_password(session(secrets), PASSWORD)  # a reload is a new session: it used to start at zero
    assert not signed_in(fresh)
    assert any(e.startswith("Too many wrong passwords") for e in errors(fresh))
    again = try_password(tabs[0], PASSWORD)
    assert not signed_in(again)

    clock.now += 31  # the first wait is over; one more wrong password and the next wait is twice as long
    try_password(tabs[1], "guess")
    clock.now += 31
    locked = try_password(session(secrets), PASSWORD)
    assert not signed_in(locked)
    assert tr("auth.locked", seconds=30) in errors(locked)
    clock.now += 30
    assert signed_in(try_password(session(secrets), PASSWORD))


def test_checks_per_minute_are_bounded_across_reloads(clock, secrets):
    """The issue's attack: tabs reloading while locked got ~313 password checks a minute."""
    checked = []
    real = auth.verify_password
    auth_verify = lambda password, s: checked.append(password) or real(password, s)  # noqa: E731
    pytest.MonkeyPatch().setattr(auth, "verify_password", auth_verify)
    try:
        for second in range(0, 60, 2):  # a new tab every 2 seconds for a minute
            clock.now += 2
            try_password(session(secrets), f"guess-{second}")
    finally:
        pytest.MonkeyPatch().setattr(auth, "verify_password", real)
    assert len(checked) <= auth.MAX_FAILURES + 1


# ---- signing out ---------------------------------------------------------------------------------------
def test_signing_out_forgets_the_uploaded_bytes_and_hides_the_pages(clock, secrets, monkeypatch):
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    removed = []
    real = MemoryUploadedFileManager.remove_session_files

    def remove(self, session_id):
        real(self, session_id)
        removed.append((session_id, dict(self.file_storage)))

    monkeypatch.setattr(MemoryUploadedFileManager, "remove_session_files", remove)
    at = try_password(session(secrets), PASSWORD)
    assert signed_in(at)
    data = demo_cohort().head(60).to_csv(index=False).encode()
    at.segmented_control(key="cohort_source@en").set_value("upload").run()
    at.file_uploader(key="cohort_upload").set_value(("ward.csv", data, "text/csv")).run()
    assert at.session_state["cohort"].name == "ward.csv"
    next(b for b in at.sidebar.button if b.label == tr("auth.logout")).click().run()
    assert not signed_in(at)
    assert removed, "the session's uploaded files were not released"
    session_id, storage = removed[-1]
    assert not storage.get(session_id)  # nothing of the session's files left in the server's memory
    assert "cohort_upload" not in at.session_state and at.session_state["cohort"] is None
    assert [t.value for t in at.title] == [tr("auth.title")]
