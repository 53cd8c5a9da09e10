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
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path

import streamlit as st

from ui.i18n import t

PBKDF2_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
MAX_FAILURES = 5  # wrong passwords in a row before a session waits
LOCKOUT_SECONDS = 30
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


# ---- the gate ------------------------------------------------------------------------------------
def require_login(secrets: dict | None) -> None:
    """Return when the session may see data; otherwise draw the login and stop the script run.
    ``secrets``: :func:`read_secrets`' answer."""
    if secrets is None:
        st.error(t("auth.secrets_unreadable"), icon=":material/lock:")
        st.stop()
    mode = login_mode(secrets)
    if mode is None:
        return
    if mode == "oidc":
        _oidc(secrets)
    else:
        _password(secrets)


def _oidc(secrets: dict) -> None:
    user = st.user
    if user.get("is_logged_in"):
        with st.sidebar:
            st.caption(t("auth.signed_in_as", name=str(user.get("name") or user.get("email") or "—")))
            if st.button(t("auth.logout"), icon=":material/logout:", key="auth_logout"):
                st.logout()
        return
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


def _password(secrets: dict) -> None:
    if st.session_state.get("auth_ok"):
        with st.sidebar:
            if st.button(t("auth.logout"), icon=":material/logout:", key="auth_logout"):
                # A shared workstation: the next person starts from nothing (no cohort, no model).
                for key in list(st.session_state):
                    if key not in ("lang", "lang_choice"):
                        del st.session_state[key]
                st.rerun()
        return
    st.title(t("auth.title"))
    locked_until = st.session_state.get("auth_locked_until", 0.0)
    with st.form("auth_form", clear_on_submit=True):
        password = st.text_input(t("auth.password"), type="password", key="auth_password")
        submitted = st.form_submit_button(t("auth.login"), type="primary", icon=":material/login:")
    if submitted:
        if time.monotonic() < locked_until:
            st.error(t("auth.locked", seconds=int(locked_until - time.monotonic()) + 1), icon=":material/lock:")
            st.stop()
        try:
            ok = verify_password(password or "", secrets)
        except ValueError:
            st.error(t("auth.bad_hash"), icon=":material/lock:")
            st.stop()
        if ok:
            st.session_state["auth_ok"] = True
            st.session_state.pop("auth_failures", None)
            st.rerun()
        failures = st.session_state.get("auth_failures", 0) + 1
        st.session_state["auth_failures"] = failures
        if failures >= MAX_FAILURES:
            st.session_state["auth_failures"] = 0
            st.session_state["auth_locked_until"] = time.monotonic() + LOCKOUT_SECONDS
        st.error(t("auth.wrong"), icon=":material/lock:")
    st.stop()


if __name__ == "__main__":  # python -m ui.auth: print a password_pbkdf2 line for secrets.toml
    import getpass

    first = getpass.getpass("New dashboard password: ")
    if not first or first != getpass.getpass("Again: "):
        raise SystemExit("the two entries differ (or are empty); nothing printed")
    print(f'password_pbkdf2 = "{hash_password(first)}"')
