"""Patient page: the what-if form. Enter a patient, see the risk, its band and why; change a value and
see the new risk beside the previous one. Under the result, four sections shown one at a time on request:
the risk across one value's range, what would lower the risk, similar patients, the patient's report.

Scoring is core.risk.patient_risk on the session's model (numpy: no Keras, no retraining, no reloading).
A change in the form reruns only the form and what depends on it (a fragment), and only the chosen section
is computed: server CPU per change ~220 -> ~50 ms, browser main thread ~380 -> ~260 ms (bench/dashboard.py
form_to_chart; in the benchmark the browser shares the server's two cores, and its redraw is what decides
how soon the new risk shows).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import streamlit as st

from core.errors import CoreError
from core.model import as_bundle_meta
from core.metrics import MIN_PER_CLASS
from core.workflow import bands_sentence, patient_from_row, patient_risk, sensitivity, typical_patient
from core.workflow import conditional_imputer, percent_range, pooled_member_risks
from core.workflow import conflict_sentence, counterfactuals, default_modifiable, direction_conflicts, sentence
from core.workflow import similar_patients
from core.workflow import build_report, report_html, report_pdf
from core.workflow import audit_path, log_prediction
from core.evaluate import WIDE_INTERVAL, contradiction_sentence, direction_contradictions, ood_check
from core.evaluate import patient_uncertainty
from core.model import model_bands
from core.data import from_model, input_range, number_text, to_model, unit_options
from ui import figures
from ui.common import NOT_MEASURED, markdown_text, need_model
from ui.models import audit_identity
from ui.i18n import feature_label, feature_value, lang, lang_key, outcome_name, outcome_words, t
from ui.numbers import NotANumber, parse_number
from ui.resume import keep
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_fits_model, cohort_title, session_cache

BAND_COLOURS = {"low": "green", "intermediate": "orange", "high": "red"}


def band_name(band: str) -> str:
    return {"low": t("band.low"), "intermediate": t("band.intermediate"), "high": t("band.high")}[band]


def unit_key(f) -> str:
    return f"pt_unit_{f.name}"


def value_key(f, unit: str | None) -> str:
    """A measurement's widget key. The unit is part of it: the range changes with it, the value is converted."""
    return f"pt_{f.name}" + (f"__{unit}" if unit else "")


def coded_key(f) -> str:
    """A coded feature's widget key (its options are translated: one key per language)."""
    return lang_key(f"pt_{f.name}")


def shown_unit(f, unit: str | None) -> str:
    """A unit as the session's language writes it ('岁' for years; mmol/L stays)."""
    return f.display_unit(lang()) if unit == f.unit else (unit or "")


def current_unit(f) -> str | None:
    options = unit_options(f)
    if not options:
        return None
    unit = st.session_state.get(unit_key(f))
    return unit if unit in options else options[0]


def unit_decimals(step: float) -> int:
    """Decimals of a unit's resolution (1 -> 0, 0.1 -> 1, 0.01 -> 2)."""
    return 0 if step >= 1 else max(0, round(-math.log10(step)))


def fill_form(model, values: dict, only: bool = False) -> None:
    """Write clinical values (model units) into the form's text fields, in each field's unit
    (``only``: just the features in ``values``, the others keep what the user typed). The risk uses the
    text the field shows, parsed, so a value is written at the precision it is to be used."""
    for f in model.preprocessor_.features:
        if only and f.name not in values:
            continue
        value = values.get(f.name)
        if f.is_coded:
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            st.session_state[coded_key(f)] = NOT_MEASURED if missing else value
            continue
        unit = current_unit(f)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        shown = None if missing else from_model(value, f, unit)
        lo, hi, step = input_range(f, unit)
        if shown is not None:  # a cohort value outside the plausible range was already set to missing
            shown = min(max(shown, lo if lo is not None else shown), hi if hi is not None else shown)
        st.session_state[value_key(f, unit)] = "" if shown is None else number_text(shown, unit_decimals(step))


