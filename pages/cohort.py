"""Cohort page: choose the data (demo, upload, UCI archive), see what validation did, profile it.

No modelling here and no TensorFlow: this is the page that opens first.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.data import cohort_from_frame, load_cohort, read_table
from core.errors import CoreError
from core.data import Code, Schema, concept_feature, default_rule, infer_clinical_schema, is_cleveland
from core.data import propose_mapping, propose_target, vocabulary
from core.data import cleveland_url, fetch_cleveland
from ui.common import key_figure, missing_values_frame, show_problems, show_table
from ui.i18n import lang, lang_key, t
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_fits_model, cohort_title, session_cache, set_cohort, shared_demo_cohort

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


UPLOAD_TYPES = (".csv", ".txt", ".tsv", ".dat", ".data", ".xlsx")


def upload_source() -> None:
    limit_mb = int(st.get_option("server.maxUploadSize"))
    # Every type is accepted by the widget: its own refusal of a type is a message 1 px high. The page says it.
    upload = st.file_uploader(t("cohort.upload_label"), key="cohort_upload", help=t("cohort.upload_help", mb=limit_mb))
    st.caption(t("cohort.upload_limit", mb=limit_mb))
    if upload is not None and upload.file_id != st.session_state.get("upload_seen"):
        st.session_state["upload_seen"] = upload.file_id
        st.session_state.pop("cohort_error", None)
        st.session_state.pop("pending_table", None)
        st.session_state.pop("upload_sheet", None)
        ext = ("." + upload.name.rsplit(".", 1)[-1].lower()) if "." in upload.name else ""
        if ext not in UPLOAD_TYPES:
            refuse(CoreError(t("cohort.bad_type", name=upload.name, ext=ext or "?")))
        else:
            read_upload(upload.getvalue(), upload.name, limit_mb)
    pending = st.session_state.get("pending_table")
    if pending is not None:
        if len(pending.sheets) > 1:
            sheet = st.selectbox(t("cohort.sheet"), pending.sheets, index=pending.sheets.index(pending.sheet),
                                 key="upload_sheet")
            if sheet != pending.sheet:
                read_upload(st.session_state["pending_bytes"], pending.name, limit_mb, sheet)
                st.rerun()
        schema_editor(pending)


def read_upload(data: bytes, name: str, limit_mb: int, sheet: str | None = None) -> None:
    """Read an upload: the UCI layouts load at once with the shipped schema, any other file waits for the
    user to confirm what its columns mean."""
    try:
        read = read_table(data, name=name, max_bytes=limit_mb * 2**20, sheet=sheet)
        if read.uci_format or is_cleveland(read.df.columns):
            accept(load_cohort(data, name=name))  # the Cleveland layout: its shipped schema
            st.session_state["cohort_note"] = t("cohort.loaded", name=name)
            st.rerun()  # the sidebar, drawn above, shows the new cohort
        else:
            st.session_state["pending_table"] = read  # the user says what the columns mean first
            st.session_state["pending_bytes"] = data
    except CoreError as exc:
        refuse(exc)


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


def concept_options() -> dict[str, str]:
    """Concept label in the session's language -> concept id ('—' = no concept)."""
    zh = lang() == "zh"
    return {"—": "", **{(c.label_zh if zh else c.label): c.id for c in vocabulary().concepts}}


def unit_choices() -> list[str]:
    return sorted({u for c in vocabulary().concepts for u in c.unit_names})


def proposed_mapping(read, target: str) -> list:
    """The vocabulary's proposal for this file and outcome, computed once (it reads every column)."""
    key = (id(read), target)
    cached = st.session_state.get("mapping_cache")
    if cached is None or cached[0] != key:
        st.session_state["mapping_cache"] = cached = (key, propose_mapping(read.df.drop(columns=[target])))
    return cached[1]


