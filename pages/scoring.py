"""Score a cohort page: every patient of the active cohort or of an uploaded file gets a risk, a band,
an interval (when the model is an ensemble) and the top reasons; filter, sort, plot and download.

Up to ui.scoring_job.background_rows() patients (or without reasons) the page scores in its own run with
core.workflow.score_cohort (numpy; the reasons are exact SHAP values, computed in chunks under a progress
bar). A larger cohort with reasons is a background job (ui.scoring_job) through the CLI's batch scoring
(core.workflow.batch.score): progress, rate and time left on screen, the page usable meanwhile, a reload
back on the job, cancel; rows with a value the model must not see are listed with their row and rule.
A patient with inputs not measured gets the mean risk over their plausible values, its range and the
inputs' names (core.workflow.risk); those inputs are never among the reasons. The scored table is kept for
the session, so filtering does not score again.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.workflow import audit_path, log_table
from core.data import check_features, read_table
from core.errors import CoreError
from core.workflow import csv_bytes
from core.model import as_bundle_meta, model_bands
from core.workflow import bands_sentence
from core.workflow import percent_range
from core.workflow import BANDS, excel_bytes, filter_scored, score_cohort
from ui.common import file_slug, need_model, rule_text, show_problems
from ui.i18n import feature_label, lang, lang_key, t
from ui.models import audit_identity, model_bundle_dir, store_reason
from ui.scoring_job import ScoringJob, background_rows, progress_text, seconds_text
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_title, session_cache

BAND_COLOURS = {"low": "#2e7d32", "intermediate": "#ef6c00", "high": "#c62828"}
UPLOAD_TYPES = ["csv", "txt", "tsv", "data", "xlsx"]  # what core.data.read_table and the batch job read


def range_cell(low: float, high: float) -> str:
    """A range as "31.2%–34.0%" (decimals enough that its ends differ), or in words when it has no width."""
    ends = percent_range(low, high, decimals=1)
    return t("scoring.range_same") if ends is None else f"{ends[0]}–{ends[1]}"


def band_name(band: str) -> str:
    return {"low": t("band.low"), "intermediate": t("band.intermediate"), "high": t("band.high")}[band]


def read_source(source_id, load):
    """Read the patients once per file (or cohort) and model: (table as read, name), or the page stops
    with the reason (unreadable, or a column the model needs is absent)."""
    def read():
        try:
            table, name = load()
        except CoreError as exc:
            return None, None, str(exc)
        missing = [n for n in pre.feature_names if n not in table.columns]
        error = t("scoring.missing_columns", columns=", ".join(map(str, missing))) if missing else None
        return table, name, error

    key = (st.session_state.get("model_token"), source_id, lang())  # messages are in the session's language
    table, name, error = session_cache("scoring_input", key, read)
    if error:
        if name is not None:
            st.caption(t("scoring.which", name=name, n=f"{len(table):,}"))
        st.error(error, icon=":material/error:")
        st.stop()
    return table, name


def checked_source(source_id, table):
    """The in-page path: checked as a cohort is (text in a number column refused; implausible values and
    unknown codes set to missing), once per source and model; or the page stops with the problems."""
    def check():
        checked, problems = check_features(table, model.schema)
        if any(p.severity == "error" for p in problems):
            return None, problems, t("scoring.refused")
        out = table.reset_index(drop=True).copy()
        for col in checked.columns:
            out[col] = checked[col]
        return out, problems, None

    key = (st.session_state.get("model_token"), source_id, lang())
    checked, problems, error = session_cache("scoring_checked", key, check)
    if error:
        st.error(error, icon=":material/error:")
        show_problems(problems)
        st.stop()
    notable = [p for p in problems if p.rule != "missing"]
    if notable:
        with st.expander(t("scoring.problems", n=len(notable))):
            show_problems(notable)
    return checked


def write_audit(table: pd.DataFrame, risks, bands) -> None:
    audit_file = audit_path(st.secrets)
    if audit_file is not None:  # the audit trail, when on: one line per patient scored
        try:
            log_table(audit_file, table, pre.feature_names, risks, bands=bands, **audit_identity(), source="cohort")
        except OSError:
            st.warning(t("audit.write_failed"), icon=":material/warning:")


def show_bad_rows(listed: list[dict], count: int) -> None:
    """Rows a background job refused, as its manifest lists them: row, column, rule (never the value)."""
    if not count:
        return
    names = {f.name: feature_label(f) for f in pre.features}
    with st.expander(t("scoring.bad_rows", n=f"{count:,}"), icon=":material/warning:"):
        frame = pd.DataFrame({t("scoring.row"): [b["row"] for b in listed],
                              t("scoring.bad_column"): [names.get(b["column"], b["column"]) for b in listed],
                              t("scoring.bad_rule"): [rule_text(b["rule"]) for b in listed]})
        st.dataframe(frame, hide_index=True, height=min(36 * (len(frame) + 1) + 4, 400))
        if count > len(listed):
            st.caption(t("scoring.bad_rows_listed", n=f"{len(listed):,}", total=f"{count:,}"))


def show_result(scored, name, bad: tuple[list[dict], int] | None = None) -> None:
    """The scored table: counts per band, filter, table, histogram and downloads (both paths)."""
    full = scored.table
    counts = scored.band_counts()
    c0, c1, c2, c3 = st.columns(4)
    c0.metric(t("scoring.patients"), f"{len(full):,}", border=True)
    for col, band in zip((c1, c2, c3), BANDS):
        share = counts[band] / len(full) if len(full) else 0.0
        # the share under the count, without an arrow (an arrow reads as a change since last time)
        col.metric(band_name(band), f"{counts[band]:,}", delta=f"{share:.0%}", delta_color="off", delta_arrow="off",
                   border=True)
    st.caption(t("scoring.timing", seconds=seconds_text(scored.seconds)) + " " + bands_sentence(model_bands(model), lang()))
    if not scored.with_interval:
        st.caption(t("scoring.no_interval"))
    if bad is not None:
        show_bad_rows(*bad)

    f1, f2 = st.columns([2, 1])
    bands = f1.multiselect(t("scoring.filter_bands"), list(BANDS),
                           default=None if lang_key("sc_bands") in st.session_state else list(BANDS),
                           key=lang_key("sc_bands"), format_func={b: band_name(b) for b in BANDS}.get)
    min_risk = f2.slider(t("scoring.min_risk"), 0, 100, 0, step=1, format="%d%%", key="sc_min_risk")
    # A refused row has no risk and no band: it is in no band's view (the list above names it).
    view = filter_scored(full, bands, min_risk / 100).drop(columns=["problem"], errors="ignore")

    shown = view.copy()
    shown["risk_band"] = shown["risk_band"].map(band_name)
    if (full["missing"].fillna("") == "").all():  # nothing was left unmeasured: no empty range columns on screen
        shown = shown.drop(columns=["risk_low", "risk_high", "missing"])
    else:  # the inputs not measured by their clinical names, the range as one text: a complete row shows blanks,
        # not "None" (the download keeps the names and the two numbers)
        names = {f.name: feature_label(f) for f in pre.features}
        shown["missing"] = [", ".join(names.get(n, n) for n in m.split(", ")) if m else "" for m in shown["missing"]]
        shown.insert(shown.columns.get_loc("risk_low"), "risk_range",
                     ["" if np.isnan(lo) else range_cell(lo, hi) for lo, hi in zip(shown["risk_low"], shown["risk_high"])])
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
        hist.update_layout(title=t("scoring.histogram"), xaxis_title=t("scoring.risk_axis"),
                           yaxis_title=t("scoring.count_axis"), legend_title_text=t("scoring.band"), barmode="stack",
                           bargap=0, height=340, margin=dict(t=50, b=40), xaxis=dict(range=[0, 100]))
        st.plotly_chart(hist, key="sc_histogram", config={"displayModeBar": False})

    slug = file_slug(name, "cohort")
    d1, d2 = st.columns(2)
    # Both files are built only when asked for (100,000 rows: seconds for the CSV, a minute or more for Excel).
    d1.download_button(t("scoring.download_csv", n=len(view)), lambda: csv_bytes(view), file_name=f"risk-{slug}.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore", key="sc_download_csv")
    d2.download_button(t("scoring.download_xlsx", n=len(view)), lambda: excel_bytes(view), file_name=f"risk-{slug}.xlsx",
                       mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       icon=":material/download:", on_click="ignore", key="sc_download_xlsx")


# ---- the background job ------------------------------------------------------------------------
@st.fragment(run_every=1.0)
def job_progress() -> None:
    """Redrawn every second while the job runs (the rest of the page is not); a full run when it ends."""
    job = st.session_state.get("score_job")
    if job is None:
        return
    if job.finished:
        st.rerun()  # the whole page: the result replaces the progress
    snap = job.snapshot()
    st.progress(min(snap["rows_done"] / max(snap["total"], 1), 1.0), text=progress_text(snap))
    if snap["cancelling"]:
        st.caption(t("scoring.job_cancelling"))
    else:  # cancelled in the click's callback: the run it starts already says "cancelling"
        st.button(t("scoring.job_cancel"), icon=":material/cancel:", key="sc_job_cancel", on_click=job.cancel)


def job_panel(job: ScoringJob) -> None:
    """The session's job, whichever source the page now shows: its progress, or its outcome; then stop."""
    st.caption(t("scoring.job_which", name=job.name, n=f"{job.total:,}"))
    if not job.finished:
        st.caption(t("scoring.job_note_running"))
        job_progress()
        st.stop()
    if st.button(t("scoring.job_new"), icon=":material/restart_alt:", key="sc_job_new"):
        del st.session_state["score_job"]
        st.rerun()
    if job.status == "done":
        if not job.audited:
            job.audited = True
            rows = job.scored.table[job.scored.table["risk"].notna()]
            write_audit(rows, rows["risk"], rows["risk_band"])
        st.caption(t("scoring.job_model", model=job.model_label or t("sidebar.unsaved_model")))
        if job.with_reasons and job.lang != lang():  # the reasons' words were written when it ran
            names = {"en": t("language.en"), "zh": t("language.zh")}  # in the page's language: "英文"
            st.caption(t("scoring.job_reasons_lang", language=names.get(job.lang, job.lang)))
        unread = job.total - len(job.scored.table)
        if unread > 0:  # a part of the file that could not be read: said, never a silently shorter table
            reasons = "; ".join(sorted({str(b.get("error")) for b in (job.manifest or {}).get("bad_files") or []}))
            st.warning(t("scoring.job_unread", n=f"{unread:,}", total=f"{job.total:,}", reason=reasons or "—"),
                       icon=":material/warning:")
        show_result(job.scored, job.name, bad=job.bad_rows())
    elif job.status == "cancelled":
        st.info(t("scoring.job_cancelled", done=f"{job.rows_done:,}", total=f"{job.total:,}"), icon=":material/cancel:")
    else:
        st.error(t("scoring.job_failed_internal", kind=job.error) if job.internal_error
                 else t("scoring.job_failed", message=job.error), icon=":material/error:")
    st.stop()