def prefill() -> None:
    model = st.session_state.get("model")
    if model is None:
        return
    cohort = active_cohort()
    fits = cohort_fits_model(cohort, model)
    try:
        if st.session_state.get(lang_key("pt_source")) == "row" and fits:
            values = patient_from_row(model, cohort.df, int(st.session_state.get("pt_row", 1)) - 1)
        else:
            values = typical_patient(model, cohort.df if fits else None)
    except CoreError as exc:
        st.session_state["pt_error"] = str(exc)
        return
    fill_form(model, values)


def change_unit(f) -> None:
    """Convert the value already typed when the unit switches, so the patient stays the same (shown at the
    new unit's resolution, which is then what is used). Text that is not a number moves across as typed:
    its message stays next to the field. A value out of range is converted, never clamped."""
    new = st.session_state.get(unit_key(f))
    old = st.session_state.get(f"pt_unit_prev_{f.name}", unit_options(f)[0])
    if new is None:  # required=True: not expected; keep the unit in use
        new = old
    text = st.session_state.get(value_key(f, old))
    try:
        value = parse_number(text)
    except NotANumber:
        st.session_state[value_key(f, new)] = text
    else:
        if value is not None:
            _, _, step = input_range(f, new)
            st.session_state[value_key(f, new)] = number_text(from_model(to_model(value, f, old), f, new),
                                                              unit_decimals(step), extra=0)
        else:
            st.session_state[value_key(f, new)] = ""
    st.session_state[f"pt_unit_prev_{f.name}"] = new


def range_text(lo, hi, unit_shown: str) -> str:
    return t("patient.range", lo=f"{lo:g}" if lo is not None else "—", hi=f"{hi:g}" if hi is not None else "—",
             unit=unit_shown)


def input_widget(f, pre, j: int) -> tuple[object, str | None]:
    """One feature as a labelled field (the label above it, in full). Returns (value in model units or
    None for not measured, the reason it is refused or None).

    A measurement is a text field read by ui.numbers.parse_number, not a bounded number input: that one
    kept a typed out-of-range value on screen while the risk used the previous one, read '0,5' as 5 and
    turned a cleared field into its minimum (issue 16.1-3). Here an empty field is 'not measured', text
    that is not a number or a value outside the plausible range is refused next to the field, and the
    risk is not computed until it is corrected."""
    label = feature_label(f)
    if f.is_coded:
        # "Not measured" is an option of its own, not an empty select: an empty (index=None) select was
        # cleared by Esc, silently turning a finding into "not measured" and moving the risk (QA).
        options = [NOT_MEASURED] + (list(pre.categories_[f.name]) if f.is_categorical else f.code_values())
        key = coded_key(f)
        if st.session_state.get(key, NOT_MEASURED) is None:  # a form saved before this option existed
            st.session_state[key] = NOT_MEASURED
        names = {v: feature_value(f, v) for v in options[1:]} | {NOT_MEASURED: t("patient.missing_placeholder")}
        chosen = st.selectbox(label, options, key=key, format_func=names.get, persist_state="session")
        return (None if chosen is None or chosen == NOT_MEASURED else chosen), None
    units = unit_options(f)
    unit = current_unit(f)
    unit_shown = shown_unit(f, unit)
    if len(units) > 1:
        st.session_state.setdefault(f"pt_unit_prev_{f.name}", unit)
        st.segmented_control(t("patient.unit", label=label), units, key=unit_key(f), default=unit,
                             on_change=change_unit, args=(f,), required=True, persist_state="session")
    lo, hi, _ = input_range(f, unit)
    key = value_key(f, unit)
    text = st.text_input(f"{label} ({unit_shown})" if unit_shown else label, key=key,
                         placeholder=t("patient.missing_placeholder"),
                         help=t("patient.range_help", range=range_text(lo, hi, unit_shown)), persist_state="session")
    try:
        shown = parse_number(text)
    except NotANumber:
        problem = t("patient.not_a_number", text=text.strip())
    else:
        if shown is None:
            return None, None
        if (lo is not None and shown < lo) or (hi is not None and shown > hi):
            problem = t("patient.outside", range=range_text(lo, hi, unit_shown))
        else:
            return to_model(shown, f, unit), None
    st.markdown(f":red[:material/error: {markdown_text(problem)}]")  # under the field it is about
    return None, f"{label}: {problem}"


