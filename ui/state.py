"""Per-session state: the active cohort, model and training job live in st.session_state (one clinician's
upload or model never reaches another session); only read-only things (the demo cohort, saved bundles)
are cached across sessions.

Nothing here imports TensorFlow: the first page and the sidebar must draw before it is loaded.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import uuid
from pathlib import Path

import streamlit as st

from core.data import Cohort, cohort_from_frame
from core.data import DEMO_NAME, demo_cohort
from core.data import cleveland_schema

DEFAULTS = {"lang": "en", "cohort": None, "model": None, "model_info": None, "model_meta": None,
            "model_token": None, "train_result": None, "train_job": None, "explain_cache": {}}
WARM_ENV = "HEART_RISK_WARM_TF"  # "0": do not import TensorFlow in the background (tests of startup)


def configure_store(secrets: dict | None) -> None:
    """The model store named by the secret ``model_store`` ($HEART_RISK_STORE, when set, still wins)."""
    from core.model import configure_root
    path = (secrets or {}).get("model_store")
    configure_root(path.strip() if isinstance(path, str) and path.strip() else None)


def init_session() -> None:
    keep_keras_state()
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = dict(value) if isinstance(value, dict) else value


@st.cache_resource(show_spinner=False)
def shared_demo_cohort() -> Cohort:
    """The synthetic demo cohort: deterministic and identical for everyone, so it is safe to share."""
    return cohort_from_frame(demo_cohort(), cleveland_schema(), name=DEMO_NAME, synthetic=True)


def active_cohort() -> Cohort:
    if st.session_state.get("cohort") is None:
        st.session_state["cohort"] = shared_demo_cohort()
    return st.session_state["cohort"]


def cohort_title(cohort: Cohort) -> str:
    """A cohort's name as shown: the built-in demo's in the session's language (its stored name is English),
    any other cohort's own name (a file name: user data, never translated)."""
    if cohort.synthetic and cohort.name == DEMO_NAME:
        from ui.i18n import t
        return t("cohort.demo_name")
    return cohort.name


def set_cohort(cohort: Cohort) -> None:
    """Make ``cohort`` this session's cohort. The model stays: it may still fit the new cohort."""
    st.session_state["cohort"] = cohort
    st.session_state["explain_cache"] = {}
    _drop_session_caches()


_CACHE_PREFIX = "session_cache_"


def session_cache(name: str, key, compute):
    """``compute()``, kept in this session under ``name`` while ``key`` stays the same (one value per
    name: a new key replaces the old value). Keys say what the value depends on, e.g. the model's token
    and the cohort's fingerprint; a new model or cohort drops every cached value."""
    slot = _CACHE_PREFIX + name
    hit = st.session_state.get(slot)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = compute()
    st.session_state[slot] = (key, value)
    return value


def _drop_session_caches() -> None:
    for slot in [k for k in st.session_state if str(k).startswith(_CACHE_PREFIX)]:
        del st.session_state[slot]


def active_model():
    """(model, info) of this session, or (None, None)."""
    return st.session_state.get("model"), st.session_state.get("model_info")


def set_model(model, info: dict, meta, train_result=None) -> None:
    """Make ``model`` this session's model (``meta``: its core.model.BundleMeta); everything computed for
    the previous one is dropped."""
    previous = st.session_state.get("model")
    same_inputs = (previous is not None and hasattr(previous, "preprocessor_") and hasattr(model, "preprocessor_")
                   and list(previous.preprocessor_.feature_names) == list(model.preprocessor_.feature_names))
    token = uuid.uuid4().hex
    if info.get("source") != "store":  # trained or changed here: the audit trail still tells it apart
        # A changed copy (the Trust page's) carries its original's info: the saved version's or draft's
        # files are not this model's, so they are forgotten (a draft of this model is named after it).
        info = {**info, "model_id": f"unsaved:{token}", "store_name": None, "version": None, "path": None,
                "draft_path": None}
    st.session_state["model"] = model
    st.session_state["model_info"] = info
    st.session_state["model_meta"] = meta
    st.session_state["model_token"] = token
    st.session_state["train_result"] = train_result
    st.session_state["explain_cache"] = {}
    _drop_session_caches()
    # Everything the Patient page computed for the old model goes. The patient being entered stays when the
    # new model takes the same inputs (QA: training again reset the form and the patient was lost).
    form = _patient_form_key(model.preprocessor_.feature_names) if same_inputs else None
    for key in [k for k in st.session_state if str(k).startswith("pt_")]:
        if form is None or not form.match(str(key)):
            del st.session_state[key]


def _patient_form_key(features) -> "re.Pattern":
    """The Patient page's form keys: each input's value (pt_<name>, pt_<name>__<unit>, pt_<name>@<lang>), its
    unit choice, where the values came from, and the row chosen."""
    names = "|".join(re.escape(str(n)) for n in features)
    return re.compile(rf"^pt_(?:(?:unit_|unit_prev_)?(?:{names})(?:__.*|@.*)?|source(?:@.*)?|row|features)$")


def cohort_fits_model(cohort: Cohort, model) -> bool:
    return model is not None and all(name in cohort.df.columns for name in model.preprocessor_.feature_names)


@st.cache_resource(show_spinner=False, max_entries=16)
def _load_saved(path: str, stamp: float):
    from core.model import load_bundle
    return load_bundle(path)


def load_saved_bundle(path) -> object:
    """A saved bundle, loaded once per server: a saved version is never rewritten (the store only adds
    versions), so the loaded model is read-only and safe to share. The file's time is part of the key
    because a deleted version's number can be taken again by a later save."""
    path = Path(path)
    stamp = (path / "metadata.json").stat().st_mtime
    return _load_saved(str(path.resolve()), stamp)


def forget_saved_bundles() -> None:
    _load_saved.clear()


def keep_keras_state() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit 1.67 does it whenever Keras is imported (script_runner._clean_problem_modules). With
    TensorFlow loaded that is a full gc.collect, ~200 ms after *every* rerun (measured: the Patient page's
    rerun went from ~460 ms to ~110 ms without it), and it swaps Keras' global state under the training
    threads of other sessions. The engine keeps no Keras state between runs that would need clearing:
    models are built per fit or per bundle and prediction is numpy. Matplotlib is still closed as before.
    """
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # another Streamlit layout: leave it alone
        return
    if getattr(script_runner._clean_problem_modules, "keeps_keras", False):
        return

    def clean_problem_modules() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except Exception:  # noqa: BLE001 - as Streamlit does: never fail a run over this
                pass

    clean_problem_modules.keeps_keras = True
    script_runner._clean_problem_modules = clean_problem_modules


_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None
# Set once this process has finished a first script run (app.py's last step): work that the first page does
# not need waits for it (ui.serve's second preload phase), so as not to slow that page on the same cores.
FIRST_PAGE_DRAWN = threading.Event()


def warm_tensorflow() -> threading.Thread | None:
    """Import Keras/TensorFlow (~7 s) in the background once per process, after the first page is drawn,
    so that training or loading a model does not wait for it. app.py calls it as a run's last step, so it
    also sets FIRST_PAGE_DRAWN."""
    global _warm_thread
    try:
        if os.environ.get(WARM_ENV, "1") == "0":
            return None
        with _warm_lock:
            if _warm_thread is None:
                from ui.jobs import import_shared_modules, import_tensorflow
                import_shared_modules()
                _warm_thread = threading.Thread(target=import_tensorflow, daemon=True, name="warm-keras")
                _warm_thread.start()
        return _warm_thread
    finally:
        FIRST_PAGE_DRAWN.set()  # after import_shared_modules: the preload's plotly work must not meet a half PIL