ensure_shell()  # when this page runs without app.py
st.title(t("scoring.title"))
model = need_model()
pre = model.preprocessor_
cohort = active_cohort()
if st.session_state.get("score_job") is not None:
    job_panel(st.session_state["score_job"])  # stops the run

source = st.segmented_control(t("scoring.source"), ["active", "upload"], key=lang_key("sc_source"), default="active",
                              required=True, format_func={"active": t("scoring.source_active"),
                                                          "upload": t("scoring.source_upload")}.get)
token = st.session_state.get("model_token")
upload = None
if source == "upload":
    upload = st.file_uploader(t("scoring.upload"), type=UPLOAD_TYPES, key="sc_upload", help=t("scoring.upload_help"))
    if upload is None:
        st.info(t("scoring.upload_hint", columns=", ".join(pre.feature_names)), icon=":material/info:")
        st.stop()

    def load_upload():
        read = read_table(upload)
        return read.df, read.name

    source_id = ("upload", upload.file_id, token)
    table, name = read_source(source_id, load_upload)
else:
    source_id = ("active", cohort.name, cohort.fingerprint, token)
    table, name = read_source(source_id, lambda: (cohort.df, cohort.name))
title = cohort_title(cohort) if source == "active" else name
st.caption(t("scoring.which", name=title, n=f"{len(table):,}"))
trained_on = as_bundle_meta(st.session_state.get("model_meta"))
if source == "active" and trained_on.fingerprint == cohort.fingerprint:
    # The clinical standard: no number reported on the data it was fitted on, or said so beside it (QA).
    st.warning(t("scoring.in_sample", n=f"{(trained_on.n_train or 0) + (trained_on.n_val or 0):,}", total=f"{len(table):,}"),
               icon=":material/warning:")

