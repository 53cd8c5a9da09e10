"""Score a cohort page: every patient of the active cohort or of an uploaded file gets a risk, a band,
an interval (when the model is an ensemble) and the top reasons; filter, sort, plot and download.

Scoring is core.scoring.score_cohort (numpy; the reasons are exact SHAP values, computed in chunks under
a progress bar). A patient with inputs not measured gets the mean risk over their plausible values, its
range and the inputs' names (core.workflow.risk); those inputs are never among the reasons. The scored
table is kept for the session, so filtering does not score again.
"""
from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.workflow import audit_path, log_table
from core.data import check_features, read_table
from core.errors import CoreError
from core.workflow import csv_bytes
from core.model import model_bands
from core.workflow import bands_sentence
from core.workflow import BANDS, excel_bytes, filter_scored, score_cohort
from ui.common import file_slug, need_model, show_problems
from ui.i18n import feature_label, lang, lang_key, t
from ui.models import audit_identity
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_title, session_cache

REASONS_BY_DEFAULT = 2000  # above this many patients the (slow) reasons are opt-in
BAND_COLOURS = {"low": "#2e7d32", "intermediate": "#ef6c00", "high": "#c62828"}


def band_name(band: str) -> str:
    return {"low": t("band.low"), "intermediate": t("band.intermediate"), "high": t("band.high")}[band]


def prepare(source_id, load):
    """Read and check the patients once per file (or cohort) and model: a rerun (a filter moved) reuses
    them. Returns (table, name, problems) or stops the page with the reason."""
    def read_and_check():
        try:
            table, name = load()
            missing = [n for n in pre.feature_names if n not in table.columns]
            problems, error = [], None
            if missing:
                error = t("scoring.missing_columns", columns=", ".join(map(str, missing)))
            else:
                # Checked as a cohort is: text in a number column refused; implausible values and unknown
                # codes set to missing.
                checked, problems = check_features(table, model.schema)
                if any(p.severity == "error" for p in problems):
                    error = t("scoring.refused")
                else:
                    table = table.reset_index(drop=True).copy()
                    for col in checked.columns:
                        table[col] = checked[col]
        except CoreError as exc:
            table, name, problems, error = None, None, [], str(exc)
        return table, name, problems, error

    key = (st.session_state.get("model_token"), source_id, lang())  # messages are in the session's language
    table, name, problems, error = session_cache("scoring_input", key, read_and_check)
    if error:
        if name is not None:
            st.caption(t("scoring.which", name=name, n=len(table)))
        st.error(error, icon=":material/error:")
        if problems:
            show_problems(problems)
        st.stop()
    return table, name, problems


ensure_shell()  # when this page runs without app.py
st.title(t("scoring.title"))
model = need_model()
pre = model.preprocessor_
cohort = active_cohort()

source = st.segmented_control(t("scoring.source"), ["active", "upload"], key=lang_key("sc_source"), default="active",
                              required=True, format_func={"active": t("scoring.source_active"),
                                                          "upload": t("scoring.source_upload")}.get)
token = st.session_state.get("model_token")
if source == "upload":
    upload = st.file_uploader(t("scoring.upload"), type=["csv", "txt", "tsv", "data"], key="sc_upload",
                              help=t("scoring.upload_help"))
    if upload is None:
        st.info(t("scoring.upload_hint", columns=", ".join(pre.feature_names)), icon=":material/info:")
        st.stop()

    def load_upload():
        read = read_table(upload)
        return read.df, read.name

    source_id = ("upload", upload.file_id, token)
    table, name, problems = prepare(source_id, load_upload)
else:
    source_id = ("active", cohort.name, cohort.fingerprint, token)
    table, name, problems = prepare(source_id, lambda: (cohort.df, cohort.name))
st.caption(t("scoring.which", name=cohort_title(cohort) if source == "active" else name, n=len(table)))
notable = [p for p in problems if p.rule != "missing"]
if notable:
    with st.expander(t("scoring.problems", n=len(notable))):
        show_problems(notable)

with_reasons = st.checkbox(t("scoring.with_reasons"), value=len(table) <= REASONS_BY_DEFAULT,
                           key=f"sc_reasons_{len(table) <= REASONS_BY_DEFAULT}", help=t("scoring.with_reasons_help"))