# ---- the page's sections -------------------------------------------------------------------------
def patient_form(model, cohort, fits: bool) -> dict:
    """The inputs: where the values come from, then one field per feature. Returns (values in model units,
    the refused fields' messages)."""
    pre = model.preprocessor_
    st.subheader(t("patient.inputs"))
    sources = ["typical", "row"] if fits else ["typical"]
    st.radio(t("patient.prefill"), sources, key=lang_key("pt_source"), horizontal=True, on_change=prefill,
             format_func={"typical": t("patient.prefill_typical"), "row": t("patient.prefill_row")}.get,
             persist_state="session")
    if not fits:
        st.caption(t("patient.cohort_mismatch"))
    if st.session_state.get("pt_row", 1) > cohort.n:  # the cohort changed under a chosen row
        del st.session_state["pt_row"]
    if st.session_state.get(lang_key("pt_source")) == "row":
        st.selectbox(t("patient.row"), list(range(1, cohort.n + 1)), key="pt_row", on_change=prefill,
                     help=t("patient.row_help", name=cohort_title(cohort)), persist_state="session")
    pt_error = st.session_state.pop("pt_error", None)
    if pt_error:
        st.error(pt_error, icon=":material/error:")
    values, problems = {}, []
    cols = st.columns(2)
    for j, f in enumerate(pre.features):
        with cols[j % 2]:
            values[f.name], problem = input_widget(f, pre, j)
        if problem:
            problems.append(problem)
    return values, problems


def patient_key(values: dict) -> tuple:
    """The patient as a hashable key: what the previous risk, the what-if cache and the audit compare."""
    return tuple((k, None if v is None else round(float(v), 6) if isinstance(v, (int, float)) else str(v))
                 for k, v in sorted(values.items()))


