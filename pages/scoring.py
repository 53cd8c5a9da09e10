"""Score a cohort page: every patient of the active cohort or of an uploaded file gets a risk, a band,
an interval (when the model is an ensemble) and the top reasons; filter, sort, plot and download.

Scoring is core.scoring.score_cohort (numpy; the reasons are exact SHAP values, computed in chunks under
a progress bar). The scored table is kept for the session, so filtering does not score again.
"""
from __future__ import annotations

import re

import pandas as pd
import plotly.express as px
import streamlit as st

import core.data
from core.audit import audit_path, log_table
from core.data import read_table
from core.errors import CoreError
from core.export import csv_bytes
from core.risk import BandCutoffs
from core.scoring import BANDS, excel_bytes, filter_scored, score_cohort
from ui.common import need_model, show_problems
from ui.i18n import lang, lang_key, t
from ui.shell import ensure_shell
from ui.state import active_cohort

CUTOFFS = BandCutoffs()
REASONS_BY_DEFAULT = 5000  # above this many patients the (slow) reasons are opt-in
BAND_COLOURS = {"low": "#2e7d32", "intermediate": "#ef6c00", "high": "#c62828"}


def band_name(band: str) -> str:
    return {"low": t("band.low"), "intermediate": t("band.intermediate"), "high": t("band.high")}[band]


def table_key(df: pd.DataFrame) -> int:
    """A cheap content key (pandas' row hashes), so a new file or cohort scores again."""
    return int(pd.util.hash_pandas_object(df, index=False).sum())


ensure_shell()  # when this page runs without app.py
st.title(t("scoring.title"))
model = need_model()
pre = model.preprocessor_
cohort = active_cohort()

source = st.segmented_control(t("scoring.source"), ["active", "upload"], key=lang_key("sc_source"), default="active",
                              required=True, format_func={"active": t("scoring.source_active"),
                                                          "upload": t("scoring.source_upload")}.get)
if source == "upload":
    upload = st.file_uploader(t("scoring.upload"), type=["csv", "txt", "tsv", "data"], key="sc_upload",
                              help=t("scoring.upload_help"))
    if upload is None:
        st.info(t("scoring.upload_hint", columns=", ".join(pre.feature_names)), icon=":material/info:")
        st.stop()
    try:
        read = read_table(upload)
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()
    table, name = read.df, read.name
else:
    table, name = cohort.df, cohort.name
st.caption(t("scoring.which", name=name, n=len(table)))

missing = [n for n in pre.feature_names if n not in table.columns]
if missing:
    st.error(t("scoring.missing_columns", columns=", ".join(map(str, missing))), icon=":material/error:")
    st.stop()

# Check values as a cohort is checked (text in a number column refused; implausible values and unknown
# codes set to missing), when the engine offers it.
check_features = getattr(core.data, "check_features", None)
if check_features is not None:
    try:
        checked, problems = check_features(table, model.schema)
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()
    if any(p.severity == "error" for p in problems):
        st.error(t("scoring.refused"), icon=":material/error:")
        show_problems(problems)
        st.stop()
    table = table.reset_index(drop=True).copy()
    for col in checked.columns:
        table[col] = checked[col]
    notable = [p for p in problems if p.rule != "missing"]
    if notable:
        with st.expander(t("scoring.problems", n=len(notable))):
            show_problems(notable)

with_reasons = st.checkbox(t("scoring.with_reasons"), value=len(table) <= REASONS_BY_DEFAULT,
                           key=f"sc_reasons_{len(table) <= REASONS_BY_DEFAULT}", help=t("scoring.with_reasons_help"))