key = (source_id, with_reasons, lang())
stored = st.session_state.get("sc_result")
if stored is None or stored[0] != key:
    bar = st.progress(0.0, text=t("scoring.progress", done=0, total=len(table)))

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=t("scoring.progress", done=done, total=total))

    try:
        scored = score_cohort(model, table, with_reasons=with_reasons, lang=lang(), progress=progress)
    except CoreError as exc:
        bar.empty()
        st.error(str(exc), icon=":material/error:")
        st.stop()
    bar.empty()
    stored = (key, scored)
    st.session_state["sc_result"] = stored
    audit_file = audit_path(st.secrets)
    if audit_file is not None:  # the audit trail, when on: one line per patient scored
        try:
            log_table(audit_file, table, pre.feature_names, scored.table["risk"], bands=scored.table["risk_band"],
                      **audit_identity(), source="cohort")
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
st.caption(t("scoring.timing", seconds=f"{scored.seconds:.2f}") + " " + bands_sentence(model_bands(model), lang()))
if not scored.with_interval:
    st.caption(t("scoring.no_interval"))

f1, f2 = st.columns([2, 1])
bands = f1.multiselect(t("scoring.filter_bands"), list(BANDS), default=None if lang_key("sc_bands") in st.session_state
                       else list(BANDS), key=lang_key("sc_bands"), format_func={b: band_name(b) for b in BANDS}.get)
min_risk = f2.slider(t("scoring.min_risk"), 0, 100, 0, step=1, format="%d%%", key="sc_min_risk")
view = filter_scored(full, bands, min_risk / 100)

shown = view.copy()
shown["risk_band"] = shown["risk_band"].map(band_name)
if (full["missing"] == "").all():  # nothing was left unmeasured: no empty range columns on screen
    shown = shown.drop(columns=["risk_low", "risk_high", "missing"])
else:  # the inputs not measured by their clinical names, the range as one text: a complete row shows blanks,
    # not "None" (the download keeps the names and the two numbers)
    names = {f.name: feature_label(f) for f in pre.features}
    shown["missing"] = [", ".join(names.get(n, n) for n in m.split(", ")) if m else "" for m in shown["missing"]]
    shown.insert(shown.columns.get_loc("risk_low"), "risk_range",
                 ["" if np.isnan(lo) else f"{lo:.1%}–{hi:.1%}" for lo, hi in zip(shown["risk_low"], shown["risk_high"])])
    shown = shown.drop(columns=["risk_low", "risk_high"])
for col in ("risk", "ensemble_low", "ensemble_high"):
    if col in shown:
        shown[col] = shown[col] * 100
labels = {"row": t("scoring.row"), "risk": t("scoring.risk"), "risk_band": t("scoring.band"),
          "risk_range": t("scoring.risk_range"), "missing": t("scoring.missing"),
          "ensemble_low": t("scoring.ensemble_low"), "ensemble_high": t("scoring.ensemble_high"),
          **{f"reason_{k}": t("scoring.reason", k=k) for k in (1, 2, 3)}}
percent = st.column_config.NumberColumn(format="%.1f%%")
st.dataframe(shown.rename(columns=labels), hide_index=True, height=420,
             column_config={labels[c]: percent for c in ("risk", "ensemble_low", "ensemble_high")})
st.caption(t("scoring.shown", n=len(view), total=len(full)))

if len(view):
    # Binned here (2.5-point bins, stacked by band): the browser gets 40 bars, not 100,000 values.
    edges = np.linspace(0, 100, 41)
    hist = go.Figure()
    for band in BANDS:
        counts, _ = np.histogram(view.loc[view["risk_band"] == band, "risk"] * 100, bins=edges)
        hist.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=2.5, name=band_name(band),
                     marker_color=BAND_COLOURS[band])
    hist.update_layout(title=t("scoring.histogram"), xaxis_title=t("scoring.risk_axis"), yaxis_title=t("scoring.count_axis"),
                       legend_title_text=t("scoring.band"), barmode="stack", bargap=0, height=340,
                       margin=dict(t=50, b=40), xaxis=dict(range=[0, 100]))
    st.plotly_chart(hist, key="sc_histogram", config={"displayModeBar": False})

slug = file_slug(name, "cohort")
d1, d2 = st.columns(2)
# Both files are built only when asked for (100,000 rows: seconds for the CSV, a minute or more for Excel).
d1.download_button(t("scoring.download_csv", n=len(view)), lambda: csv_bytes(view), file_name=f"risk-{slug}.csv",
                   mime="text/csv", icon=":material/download:", on_click="ignore", key="sc_download_csv")
d2.download_button(t("scoring.download_xlsx", n=len(view)), lambda: excel_bytes(view), file_name=f"risk-{slug}.xlsx",
                   mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   icon=":material/download:", on_click="ignore", key="sc_download_xlsx")
