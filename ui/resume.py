"""A reload or a closed tab does not lose the clinician's work (issue 16.4): the session's cohort, model,
running training or scoring job, language and patient form are kept on the server under a random token
carried in the page's address (``?session=...``); a new browser session opening that address gets them back, and a
training run or scoring job still going is re-attached to (its thread never belonged to the old session).

Kept in this process's memory only (no patient data is written to disk; a running scoring job's input and
parts sit in a private temporary folder until it ends: ui.scoring_job), for a limited time
(``HEART_RISK_RESUME_HOURS``, default 8) and for a limited number of sessions (the oldest go first). With
sign-in on, a token resumes only for the same signed-in user. The token is 128 random bits: an address
is as private as the session it names, so it is not for sharing. A trained model also goes to the model
store as a draft (ui.models.keep_draft): when the memory is gone, the token finds its latest draft there.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict

import streamlit as st

from ui.models import restore_draft

PARAM = "session"
MAX_SESSIONS = 200
KEEP = ("cohort", "model", "model_info", "model_meta", "model_token", "train_job", "train_result", "score_job", "lang",
        "pt_token", "pt_features")
_lock = threading.Lock()
_kept: OrderedDict[str, dict] = OrderedDict()


def _hours() -> float:
    try:
        return max(float(os.environ.get("HEART_RISK_RESUME_HOURS", "8")), 0.0)
    except ValueError:
        return 8.0


def signed_in_user() -> str | None:
    user = getattr(st, "user", None)
    try:
        return str(user.get("email") or user.get("name")) if user is not None and user.get("is_logged_in") else None
    except Exception:  # noqa: BLE001 - no sign-in configured: st.user has nothing to say
        return None


def _form_key(key: str, value) -> bool:
    """A patient form value to keep: fields, units, coded choices (never a button's or a cache's state)."""
    return (key.startswith("pt_") and not isinstance(value, bool)
            and not key.startswith(("pt_cf_apply", "pt_report", "pt_cf_cache", "pt_audit")))


def resume_or_start() -> None:
    """At a browser session's first run: take back what its address's token kept, or start a new token.
    Every run: the token is in the address (a page switch may drop the query string)."""
    if "resume_token" not in st.session_state:
        token = st.query_params.get(PARAM)
        with _lock:
            entry = _kept.get(token) if token else None
            if entry is not None and (time.time() - entry["saved"] > _hours() * 3600 or entry["user"] != signed_in_user()):
                entry = None
        if entry is not None:
            for key, value in entry["state"].items():
                st.session_state[key] = value
        elif not (token and restore_draft(token, signed_in_user())):
            # Memory gone (server restarted, or kept too long): the token still finds its latest draft
            # in the model store; with none, a new token.
            token = secrets.token_urlsafe(16)
        st.session_state["resume_token"] = token
    token = st.session_state["resume_token"]
    if st.query_params.get(PARAM) != token:
        st.query_params[PARAM] = token


def keep() -> None:
    """Keep this session's work under its token (after every run, and after every form change)."""
    token = st.session_state.get("resume_token")
    if not token:
        return
    state = {k: st.session_state[k] for k in KEEP if k in st.session_state}
    state.update({k: v for k, v in st.session_state.items() if _form_key(k, v)})
    now = time.time()
    with _lock:
        _kept[token] = {"saved": now, "user": signed_in_user(), "state": state}
        _kept.move_to_end(token)
        while len(_kept) > MAX_SESSIONS:
            _kept.popitem(last=False)
        for old in [k for k, e in _kept.items() if now - e["saved"] > _hours() * 3600]:
            del _kept[old]
