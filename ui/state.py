"""Per-session state: the active cohort and model live in st.session_state (one clinician's upload or
model never reaches another session); only read-only things (the demo cohort, saved bundles) are cached
across sessions."""
from __future__ import annotations

import importlib
import threading

import streamlit as st

from core.demo import DEMO_NAME, demo_cohort
from core.data import Cohort, cohort_from_frame
from core.schema import cleveland_schema

DEFAULTS = {"lang": "en", "cohort": None, "model": None, "model_info": None, "patient": None,
            "previous_risk": None}


def init_session() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


@st.cache_resource(show_spinner=False)
def shared_demo_cohort() -> Cohort:
    """The synthetic demo cohort: deterministic and identical for everyone, so it is safe to share."""
    return cohort_from_frame(demo_cohort(), cleveland_schema(), name=DEMO_NAME, synthetic=True)


def active_cohort() -> Cohort:
    if st.session_state.get("cohort") is None:
        st.session_state["cohort"] = shared_demo_cohort()
    return st.session_state["cohort"]


def active_model():
    """(model, info) of this session, or (None, None)."""
    return st.session_state.get("model"), st.session_state.get("model_info")


@st.cache_resource(show_spinner=False)
def warm_tensorflow() -> threading.Thread:
    """Import Keras/TensorFlow (~7 s) in the background once per server, after the first page is drawn,
    so that training or loading a model does not wait for it."""
    thread = threading.Thread(target=importlib.import_module, args=("keras",), daemon=True, name="warm-keras")
    thread.start()
    return thread
