"""Cohort page: choose the data (demo, upload, UCI archive), see what validation did, profile it.

No modelling here and no TensorFlow: this is the page that opens first.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.data import cohort_from_frame, load_cohort, read_table
from core.errors import CoreError
from core.data import Code, Feature, Schema, default_rule, infer_schema, is_cleveland
from core.data import cleveland_url, fetch_cleveland
from ui.common import key_figure, missing_values_frame, show_problems, show_table
from ui.i18n import lang, lang_key, t
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_fits_model, set_cohort, shared_demo_cohort

SOURCES = ("demo", "upload", "uci")
KINDS = ["numeric", "ordinal", "binary", "categorical"]
ROLES = ["feature", "ignored"]
DISTRIBUTIONS_KEY = "cohort_distributions_open"


def source_label(key: str) -> str:
    labels = {"demo": t("cohort.source_demo"), "upload": t("cohort.source_upload"), "uci": t("cohort.source_uci")}
    return labels[key]


def refuse(exc: CoreError) -> None:
    """A file that cannot be used: its message, and the problems found on the way; nothing else changes."""
    st.session_state["cohort_error"] = {"message": str(exc), "problems": getattr(exc, "problems", [])}


def show_refusal() -> None:
    error = st.session_state.get("cohort_error")
    if error:
        st.error(t("cohort.refused", message=error["message"]), icon=":material/error:")
        if error["problems"]:
            show_problems(error["problems"])
        st.caption(t("cohort.kept"))


def accept(cohort) -> None:
    set_cohort(cohort)
    st.session_state.pop("cohort_error", None)
    st.session_state.pop("pending_table", None)


# ---- sources -----------------------------------------------------------------------------------
def demo_source(cohort) -> None:
    st.caption(t("cohort.demo_help"))
    if not cohort.synthetic and st.button(t("cohort.use_demo"), icon=":material/science:"):
        accept(shared_demo_cohort())
        st.rerun()


def upload_source() -> None:
    limit_mb = int(st.get_option("server.maxUploadSize"))
    upload = st.file_uploader(t("cohort.upload_label"), type=["csv", "txt", "tsv", "data"], key="cohort_upload",
                              help=t("cohort.upload_help", mb=limit_mb))
    st.caption(t("cohort.upload_limit", mb=limit_mb))
    if upload is not None and upload.file_id != st.session_state.get("upload_seen"):
        st.session_state["upload_seen"] = upload.file_id
        st.session_state.pop("cohort_error", None)
        st.session_state.pop("pending_table", None)
        data = upload.getvalue()
        try:
            read = read_table(data, name=upload.name, max_bytes=limit_mb * 2**20)
            if read.uci_format or is_cleveland(read.df.columns):
                accept(load_cohort(data, name=upload.name))  # the Cleveland layout: its shipped schema
                st.session_state["cohort_note"] = t("cohort.loaded", name=upload.name)
                st.rerun()  # the sidebar, drawn above, shows the new cohort
            else:
                st.session_state["pending_table"] = read  # the user says what the columns mean first
        except CoreError as exc:
            refuse(exc)
    pending = st.session_state.get("pending_table")
    if pending is not None:
        schema_editor(pending)


def uci_source() -> None:
    st.caption(t("cohort.uci_help", url=cleveland_url()))
    if st.button(t("cohort.fetch_uci"), icon=":material/cloud_download:"):
        st.session_state.pop("cohort_error", None)
        with st.spinner(t("cohort.fetching")):
            try:
                accept(fetch_cleveland())
            except CoreError as exc:
                refuse(exc)
            else:
                st.session_state["cohort_note"] = t("cohort.fetched")
                st.rerun()


# ---- a CSV that is not the Cleveland file: target, rule and schema --------------------------------
def _suggest_rule() -> None:
    pending = st.session_state.get("pending_table")
    target = st.session_state.get("schema_target")
    if pending is not None and target in pending.df.columns:
        st.session_state["schema_rule"] = default_rule(pending.df[target]) or ""


def schema_editor(read) -> None:
    df = read.df
    st.subheader(t("schema.title", name=read.name))
    st.caption(t("schema.help", rows=len(df), columns=len(df.columns)))
    columns = list(df.columns)
    target = st.selectbox(t("schema.target"), columns, index=None, key="schema_target", on_change=_suggest_rule,
                          placeholder=t("schema.target_placeholder"))
    if target is None:
        return
    rule = st.text_input(t("schema.rule"), key="schema_rule", help=t("schema.rule_help"))
    try:
        finite = df.replace([np.inf, -np.inf], np.nan)  # as load_cohort does: inf must not widen a range
        inferred = infer_schema(finite, target=target, positive_rule=rule.strip() or None)
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    others = [f for f in inferred.features if f.name != target]
    table = pd.DataFrame({
        "name": [f.name for f in others], "role": [f.role if f.role in ROLES else "ignored" for f in others],
        "kind": [f.kind for f in others], "label": [f.label for f in others],
        "label_zh": [f.label_zh or "" for f in others], "unit": [f.unit or "" for f in others],
        "min": [f.min for f in others], "max": [f.max for f in others],
        "codes": [", ".join(str(c.value if not isinstance(c.value, float) or not c.value.is_integer() else int(c.value))
                            for c in f.codes) for f in others]})
    config = {
        "name": st.column_config.TextColumn(t("schema.col_name"), disabled=True),
        "role": st.column_config.SelectboxColumn(t("schema.col_role"), options=ROLES, required=True),
        "kind": st.column_config.SelectboxColumn(t("schema.col_kind"), options=KINDS, required=True),
        "label": st.column_config.TextColumn(t("schema.col_label")),
        "label_zh": st.column_config.TextColumn(t("schema.col_label_zh")),
        "unit": st.column_config.TextColumn(t("schema.col_unit")),
        "min": st.column_config.NumberColumn(t("schema.col_min")),
        "max": st.column_config.NumberColumn(t("schema.col_max")),
        "codes": st.column_config.TextColumn(t("schema.col_codes"), disabled=True),
    }
    edited = st.data_editor(table, column_config=config, hide_index=True, num_rows="fixed",
                            key=f"schema_editor_{target}")
    if st.button(t("schema.apply"), type="primary", icon=":material/check:"):
        try:
            schema = edited_schema(inferred, target, rule, edited)
            cohort = cohort_from_frame(df, schema, name=read.name)
            cohort.read = read
        except CoreError as exc:
            refuse(exc)
            st.rerun()
        except ValueError as exc:  # pydantic: a field that is not of its type
            refuse(CoreError(t("schema.invalid", detail=_first_line(exc))))
            st.rerun()
        else:
            accept(cohort)
            st.session_state["cohort_note"] = t("cohort.loaded", name=read.name)
            st.rerun()


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip())


def edited_schema(inferred: Schema, target: str, rule: str, edited: pd.DataFrame) -> Schema:
    """The user's table back into a Schema (codes kept from inference; the target keeps its role)."""
    by_name = {f.name: f for f in inferred.features}
    features = []
    for row in edited.to_dict(orient="records"):
        base = by_name[row["name"]]
        codes: list[Code] = list(base.codes) if row["kind"] in ("binary", "categorical", "ordinal") else []
        features.append(Feature(
            name=base.name, role=row["role"], kind=row["kind"],
            label=base.label if _blank(row["label"]) else str(row["label"]).strip(),
            label_zh=None if _blank(row["label_zh"]) else str(row["label_zh"]).strip(),
            unit=None if _blank(row["unit"]) else str(row["unit"]).strip(),
            min=None if _blank(row["min"]) else float(row["min"]),
            max=None if _blank(row["max"]) else float(row["max"]),
            codes=codes, step=base.step))
    for f in features:
        if f.min is not None and f.max is not None and f.min > f.max:
            raise CoreError(t("schema.bad_range", column=f.name))
    target_feature = by_name[target].model_copy(update={"role": "target"})
    order = [f.name for f in inferred.features]
    features.append(target_feature)
    features.sort(key=lambda f: order.index(f.name))
    return Schema(features=features, target=target, positive_rule=rule.strip() or None, source="inferred")