# Reasons on by default at any size: a large cohort scores in the background, so they cost no wait on screen.
with_reasons = st.checkbox(t("scoring.with_reasons"), value=True, key="sc_reasons",
                           help=t("scoring.with_reasons_help", threshold=f"{background_rows():,}"))
if with_reasons and len(table) > background_rows():
    st.info(t("scoring.job_offer", n=f"{len(table):,}", threshold=f"{background_rows():,}"), icon=":material/schedule:")
    if st.button(t("scoring.job_start", n=f"{len(table):,}"), type="primary", icon=":material/play_arrow:",
                 key="sc_job_start"):
        try:
            bundle = model_bundle_dir()  # the job loads the model from its verified files, as the CLI does
        except (CoreError, OSError) as exc:
            st.error(t("scoring.job_no_bundle", reason=store_reason(exc)), icon=":material/error:")
            st.stop()
        info = st.session_state.get("model_info") or {}
        suffix = Path(upload.name).suffix.lower() if upload is not None else ""
        if upload is not None and suffix != ".xlsx":  # the file as uploaded: read as `python -m core score` would
            data = {"data": upload.getvalue(), "suffix": suffix if suffix in {f".{x}" for x in UPLOAD_TYPES} else ".csv"}
        else:  # the cohort, or a workbook as read here (the job would read a workbook whole, as one part: no
            # progress until the end), as Parquet in parts
            data = {"table": table}
        job = ScoringJob(bundle, name=title, total=len(table), with_reasons=True, lang=lang(), model=model,
                         model_label=info.get("name"), **data)
        st.session_state["score_job"] = job.start()
        st.session_state.pop("sc_result", None)
        st.rerun()
    st.stop()

table = checked_source(source_id, table)
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
    write_audit(table, scored.table["risk"], scored.table["risk_band"])
show_result(stored[1], name)