def schema_editor(read) -> None:
    df = read.df
    st.subheader(t("schema.title", name=read.name))
    st.caption(t("schema.help", rows=len(df), columns=len(df.columns)))
    columns = list(df.columns)
    if len(columns) < 2:
        st.error(t("schema.one_column"), icon=":material/error:")
        return
    if st.session_state.get("target_proposed_for") != id(read):  # once per file: the user's choice then stays
        st.session_state["target_proposed_for"] = id(read)
        proposal = propose_target(df)
        if proposal is not None:
            st.session_state["schema_target"], st.session_state["schema_rule"] = proposal
    target = st.selectbox(t("schema.target"), columns, index=None, key="schema_target", on_change=_suggest_rule,
                          placeholder=t("schema.target_placeholder"))
    if target is None:
        return
    rule = st.text_input(t("schema.rule"), key="schema_rule", help=t("schema.rule_help"))
    outcome_label = st.text_input(t("schema.outcome_label"), key="schema_outcome_label",
                                  help=t("schema.outcome_label_help"), placeholder=str(target))
    mapping = proposed_mapping(read, target)
    try:
        finite = df.replace([np.inf, -np.inf], np.nan)  # as load_cohort does: inf must not widen a range
        inferred = infer_clinical_schema(finite, target=target, positive_rule=rule.strip() or None, mapping=mapping)
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    options = concept_options()
    label_of = {v: k for k, v in options.items()}
    by_column = {m.column: m for m in mapping}
    others = [f for f in inferred.features if f.name != target]
    st.caption(t("schema.mapping_help"))
    table = pd.DataFrame({
        "name": [f.name for f in others],
        "concept": [label_of.get(f.concept or "", "—") for f in others],
        # The unit the file holds: the concept's own when no conversion is needed (None: no concept).
        "file_unit": [(by_column[f.name].unit or f.unit) if f.concept and f.name in by_column else None
                      for f in others],
        "evidence": ["; ".join(by_column[f.name].evidence) if f.name in by_column else "" for f in others],
        "role": [f.role if f.role in ROLES else "ignored" for f in others],
        "note": [f.excluded or "" for f in others],
        "kind": [f.kind for f in others], "label": [f.label for f in others],
        "label_zh": [f.label_zh or "" for f in others], "unit": [f.unit or "" for f in others],
        "min": pd.Series([f.min for f in others], dtype=float), "max": pd.Series([f.max for f in others], dtype=float),
        "codes": [", ".join(str(c.value if not isinstance(c.value, float) or not c.value.is_integer() else int(c.value))
                            for c in f.codes) for f in others]})
    config = {
        "name": st.column_config.TextColumn(t("schema.col_name"), disabled=True, pinned=True),
        "concept": st.column_config.SelectboxColumn(t("schema.col_concept"), options=list(options), required=True),
        "file_unit": st.column_config.SelectboxColumn(t("schema.col_file_unit"), options=unit_choices()),
        "evidence": st.column_config.TextColumn(t("schema.col_evidence"), disabled=True, width=620),
        "role": st.column_config.SelectboxColumn(t("schema.col_role"), options=ROLES, required=True),
        "note": st.column_config.TextColumn(t("schema.col_note"), disabled=True),
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
            schema = edited_schema(inferred, target, rule, edited, options, table)
            schema.outcome_label = outcome_label.strip() or None
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
    return (value is None or (isinstance(value, float) and np.isnan(value))
            or (isinstance(value, str) and not value.strip()))


def _same(a, b) -> bool:
    return (_blank(a) and _blank(b)) or a == b


def edited_schema(inferred: Schema, target: str, rule: str, edited: pd.DataFrame,
                  options: dict[str, str] | None = None, proposed: pd.DataFrame | None = None) -> Schema:
    """The user's table back into a Schema (codes kept from inference; the target keeps its role).

    A row whose concept or file unit was changed takes the concept's label, unit, range and codes; on a row
    whose mapping was kept, the user's own edits of label, range and kind win."""
    by_name = {f.name: f for f in inferred.features}
    before = {} if proposed is None else {r["name"]: r for r in proposed.to_dict(orient="records")}
    features = []
    for row in edited.to_dict(orient="records"):
        base = by_name[row["name"]]
        concept_id = (options or {}).get(row.get("concept") or "—", "")
        unit = None if _blank(row.get("file_unit")) else str(row["file_unit"])
        old = before.get(row["name"], {})
        remapped = concept_id and (not _same(row.get("concept"), old.get("concept"))
                                   or not _same(row.get("file_unit"), old.get("file_unit")))
        if remapped:
            concept = vocabulary()[concept_id]
            if unit is not None and unit not in concept.unit_names:
                raise CoreError(t("schema.bad_unit", column=base.name, unit=unit, concept=concept.label,
                                  units=", ".join(concept.unit_names) or "—"))
            mapped = concept_feature(base.name, concept, None if unit == concept.unit else unit)
            features.append(mapped.model_copy(update={"role": row["role"], "excluded": None}))
            continue
        if not concept_id and base.concept:  # the user took the concept away: the values' own inference
            base = base.model_copy(update={"concept": None, "standard_code": None, "source_unit": None,
                                           "source_factor": 1.0, "source_offset": 0.0, "not_measured": [],
                                           "negative_not_measured": False})
        codes: list[Code] = list(base.codes) if row["kind"] in ("binary", "categorical", "ordinal") else []
        features.append(base.model_copy(update=dict(
            role=row["role"], kind=row["kind"],
            label=base.label if _blank(row["label"]) else str(row["label"]).strip(),
            label_zh=None if _blank(row["label_zh"]) else str(row["label_zh"]).strip(),
            unit=None if _blank(row["unit"]) else str(row["unit"]).strip(),
            min=None if _blank(row["min"]) else float(row["min"]),
            max=None if _blank(row["max"]) else float(row["max"]),
            codes=codes, excluded=base.excluded if row["role"] == "ignored" else None)))
    for f in features:
        if f.min is not None and f.max is not None and f.min > f.max:
            raise CoreError(t("schema.bad_range", column=f.name))
    target_feature = by_name[target].model_copy(update={"role": "target"})
    order = [f.name for f in inferred.features]
    features.append(target_feature)
    features.sort(key=lambda f: order.index(f.name))
    return Schema(features=features, target=target, positive_rule=rule.strip() or None, source="inferred")


def meaning_frame(schema: Schema) -> pd.DataFrame:
    """Per column of the accepted cohort: its concept and code, the unit the file held and the model's, and
    whether it is a model input or kept out (and why)."""
    zh = lang() == "zh"
    concepts = {c.id: c for c in vocabulary().concepts}
    rows = []
    for f in schema.features:
        if f.role == "target":
            continue
        concept = concepts.get(f.concept or "")
        name = (concept.label_zh if zh else concept.label) if concept else "—"
        unit = f"{f.source_unit} → {f.unit}" if f.source_unit else (f.unit or "")
        role = t("cohort.meaning_input") if f.role == "feature" else t("cohort.meaning_out", reason=f.excluded or "—")
        rows.append({t("cohort.column"): f.name, t("cohort.meaning_concept"): name,
                     t("cohort.meaning_code"): f.standard_code or "", t("cohort.meaning_unit"): unit,
                     t("cohort.meaning_role"): role})
    return pd.DataFrame(rows)


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
    return session_cache("distributions", (cohort.fingerprint, lang()), lambda: build_distributions(cohort))


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
st.subheader(t("cohort.active", name=cohort_title(cohort)))
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
outcome_name = cohort.schema.outcome_label_zh if lang() == "zh" and cohort.schema.outcome_label_zh else \
    cohort.schema.outcome_label
if outcome_name:
    st.caption(t("cohort.outcome_named", outcome=outcome_name, target=cohort.schema.target or "—",
                 rule=cohort.schema.positive_rule or "> 0"))
else:
    st.caption(t("cohort.outcome_rule", target=cohort.schema.target or "—", rule=cohort.schema.positive_rule or "> 0"))

st.subheader(t("cohort.report"))
st.caption(t("cohort.report_help"))
show_problems(cohort.problems)

if any(f.concept or f.excluded for f in cohort.schema.features):
    st.subheader(t("cohort.meaning_title"))
    show_table(meaning_frame(cohort.schema))

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