# ---- profile figures ---------------------------------------------------------------------------
def build_distributions(cohort) -> list:
    from ui import figures  # Plotly's figure classes: not needed until the distributions are opened
    return [figures.distribution(cohort, f) for f in cohort.schema.model_features]


@st.cache_resource(show_spinner=False, max_entries=4)
def demo_distributions(fingerprint: str, language: str) -> list:
    """The shared demo cohort's figures, built once per language for everyone (13 figures take ~0.4 s to
    build; st.plotly_chart only reads a figure, so sharing them is safe)."""
    return build_distributions(shared_demo_cohort())


def distributions(cohort) -> list:
    """One figure per feature; another cohort's are kept in this session only, for its reruns."""
    if cohort is shared_demo_cohort():
        return demo_distributions(cohort.fingerprint, lang())
    key = (cohort.fingerprint, lang())
    cached = st.session_state.get("dist_cache")
    if cached is None or cached[0] != key:
        st.session_state["dist_cache"] = cached = (key, build_distributions(cohort))
    return cached[1]


# ---- the page ----------------------------------------------------------------------------------
ensure_shell()  # when this page runs without app.py
st.title(t("cohort.title"))
cohort = active_cohort()

source_labels = {key: source_label(key) for key in SOURCES}  # built now, in the session's language
source_key = lang_key("cohort_source")
choice = st.segmented_control(t("cohort.source"), SOURCES, format_func=source_labels.get, key=source_key,
                              default=None if source_key in st.session_state else "demo", required=True)
