"""Audit page (only in the navigation when the audit log is on): browse and export the predictions logged.

The log holds, per prediction, the time (UTC), where it was made, the model, an HMAC of the inputs and
the risk; never a patient's values (core.audit).
"""
from __future__ import annotations

import streamlit as st

from core.workflow import audit_path, read_log
from core.workflow import csv_bytes
from ui.i18n import lang_key, t
from ui.shell import ensure_shell

ensure_shell()  # when this page runs without app.py
st.title(t("audit.title"))
path = audit_path(st.secrets)
if path is None:
    st.info(t("audit.off"), icon=":material/info:")
    st.stop()
st.caption(t("audit.where"))
st.code(str(path), language=None)
try:
    log, bad = read_log(path)
except OSError:
    st.error(t("audit.unreadable"), icon=":material/error:")
    st.stop()
if bad:
    st.warning(t("audit.bad_lines", n=bad), icon=":material/warning:")
if log.empty:
    st.info(t("audit.empty"), icon=":material/info:")
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric(t("audit.entries"), f"{len(log):,}", border=True)
c2.metric(t("audit.first"), str(log["time_utc"].min())[:19].replace("T", " "), border=True)
c3.metric(t("audit.last"), str(log["time_utc"].max())[:19].replace("T", " "), border=True)

sources = sorted(log["source"].dropna().astype(str).unique())
models = sorted(log["model"].dropna().astype(str).unique())
names = {"patient": t("audit.source_patient"), "cohort": t("audit.source_cohort")}
f1, f2 = st.columns(2)
chosen_sources = f1.multiselect(t("audit.sources"), sources, default=sources, key=lang_key("audit_sources"),
                                format_func={s: names.get(s, s) for s in sources}.get)
chosen_models = f2.multiselect(t("audit.models"), models, default=models, key="audit_models")
view = log[log["source"].astype(str).isin(chosen_sources) & log["model"].astype(str).isin(chosen_models)]
view = view.iloc[::-1]  # newest first

labels = {"time_utc": t("audit.time"), "source": t("audit.source"), "model": t("audit.model"),
          "version": t("audit.version"), "inputs_hmac": t("audit.hash"), "key_id": t("audit.key_id"),
          "risk": t("audit.risk"), "risk_band": t("audit.band")}
shown = view.assign(risk=view["risk"] * 100, source=view["source"].map(lambda s: names.get(s, s)))
st.dataframe(shown.rename(columns=labels), hide_index=True, height=420,
             column_config={t("audit.risk"): st.column_config.NumberColumn(format="%.1f%%")})
st.caption(t("audit.shown", n=len(view), total=len(log)))
st.download_button(t("audit.download", n=len(view)), csv_bytes(view), file_name="audit-log.csv", mime="text/csv",
                   icon=":material/download:", on_click="ignore", key="audit_download")
st.caption(t("audit.help"))