def result_panel(model, values: dict, key: tuple):
    """Risk, band, previous risk, trust notes, the top reasons and the waterfall. Returns the PatientRisk."""
    pre, schema = model.preprocessor_, model.schema
    st.subheader(t("patient.result"))
    try:
        started = time.perf_counter()
        result = patient_risk(model, values, lang=lang(), top=len(pre.features))  # the model's own bands
        elapsed_ms = (time.perf_counter() - started) * 1000
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return None

    history = st.session_state.setdefault("pt_history", {"key": None, "risk": None, "previous": None})
    if history["key"] != key:
        history["previous"] = history["risk"] if history["key"] is not None else None
        history["key"], history["risk"] = key, result.risk
    previous = history["previous"]

    c1, c2 = st.columns(2)
    delta = None if previous is None else f"{(result.risk - previous) * 100:+.1f} {t('patient.points')}"
    outcome = model.schema.outcome_name(lang())  # None: the UCI cohort's own wording
    c1.metric(t("patient.risk_of", outcome=outcome) if outcome else t("patient.risk"), f"{result.risk:.1%}",
              delta=delta, delta_color="inverse", border=True,
              help=t("patient.risk_of_help", outcome=outcome) if outcome else t("patient.risk_help"))
    if previous is not None:
        c2.metric(t("patient.previous"), f"{previous:.1%}", border=True)
    st.badge(t("patient.band", band=band_name(result.risk_band)), color=BAND_COLOURS[result.risk_band],
             icon=":material/monitor_heart:")
    st.caption(bands_sentence(model_bands(model), lang()))

    if result.missing is not None:
        missing_panel(model, result)

    # Trust: the ensemble's range, the calibrated risk when it is not what the reasons add up to, and
    # whether this patient is unlike the training patients.
    patient_raw = result.explanation.raw[0]
    spread = patient_uncertainty(model, patient_raw)
    if result.missing is not None and spread.members > 1:
        # each network's risk as the reported one is: the mean over the plausible values of what is missing
        low, high = (float(x) for x in np.percentile(pooled_member_risks(model, patient_raw)[:, 0], [10, 90]))
        bands = model_bands(model)
        spread = replace(spread, risk=result.risk, low=low, high=high, wide=high - low > WIDE_INTERVAL,
                         crosses_band=any(low < c <= high for c in (bands.low, bands.high)))
    if spread.members > 1:
        st.markdown(t("patient.interval", risk=f"{spread.risk:.0%}", low=f"{spread.low:.0%}", high=f"{spread.high:.0%}",
                      n=spread.members))
        if spread.alert == "warning":  # only where the disagreement can change the band (Uncertainty.alert)
            st.warning(t("patient.interval_wide", width=f"{(spread.high - spread.low) * 100:.0f}"),
                       icon=":material/warning:")
        elif spread.alert == "info":
            st.info(t("patient.interval_band"), icon=":material/info:")
    calibration = getattr(model, "calibration_", None)
    if calibration is not None and not calibration.folds_into_networks:
        st.info(t("patient.isotonic_note", risk=f"{result.risk:.1%}", raw=f"{result.explained_risk:.1%}"),
                icon=":material/info:")
    unusual = ood_check(model, patient_raw)
    if unusual.unusual:
        labels = ", ".join(feature_label(schema[n]) for n in unusual.features) or t("patient.ood_combination")
        st.warning(t("patient.ood", features=labels), icon=":material/travel_explore:")

    if result.check.extrapolated:
        names = []
        for name in result.check.extrapolated:
            j = pre.feature_names.index(name)
            f = pre.features[j]
            names.append(t("patient.extrapolated_item", label=feature_label(f), lo=f"{pre.raw_min_[j]:g}",
                           hi=f"{pre.raw_max_[j]:g}", unit=f.display_unit(lang())))
        st.warning(t("patient.extrapolated", features="; ".join(names)), icon=":material/warning:")

    st.markdown(f"**{t('patient.reasons')}**")
    for reason in result.reasons[:3]:
        st.markdown(f"- {reason.text}")
    # A reason whose direction in this model is the opposite of medicine's is said to be an artefact.
    shown = {reason.feature for reason in result.reasons[:3]}
    for direction in model_contradictions(model):
        if direction.feature in shown:
            st.warning(markdown_text(contradiction_sentence(direction, model.schema, lang())),
                       icon=":material/warning:")
    # The bars add up to what SHAP explains (the uncalibrated output under isotonic recalibration; the note says
    # so); inputs not measured are bars apart from the reasons.
    st.plotly_chart(figures.waterfall(result.reasons, result.explanation.base_value, result.explained_risk,
                                      result.not_measured), key="waterfall", config={"displayModeBar": False})
    st.caption(t("patient.timing", ms=f"{elapsed_ms:.0f}"))
    return result


def missing_panel(model, result) -> None:
    """Inputs not measured: the estimate with its range, which measurement would settle it most, and the
    values those inputs have in the training patients the estimate is drawn from."""
    schema, info = model.schema, result.missing
    labels = [feature_label(schema[n]) for n in info.features]
    ends = percent_range(info.low, info.high)
    if ends is None:
        st.markdown(t("patient.missing_same", risk=f"{result.risk:.0%}", features=", ".join(labels)))
    else:
        st.markdown(t("patient.missing_range", risk=f"{result.risk:.0%}", low=ends[0], high=ends[1],
                      features=", ".join(labels)))
    settles = feature_label(schema[info.settles_most])
    if len(info.features) == 1:
        st.markdown(t("patient.settles_one", feature=settles))
    else:
        st.markdown(t("patient.settles_most", feature=settles))
    lines = []
    for name in info.features:
        f = schema[name]
        shown = info.values[name]
        if f.is_coded:
            values = ", ".join(f"{feature_value(f, v)} {w:.0%}" for v, w in shown if w >= 0.005)
        else:  # a measurement: its range there (a list of 20 numbers says less)
            numbers = [v for v, _ in shown]
            values = f"{feature_value(f, min(numbers))} – {feature_value(f, max(numbers))}"
        lines.append(t("patient.missing_values", label=feature_label(f), values=values))
    # (result.missing is only set when the model has an imputer)
    st.caption(" ".join(lines) + " " + t("patient.missing", k=conditional_imputer(model).k))