if choice == "demo":
    demo_source(cohort)
elif choice == "upload":
    upload_source()
else:
    uci_source()
show_refusal()
note = st.session_state.pop("cohort_note", None)
if note:
    st.success(note, icon=":material/check_circle:")

cohort = active_cohort()
st.divider()
st.subheader(t("cohort.active", name=cohort.name))
if cohort.synthetic:
    st.info(t("cohort.synthetic_note"), icon=":material/science:")
model = st.session_state.get("model")
if model is not None and not cohort_fits_model(cohort, model):
    st.warning(t("cohort.model_mismatch"), icon=":material/warning:")

positives = int(np.sum(cohort.y == 1))
c1, c2, c3, c4 = st.columns(4)
with c1:
    key_figure(t("cohort.rows"), f"{cohort.n}", "rows", help=t("cohort.rows_help", rows_in=cohort.rows_in or cohort.n))
with c2:
    key_figure(t("cohort.positive"), f"{positives}", "positive")
with c3:
    key_figure(t("cohort.negative"), f"{cohort.n - positives}", "negative")
with c4:
    key_figure(t("cohort.prevalence"), f"{cohort.prevalence:.1%}", "prevalence")
st.caption(t("cohort.outcome_rule", target=cohort.schema.target or "—", rule=cohort.schema.positive_rule or "> 0"))

st.subheader(t("cohort.report"))
st.caption(t("cohort.report_help"))
show_problems(cohort.problems)

st.subheader(t("cohort.missing_title"))
show_table(missing_values_frame(cohort))

# Drawn only when opened (the choice is kept for the session): Plotly's 4.7 MB frontend and 13 charts held
# the browser's main thread for 1-2 s while the rest of this first page was being drawn (bench/dashboard.py).
features = cohort.schema.model_features
section = st.expander(t("cohort.distributions_open", n=len(features)), key=DISTRIBUTIONS_KEY, on_change="rerun",
                      icon=":material/bar_chart:")
if section.open:
    charts = distributions(cohort)
    with section:
        for start in range(0, len(features), 3):
            cols = st.columns(3)
            for col, feature, fig in zip(cols, features[start:start + 3], charts[start:start + 3]):
                with col:
                    st.plotly_chart(fig, key=f"dist_{feature.name}", config={"displayModeBar": False})
st.caption(t("cohort.fingerprint", fingerprint=cohort.fingerprint[:16]))
