"""Optional login, checked by ui.shell before anything of a cohort or a model is drawn.

Configured in ``.streamlit/secrets.toml`` (never in the repository); see docs/operations.md:

- OpenID Connect: an ``[auth]`` section as Streamlit's ``st.login`` expects it (``redirect_uri``,
  ``cookie_secret``, ``client_id``, ``client_secret``, ``server_metadata_url``, or one sub-section per
  provider such as ``[auth.microsoft]``). Needs the Authlib package (``pip install "streamlit[auth]"``).
- A shared password: ``password_pbkdf2 = "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"`` (print one
  with ``python -m ui.auth``), or ``password_sha256 = "<hex>"`` (unsalted: PBKDF2 is preferred).
- Neither: no login (a single-user install on a workstation).

When login is configured and cannot work (a secrets file that cannot be read, OIDC without Authlib, a
malformed hash), the app stays closed: it never falls back to showing data.

Wrong passwords are counted by the server, not the session (a reload used to give five more tries): per
client address and for the account, in memory, with a delay that doubles with every failure past the
free ones (:class:`LoginThrottle`).
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import os
import threading
import time
from pathlib import Path

import streamlit as st

from ui.i18n import t

PBKDF2_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
MAX_FAILURES = 5  # wrong passwords from one address before it waits
ACCOUNT_FAILURES = 20  # wrong passwords from all addresses together before everyone waits
LOCKOUT_SECONDS = 30  # the first wait; it doubles with every further failure
MAX_LOCKOUT_SECONDS = 3600
_OIDC_KEYS = ("client_id", "server_metadata_url")


# ---- configuration -------------------------------------------------------------------------------
def read_secrets() -> dict | None:
    """The app's secrets as a plain dict; {} when there is no secrets file; None when a secrets file
    exists but cannot be read (the caller must then stay closed)."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # Streamlit's StreamlitSecretNotFoundError: none found, or unparsable
        files = st.get_option("secrets.files") or []
        return None if any(Path(p).exists() for p in files) else {}


def oidc_providers(secrets: dict) -> list[str | None] | None:
    """[None] for a single provider configured in [auth] itself, the names of [auth.<name>] sections,
    or None when OIDC is not configured."""
    auth = secrets.get("auth")
    if not isinstance(auth, dict) or not auth:
        return None
    if all(k in auth for k in _OIDC_KEYS):
        return [None]
    named = [name for name, value in auth.items() if isinstance(value, dict) and all(k in value for k in _OIDC_KEYS)]
    return named or None


def login_mode(secrets: dict) -> str | None:
    if secrets.get("auth"):
        return "oidc"  # an [auth] section means OIDC was meant, even when incomplete: stay closed then
    if secrets.get("password_pbkdf2") or secrets.get("password_sha256"):
        return "password"
    return None