key = (st.session_state.get("model_token"), table_key(table), with_reasons, lang())
stored = st.session_state.get("sc_result")
if stored is None or stored[0] != key:
    bar = st.progress(0.0, text=t("scoring.progress", done=0, total=len(table)))

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=t("scoring.progress", done=done, total=total))

    try:
        scored = score_cohort(model, table, with_reasons=with_reasons, lang=lang(), cutoffs=CUTOFFS,
                              progress=progress)
    except CoreError as exc:
        bar.empty()
        st.error(str(exc), icon=":material/error:")
        st.stop()
    bar.empty()
    stored = (key, scored)
    st.session_state["sc_result"] = stored
    audit_file = audit_path(st.secrets)
    if audit_file is not None:  # the audit trail, when on: one line per patient scored
        info = st.session_state.get("model_info") or {}
        try:
            log_table(audit_file, table, pre.feature_names, scored.table["risk"], bands=scored.table["risk_band"],
                      model=info.get("name") or t("sidebar.unsaved_model"), source="cohort")
        except OSError:
            st.warning(t("audit.write_failed"), icon=":material/warning:")
scored = stored[1]
full = scored.table

counts = scored.band_counts()
c0, c1, c2, c3 = st.columns(4)
c0.metric(t("scoring.patients"), f"{len(full):,}", border=True)
for col, band in zip((c1, c2, c3), BANDS):
    share = counts[band] / len(full) if len(full) else 0.0
    col.metric(band_name(band), f"{counts[band]:,}", delta=f"{share:.0%}", delta_color="off", border=True)
st.caption(t("scoring.timing", seconds=f"{scored.seconds:.2f}", low=f"{CUTOFFS.low:.0%}", high=f"{CUTOFFS.high:.0%}"))
if not scored.with_interval:
    st.caption(t("scoring.no_interval"))

f1, f2 = st.columns([2, 1])
bands = f1.multiselect(t("scoring.filter_bands"), list(BANDS), default=None if lang_key("sc_bands") in st.session_state
                       else list(BANDS), key=lang_key("sc_bands"), format_func={b: band_name(b) for b in BANDS}.get)
min_risk = f2.slider(t("scoring.min_risk"), 0, 100, 0, step=1, format="%d%%", key="sc_min_risk")
view = filter_scored(full, bands, min_risk / 100)

shown = view.copy()
shown["risk_band"] = shown["risk_band"].map(band_name)
for col in ("risk", "risk_low", "risk_high"):
    if col in shown:
        shown[col] = shown[col] * 100
labels = {"row": t("scoring.row"), "risk": t("scoring.risk"), "risk_band": t("scoring.band"),
          "risk_low": t("scoring.risk_low"), "risk_high": t("scoring.risk_high"),
          **{f"reason_{k}": t("scoring.reason", k=k) for k in (1, 2, 3)}}
percent = st.column_config.NumberColumn(format="%.1f%%")
st.dataframe(shown.rename(columns=labels), hide_index=True, height=420,
             column_config={labels[c]: percent for c in ("risk", "risk_low", "risk_high")})
st.caption(t("scoring.shown", n=len(view), total=len(full)))

if len(view):
    hist = px.histogram(x=view["risk"] * 100, color=view["risk_band"].map(band_name), nbins=40,
                        color_discrete_map={band_name(b): BAND_COLOURS[b] for b in BANDS},
                        category_orders={"color": [band_name(b) for b in BANDS]})
    hist.update_layout(title=t("scoring.histogram"), xaxis_title=t("scoring.risk_axis"), yaxis_title=t("scoring.count_axis"),
                       legend_title_text=t("scoring.band"), bargap=0.05, height=340, margin=dict(t=50, b=40))
    st.plotly_chart(hist, key="sc_histogram", config={"displayModeBar": False})

slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-")[:60] or "cohort"
d1, d2 = st.columns(2)
d1.download_button(t("scoring.download_csv", n=len(view)), csv_bytes(view), file_name=f"risk-{slug}.csv",
                   mime="text/csv", icon=":material/download:", on_click="ignore", key="sc_download_csv")
# The workbook is built only when asked for (openpyxl needs seconds for 100,000 rows).
d2.download_button(t("scoring.download_xlsx", n=len(view)), lambda: excel_bytes(view), file_name=f"risk-{slug}.xlsx",
                   mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   icon=":material/download:", on_click="ignore", key="sc_download_xlsx")
