"""Model card page: the card of the session's model, readable here and downloadable as Markdown or HTML."""
from __future__ import annotations


import streamlit as st

from pydantic import ValidationError

from core.model import as_bundle_meta
from core.workflow import card_html, card_markdown
from ui.common import file_slug, need_model
from ui.i18n import lang, t
from ui.shell import ensure_shell

ensure_shell()  # when this page runs without app.py
st.title(t("card_page.title"))
need_model()
info = st.session_state.get("model_info") or {}
try:
    meta = as_bundle_meta(st.session_state.get("model_meta"))
    if not meta.name:
        meta = meta.updated(name=info.get("name") or t("sidebar.unsaved_model"))
    markdown = card_markdown(meta, lang())
    html = card_html(meta, lang())
except (ValidationError, AttributeError, TypeError, ValueError, KeyError) as exc:  # metadata of another
    # shape (an older program's, not from a verified bundle): say so instead of failing the page
    st.error(t("card_page.unreadable", kind=type(exc).__name__), icon=":material/error:")
    st.stop()
slug = file_slug(meta.name, "model")
c1, c2 = st.columns(2)
c1.download_button(t("card_page.download_md"), markdown.encode("utf-8"), file_name=f"model-card-{slug}.md",
                   mime="text/markdown", icon=":material/download:", on_click="ignore")
c2.download_button(t("card_page.download_html"), html.encode("utf-8"), file_name=f"model-card-{slug}.html",
                   mime="text/html", icon=":material/download:", on_click="ignore")
if info.get("source") == "trained":
    st.info(t("card_page.unsaved"), icon=":material/info:")
if meta.legacy_unverified:  # a version 1/2 bundle: its metadata.json carried no hash of its own
    st.warning(t("card_page.legacy_unverified"), icon=":material/warning:")
with st.container(border=True):
    st.markdown(markdown)