# ---- passwords -----------------------------------------------------------------------------------
def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """The ``password_pbkdf2`` value for secrets.toml: PBKDF2-HMAC-SHA256 with a random 16-byte salt."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, int(iterations))
    return f"pbkdf2_sha256${int(iterations)}${salt.hex()}${digest.hex()}"


def verify_password(password: str, secrets: dict) -> bool:
    """Compare in constant time against the configured hash; ValueError when the hash is malformed."""
    given = password.encode("utf-8")
    stored = secrets.get("password_pbkdf2")
    if stored:
        try:
            scheme, iterations, salt, expected = str(stored).split("$")
            if scheme != "pbkdf2_sha256" or int(iterations) < 1:
                raise ValueError
            salt_bytes, expected_bytes = bytes.fromhex(salt), bytes.fromhex(expected)
        except ValueError:
            raise ValueError("password_pbkdf2 is not 'pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>'") from None
        digest = hashlib.pbkdf2_hmac("sha256", given, salt_bytes, int(iterations), dklen=len(expected_bytes))
        return hmac.compare_digest(digest, expected_bytes)
    stored = str(secrets.get("password_sha256") or "").strip().lower()
    try:
        expected_bytes = bytes.fromhex(stored)
    except ValueError:
        raise ValueError("password_sha256 is not a hexadecimal SHA-256 digest") from None
    if len(expected_bytes) != 32:
        raise ValueError("password_sha256 is not a hexadecimal SHA-256 digest")
    return hmac.compare_digest(hashlib.sha256(given).digest(), expected_bytes)


# ---- the lockout ---------------------------------------------------------------------------------
class LoginThrottle:
    """Failed sign-ins counted per key (a client address, the account) across every session of the server.

    After ``free`` failures a key waits ``base`` seconds, then twice as long after each further failure
    (up to ``cap``), whether or not the next try is right; a success clears the keys it was tried under.
    A key is forgotten ``forget_after`` seconds after its last failure. At most ``max_keys`` keys are kept
    (the least recently failed go first), so a flood of addresses cannot grow the server's memory.
    Written here because the login is ours: Streamlit's own (OIDC) leaves throttling to the provider.
    """

    def __init__(self, base: float = LOCKOUT_SECONDS, cap: float = MAX_LOCKOUT_SECONDS,
                 forget_after: float = 24 * 3600, max_keys: int = 10_000, clock=time.monotonic):
        self.base, self.cap, self.forget_after, self.max_keys, self.clock = base, cap, forget_after, max_keys, clock
        self._entries: collections.OrderedDict[tuple, tuple[int, float, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, key: tuple, now: float) -> tuple[int, float, float]:
        count, locked_until, last = self._entries.get(key, (0, 0.0, now))
        if now - last > self.forget_after:
            self._entries.pop(key, None)
            return 0, 0.0, now
        return count, locked_until, last

    def wait(self, keys: list[tuple[tuple, int]]) -> float:
        """Seconds before a try under any of ``keys`` ((key, free failures) pairs) is allowed; 0 now."""
        now = self.clock()
        with self._lock:
            return max((max(0.0, self._entry(key, now)[1] - now) for key, _ in keys), default=0.0)

    def failure(self, keys: list[tuple[tuple, int]]) -> None:
        now = self.clock()
        with self._lock:
            for key, free in keys:
                count, locked_until, _ = self._entry(key, now)
                count += 1
                if count >= free:
                    locked_until = now + min(self.cap, self.base * 2 ** (count - free))
                self._entries[key] = (count, locked_until, now)
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)

    def success(self, keys: list[tuple[tuple, int]]) -> None:
        with self._lock:
            for key, _ in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


THROTTLE = LoginThrottle()


def _throttle_keys(secrets: dict) -> list[tuple[tuple, int]]:
    """The keys a password try counts under: the client's address, and the account. The account is the
    configured hash (one shared password): a new password starts from zero. Behind a reverse proxy every
    client has the proxy's address, and the address key then counts everyone (see docs/operations.md)."""
    account = hashlib.sha256(str(secrets.get("password_pbkdf2") or secrets.get("password_sha256") or "")
                             .encode("utf-8")).hexdigest()[:16]
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no client context (a bare script run): one shared key
        address = None
    address = address if isinstance(address, str) and address else "local"  # localhost: None
    return [(("address", account, address), MAX_FAILURES), (("account", account), ACCOUNT_FAILURES)]


# ---- the gate ------------------------------------------------------------------------------------
def require_login(secrets: dict | None, pages=None) -> None:
    """Return when the session may see data; otherwise draw the login and stop the script run.
    ``secrets``: :func:`read_secrets`' answer; ``pages``: a function listing the app's pages (st.Page),
    registered without links while the login is shown."""
    if secrets is None:
        _hide_navigation(pages)
        st.error(t("auth.secrets_unreadable"), icon=":material/lock:")
        st.stop()
    mode = login_mode(secrets)
    if mode is None:
        return
    if mode == "oidc":
        _oidc(secrets, pages)
    else:
        _password(secrets, pages)


