"""Explain page: what the model relies on across a sample of the cohort (SHAP on the clinical features).

Computed once per (model, cohort, sample size) and kept in the session; the numbers are core.explain's.
"""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from core.errors import CoreError
from core.evaluate import contradiction_sentence, model_directions
from core.explain import explain, global_importance
from ui import figures
from ui.common import markdown_text, need_fitting_cohort, need_model
from ui.i18n import feature_label, lang, lang_key, t
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_title, session_cache

SAMPLE_SEED = 0
MAX_SAMPLE = 1000


def explanation(model, cohort, size: int):
    """The sample's SHAP values, from the session's cache when this (model, cohort, size) was done."""
    key = (st.session_state.get("model_token"), cohort.fingerprint, size)
    cache = st.session_state.setdefault("explain_cache", {})
    if key not in cache:
        rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(cohort.n, size=size, replace=False))
        raw = model.preprocessor_.encode(cohort.df.iloc[rows])
        started = time.perf_counter()
        expl = explain(model.preprocessor_, model.networks_, raw, model.background_,
                   background_weights=getattr(model, "background_weights_", None))
        cache.clear()  # one sample at a time per session: SHAP tables are the largest thing kept
        cache[key] = (expl, time.perf_counter() - started)
    return cache[key]


ensure_shell()  # when this page runs without app.py
st.title(t("explain.title"))
model = need_model()
cohort = active_cohort()
need_fitting_cohort(cohort, model)
pre = model.preprocessor_

most = min(cohort.n, MAX_SAMPLE)
size = st.slider(t("explain.sample"), min_value=min(10, most), max_value=most, value=min(200, most),
                 key="explain_size", help=t("explain.sample_help"))
try:
    with st.spinner(t("explain.computing", n=size)):
        expl, seconds = explanation(model, cohort, int(size))
except CoreError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
numbers = dict(n=len(expl), cohort=cohort_title(cohort), background=len(model.background_), seconds=f"{seconds:.2f}")
if getattr(model, "background_weights_", None) is None:  # a model saved before backgrounds were summarised
    st.caption(t("explain.sample_note", **numbers))
else:
    st.caption(t("explain.sample_note_centres", **numbers))

importance = global_importance(expl)
order = list(importance.feature)
c1, c2 = st.columns(2)
c1.plotly_chart(figures.importance(expl, pre, importance), key="importance", config={"displayModeBar": False})
c2.plotly_chart(figures.beeswarm(expl, pre, order), key="beeswarm", config={"displayModeBar": False})
st.caption(t("explain.reading"))

# Where the model's average direction contradicts medicine: said as an artefact, never advised.
directions = session_cache("explain_directions", st.session_state.get("model_token"), lambda: model_directions(model))
contradictions = [d for d in directions if d.contradicts]
if contradictions:
    st.subheader(t("direction.title"))
    for d in contradictions:
        st.warning(markdown_text(contradiction_sentence(d, model.schema, lang())), icon=":material/warning:")
elif directions:
    st.caption(t("direction.consistent", k=len(directions)))
if directions:
    st.caption(t("direction.method"))

st.subheader(t("explain.dependence"))
labels = {f.name: feature_label(f) for f in pre.features}
d1, d2 = st.columns(2)
feature = d1.selectbox(t("explain.feature"), order, key=lang_key("explain_feature"), format_func=labels.get)
others = [n for n in order if n != feature]
colour = d2.selectbox(t("explain.colour"), others, index=0 if others else None, key=lang_key("explain_colour"),
                      format_func=labels.get)
st.plotly_chart(figures.dependence(expl, pre, feature, colour), key="dependence", config={"displayModeBar": False})