def sensitivity_panel(model, values: dict) -> None:
    """One measurement varied across its plausible range, the others held: the risk as a curve."""
    pre, schema = model.preprocessor_, model.schema
    numeric = [f for f in pre.features if not f.is_coded]
    if not numeric:
        st.info(t("patient.sensitivity_none"), icon=":material/info:")
        return
    names = [f.name for f in numeric]
    default = names.index("thalach") if "thalach" in names else 0
    sens_key = lang_key("pt_sens_feature")
    chosen = st.selectbox(t("patient.sensitivity_feature"), names, index=0 if sens_key in st.session_state else default,
                          key=sens_key, format_func={n: feature_label(schema[n]) for n in names}.get)
    f = schema[chosen]
    try:
        curve = sensitivity(model, values, chosen)
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    unit = current_unit(f)
    curve = curve.assign(value=[from_model(v, f, unit) for v in curve.value])
    now = values.get(chosen)  # None: not measured, no "now" line (the form shows no value either)
    st.plotly_chart(figures.sensitivity(curve, None if now is None else from_model(now, f, unit), feature_label(f),
                                        shown_unit(f, unit)),
                    key="sensitivity", config={"displayModeBar": False})
    st.caption(t("patient.sensitivity_help"))


def apply_whatif(changes: dict) -> None:
    """'Apply to form': the suggested values go into the form's widgets before the rerun draws them."""
    model = st.session_state.get("model")
    if model is not None:
        fill_form(model, changes, only=True)


WHATIF_TARGET_PCT = 20  # the what-if search's default target risk, %


def whatif_settings(schema) -> tuple[int, list]:
    """The what-if target and modifiable features: as chosen in its section, or the defaults before it was
    ever opened. Never the research mode's features (the report carries no research results)."""
    chosen = st.session_state.get(lang_key("pt_cf_features"))
    allowed = default_modifiable(schema)
    return (int(st.session_state.get("pt_cf_target", WHATIF_TARGET_PCT)),
            allowed if chosen is None else [n for n in chosen if n in allowed])


def whatif_search(model, values: dict, key: tuple, target_pct: int, features: list, research: bool = False):
    """The counterfactual search for this patient and these settings (kept in the session: the search
    runs once per patient, not once per rerun). Returns the result, or the error's message."""
    def search():
        try:
            return counterfactuals(model, values, target_pct / 100, features, research=research)
        except CoreError as exc:
            return str(exc)

    return session_cache("pt_cf", (st.session_state.get("model_token"), key, target_pct, tuple(features), research),
                         search)


def model_conflicts(model) -> list:
    """Where this model's average direction contradicts the clinical one (once per model and session)."""
    return session_cache("pt_cf_conflicts", st.session_state.get("model_token"), lambda: direction_conflicts(model))


def model_contradictions(model) -> list:
    """Where this model's average direction contradicts clinical knowledge (once per model and session)."""
    return session_cache("pt_contradictions", st.session_state.get("model_token"),
                         lambda: direction_contradictions(model))


def whatif_panel(model, values: dict, key: tuple) -> None:
    """The smallest plausible changes of modifiable features, each in its clinical direction, that bring
    the risk under a target, each with 'Apply to form'; what they mean; where the model disagrees with the
    clinic. A research switch (off by default) lets any feature move either way, marked as research."""
    schema = model.schema
    st.caption(t("whatif.meaning"))
    for conflict in model_conflicts(model):
        st.warning(markdown_text(conflict_sentence(conflict, schema, lang())), icon=":material/warning:")
    research = st.toggle(t("whatif.research"), value=False, key="pt_cf_research", help=t("whatif.research_help"))
    names = model.preprocessor_.feature_names if research else default_modifiable(schema)
    cf_key = lang_key("pt_cf_features_research" if research else "pt_cf_features")
    c1, c2 = st.columns([1, 2])
    target_pct = c1.slider(t("whatif.target"), 5, 60, WHATIF_TARGET_PCT, step=1, format="%d%%", key="pt_cf_target",
                           help=t("whatif.target_help"))
    chosen_features = c2.multiselect(t("whatif.research_features") if research else t("whatif.features"), names,
                                     default=None if cf_key in st.session_state else names,
                                     key=cf_key, format_func={n: feature_label(schema[n]) for n in names}.get,
                                     help=t("whatif.research_help") if research else t("whatif.features_help"))
    if research:
        st.warning(t("whatif.research_warning"), icon=":material/science:")
    found = whatif_search(model, values, key, target_pct, chosen_features, research)
    if isinstance(found, str):
        st.error(found, icon=":material/error:")
    elif not found.alternatives:
        st.info(found.message(lang()), icon=":material/info:")
    else:
        for i, alt in enumerate(found.alternatives):
            text_col, button_col = st.columns([5, 1], vertical_alignment="center")
            text_col.markdown(f"{i + 1}. {markdown_text(sentence(alt, schema, lang()))}")
            button_col.button(t("whatif.apply"), key=f"pt_cf_apply_{i}", on_click=apply_whatif,
                              args=({c.feature: c.new for c in alt.changes},), icon=":material/edit_note:")
        st.caption(t("whatif.help", ms=f"{found.seconds * 1000:.0f}"))