def _oidc(secrets: dict, pages=None) -> None:
    user = st.user
    if user.get("is_logged_in"):
        with st.sidebar:
            st.caption(t("auth.signed_in_as", name=str(user.get("name") or user.get("email") or "—")))
            if st.button(t("auth.logout"), icon=":material/logout:", key="auth_logout"):
                sign_out()
                st.logout()
        return
    _hide_navigation(pages)
    st.title(t("auth.title"))
    providers = oidc_providers(secrets)
    try:
        import authlib  # noqa: F401  - st.login needs it; without it the app stays closed
    except ImportError:
        providers = None
    if not providers:
        st.error(t("auth.oidc_unavailable"), icon=":material/lock:")
        st.stop()
    st.info(t("auth.oidc_help"), icon=":material/lock:")
    for provider in providers:
        label = t("auth.login_with", provider=provider) if provider else t("auth.login")
        if st.button(label, type="primary", icon=":material/login:", key=f"auth_login_{provider or 'default'}"):
            st.login(provider) if provider else st.login()
    st.stop()


def sign_out() -> None:
    """Forget everything of this session but its language (a shared workstation: the next person starts
    from nothing): the cohort, the model, every widget's value, and the uploaded files' bytes, which
    Streamlit keeps in the server's memory until the browser disconnects unless told otherwise."""
    for key in list(st.session_state):
        if key not in ("lang", "lang_choice"):
            del st.session_state[key]
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        ctx = get_script_run_ctx()
        if ctx is not None:
            ctx.uploaded_file_mgr.remove_session_files(ctx.session_id)
    except (ImportError, AttributeError):  # another Streamlit layout: the bytes go when the session ends
        pass


def _hide_navigation(pages) -> None:
    """The signed-out page shows no links to the app's pages: the sign-in stops the run before app.py's
    st.navigation, and the browser would otherwise keep the last run's links on screen. The pages stay
    registered (hidden), so an address of one still resolves and opens it after signing in."""
    if pages is None:  # a page run on its own (streamlit run pages/x.py): it has no links to hide
        return
    try:
        st.navigation(pages(), position="hidden")
    except Exception:  # noqa: BLE001 - never let the link list stop the sign-in from being drawn
        pass


def _password(secrets: dict, pages=None) -> None:
    if st.session_state.get("auth_ok"):
        with st.sidebar:
            if st.button(t("auth.logout"), icon=":material/logout:", key="auth_logout"):
                sign_out()
                st.rerun()
        return
    _hide_navigation(pages)
    st.title(t("auth.title"))
    with st.form("auth_form", clear_on_submit=True):
        password = st.text_input(t("auth.password"), type="password", key="auth_password")
        submitted = st.form_submit_button(t("auth.login"), type="primary", icon=":material/login:")
    if submitted:
        keys = _throttle_keys(secrets)
        wait = THROTTLE.wait(keys)
        if wait > 0:  # not even checked: a right password during the wait would tell the guesser
            st.error(t("auth.locked", seconds=int(wait) + 1), icon=":material/lock:")
            st.stop()
        try:
            ok = verify_password(password or "", secrets)
        except ValueError:
            st.error(t("auth.bad_hash"), icon=":material/lock:")
            st.stop()
        if ok:
            THROTTLE.success(keys)
            st.session_state["auth_ok"] = True
            st.rerun()
        THROTTLE.failure(keys)
        st.error(t("auth.wrong"), icon=":material/lock:")
    st.stop()


if __name__ == "__main__":  # python -m ui.auth: print a password_pbkdf2 line for secrets.toml
    import getpass

    first = getpass.getpass("New dashboard password: ")
    if not first or first != getpass.getpass("Again: "):
        raise SystemExit("the two entries differ (or are empty); nothing printed")
    print(f'password_pbkdf2 = "{hash_password(first)}"')