def similar_panel(model, values: dict, cohort, fits: bool) -> None:
    """The k most similar patients of the active cohort, their outcomes and risks."""
    pre = model.preprocessor_
    if not fits:
        st.info(t("similar.cohort_mismatch"), icon=":material/info:")
        return
    k = st.number_input(t("similar.k"), min_value=1, max_value=min(50, cohort.n), value=min(10, cohort.n),
                        step=1, key="pt_similar_k")
    try:
        similar = similar_patients(model, values, cohort.df, cohort.y, k=int(k))
    except CoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.caption(t("similar.source", name=markdown_text(cohort_title(cohort)), n=cohort.n))
    m1, m2, m3 = st.columns(3)
    rate_help = t("similar.outcome_rate_help", k=similar.k, n=MIN_PER_CLASS)
    named = outcome_name(model.schema)
    rate_label = (t("similar.outcome_rate_named", outcome=named, k=similar.k) if named
                  else t("similar.outcome_rate", k=similar.k))
    if similar.outcome_too_few:
        m1.metric(rate_label, t("metric.too_few"), border=True, help=rate_help)
    else:
        m1.metric(rate_label, f"{similar.outcome_rate:.0%}", border=True, help=rate_help)
        m1.caption(t("metric.interval", low=f"{similar.outcome_low:.0%}", high=f"{similar.outcome_high:.0%}"))
    m2.metric(t("similar.mean_risk"), f"{similar.mean_risk:.1%}", border=True)
    m3.metric(t("patient.risk_of", outcome=named) if named else t("patient.risk"), f"{similar.patient_risk:.1%}",
              border=True)
    shown = similar.table.copy()
    for f in pre.features:
        shown[f.name] = [feature_value(f, v) for v in shown[f.name]]
    positive, negative = outcome_words(model.schema)
    shown["outcome"] = [positive if v == 1 else negative for v in shown["outcome"]]
    shown["risk"] = shown["risk"] * 100
    labels = {"row": t("similar.row"), "distance": t("similar.distance"), "outcome": t("similar.outcome"),
              "risk": t("similar.risk"), **{f.name: feature_label(f) for f in pre.features}}
    st.dataframe(shown.rename(columns=labels), hide_index=True,
                 column_config={t("similar.risk"): st.column_config.NumberColumn(format="%.1f%%"),
                                t("similar.distance"): st.column_config.NumberColumn(format="%.2f")})
    st.caption(t("similar.help"))


def model_name() -> str:
    """The session's model as the report and the audit trail name it."""
    info = st.session_state.get("model_info") or {}
    meta = as_bundle_meta(st.session_state.get("model_meta"))
    return info.get("name") or meta.name or t("sidebar.unsaved_model")


def report_panel(model, values: dict) -> None:
    """The patient's one-page report (PDF or printable HTML), with the what-if suggestions."""
    schema = model.schema
    meta = as_bundle_meta(st.session_state.get("model_meta"))
    name = model_name()
    language, target_pct, features = lang(), *whatif_settings(schema)
    report_values = dict(values)

    def report(for_pdf: bool):
        # Built only when clicked (fonts take a second or two to embed), on Streamlit's download thread:
        # plain arguments only, no session state there.
        try:
            found = counterfactuals(model, report_values, target_pct / 100, features)
            whatifs = [sentence(a, schema, language) for a in found.alternatives]
        except CoreError:
            whatifs = []
        return build_report(model, report_values, meta=meta, model_name=name, model_version=None, lang=language,
                            whatifs=whatifs, for_pdf=for_pdf)

    r1, r2 = st.columns(2)
    r1.download_button(t("report_dl.pdf"), lambda: report_pdf(report(True)), file_name="heart-risk-report.pdf",
                       mime="application/pdf", icon=":material/picture_as_pdf:", on_click="ignore", key="pt_report_pdf")
    r2.download_button(t("report_dl.html"), lambda: report_html(report(False)).encode("utf-8"),
                       file_name="heart-risk-report.html", mime="text/html", icon=":material/print:",
                       on_click="ignore", key="pt_report_html")
    st.caption(t("report_dl.help"))


def audit(values: dict, key: tuple, result) -> None:
    """The audit trail (off unless HEART_RISK_AUDIT names a file): one line per prediction shown."""
    audit_file = audit_path(st.secrets)
    token = st.session_state.get("model_token")
    if audit_file is None or st.session_state.get("pt_audit_key") == (token, key):
        return
    try:
        log_prediction(audit_file, values, result.risk, **audit_identity(), source="patient",
                       risk_band=result.risk_band)
    except OSError:
        st.warning(t("audit.write_failed"), icon=":material/warning:")
    st.session_state["pt_audit_key"] = (token, key)


# The sections under the result, one at a time and none until asked for (the choice is kept for the
# session): with the risk curve drawn by default, each form change also redrew a second Plotly chart from
# scratch, ~20% of the browser's work per change (bench/dashboard.py, form_to_chart).
MORE_KEY = "pt_more"


@st.fragment
def patient_view() -> None:
    """The form and all that depends on it. A change in the form reruns only this function, not app.py's
    sidebar and navigation; of the four sections under the result only the one chosen is computed and sent."""
    model = st.session_state["model"]
    cohort = active_cohort()
    fits = cohort_fits_model(cohort, model)
    left, right = st.columns([6, 5], gap="large")
    with left:
        values, problems = patient_form(model, cohort, fits)
    keep()  # a form change reruns only this fragment: keep what is typed for a reload now
    key = patient_key(values)
    with right:
        if problems:  # a refused field: no risk at all rather than one for values no longer on screen
            st.subheader(t("patient.result"))
            st.error(t("patient.not_updated", fields="; ".join(problems)), icon=":material/block:")
            return
        result = result_panel(model, values, key)
    if result is None:
        return
    labels = {"sensitivity": t("patient.sensitivity"), "whatif": t("whatif.title"), "similar": t("similar.title"),
              "report": t("report_dl.title")}
    shown = st.segmented_control(t("patient.more"), list(labels), format_func=labels.get, key=MORE_KEY,
                                 persist_state="session")
    if shown == "sensitivity":
        sensitivity_panel(model, values)
    elif shown == "whatif":
        whatif_panel(model, values, key)
    elif shown == "similar":
        similar_panel(model, values, cohort, fits)
    elif shown == "report":
        report_panel(model, values)
    audit(values, key, result)


# ---- the page ----------------------------------------------------------------------------------
ensure_shell()  # when this page runs without app.py
st.title(t("patient.title"))
model = need_model()
token = st.session_state.get("model_token")
if st.session_state.get("pt_token") != token:  # a new model
    st.session_state["pt_token"] = token
    st.session_state["pt_history"] = {"key": None, "risk": None, "previous": None}
    # The patient being entered stays when the new model takes the same inputs (QA: training on another
    # cohort reset the form to typical values and the patient was lost); otherwise a fresh, typical form.
    features = list(model.preprocessor_.feature_names)
    if st.session_state.get("pt_features") != features:  # (set_model keeps the form only for the same inputs)
        prefill()
    st.session_state["pt_features"] = features
patient_view()
