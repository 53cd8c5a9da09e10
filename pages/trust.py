"""Trust page: can this model's risks be trusted? Calibration (and recalibration), decision curves with a
threshold chooser, subgroups, external validation on another site's file, a logistic-regression second
opinion, and the uncertainty ensemble.

Everything is core's (core.trust, calibration, decision, subgroups, external, glassbox); the page lays it
out. Results are computed on the model's own test split, recovered from the active cohort
(core.trust.model_splits); on another cohort only external validation is offered.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math

import numpy as np
import pandas as pd
import streamlit as st

from core import plots
from core.errors import CoreError
from core.evaluate import (
    MIN_PER_CLASS,
    SMALL_GROUP,
    WIDE_INTERVAL,
    calibration_report,
    default_columns,
    model_splits,
    subgroup_table,
)
from core.metrics import (
    binary_metrics,
    decision_curve,
    grid_ends,
    threshold_summary,
    useful_ranges,
)
from core.model import BandCutoffs, as_bundle_meta, band_summary, model_bands, model_meta
from core.workflow import bands_sentence, useful_ranges_text
from ui.common import metric_with_interval, need_model, show_problems, show_table
from ui.i18n import lang, lang_key, outcome_name, t
from ui.models import save_and_activate
from ui.shell import ensure_shell
from ui.state import active_cohort, session_cache, set_model

ensure_shell()  # when this page runs without app.py
st.title(t("trust.title"))
st.caption(t("trust.intro"))
model = need_model()
named = outcome_name(model.schema)  # what the risk is a risk of: the cohort's words (None: the UCI wording)
cohort = active_cohort()
# A saved model's metadata is shared read-only between sessions: changes are copies (BundleMeta.updated)
# that go back through the session.
meta = as_bundle_meta(st.session_state.get("model_meta"))
info = st.session_state.get("model_info") or {}
token = st.session_state.get("model_token")
fingerprint = meta.fingerprint


def cached(name: str, key, compute):
    """A value computed once per (model, cohort, key) in this session."""
    return session_cache(f"trust_{name}", (token, cohort.fingerprint, key), compute)


def with_interval(value, interval: dict, digits: int) -> str:
    """A held-out number with its 95% interval, or "too few patients" (never a bare number at small n)."""
    if interval.get("too_few"):
        return t("metric.too_few")
    return f"{num(value, digits)} ({t('metric.interval', low=num(interval['low'], digits), high=num(interval['high'], digits))})"


def method_name(method: str) -> str:
    names = {"auto": t("trust.method_auto"), "platt": t("trust.method_platt"), "isotonic": t("trust.method_isotonic"),
             "none": t("trust.method_none")}
    return names.get(method, method)


def metric_label(key: str) -> str:
    names = {"sensitivity": t("metric.sensitivity"), "specificity": t("metric.specificity"), "ppv": t("metric.ppv"),
             "npv": t("metric.npv")}
    return names.get(key, key)


def pct(value, digits: int = 0) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}%}"


def num(value, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def figure(fig, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displayModeBar": False})


def adopt(updated, note: str) -> None:
    """Make a recalibrated / grown copy the session's model (unsaved until the user saves it)."""
    metrics = meta.metrics
    if splits is not None:
        df, y = cohort.df.reset_index(drop=True), np.asarray(cohort.y, dtype=float)
        metrics = binary_metrics(y[splits.test], updated.predict_risk(df.iloc[splits.test]))
    # What the model is (calibration, members...) from the model; its story (cohort, checks) carried over.
    new_meta = model_meta(updated, name=None, metrics=metrics, data_fingerprint=fingerprint,
                          extra=meta.extra.model_dump(exclude_none=True))
    new_info = {**info, "source": "trained", "name": None}
    set_model(updated, new_info, new_meta)
    st.session_state["trust_note"] = note
    st.rerun()


def save_panel(key: str) -> None:
    """Save the session's (changed) model as a new version in the store."""
    if info.get("source") != "trained":
        return
    with st.form(f"trust_save_{key}"):
        name = st.text_input(t("trust.save_name"), value=st.session_state.get("save_name_default", "heart-mlp"),
                             max_chars=64)
        if st.form_submit_button(t("trust.save"), icon=":material/save:"):
            path = save_and_activate(model, name, meta)
            if path is not None:
                st.session_state["trust_note"] = t("trust.saved", name=name.strip(), version=path.name)
                st.rerun()


def band_label(band: str) -> str:
    return {"low": t("band.low"), "intermediate": t("band.intermediate"), "high": t("band.high")}[band]


def bands_panel(y, risk) -> None:
    """The model's risk bands, chosen here by the clinician who adopts the model: what each choice means
    per 100 of these patients (held out from training), then 'use these bands', kept with who and when."""
    st.subheader(t("trust.bands_title"))
    current = model_bands(model)
    st.caption(bands_sentence(current, lang()) + " " + t("trust.bands_help"))
    low, high = st.slider(t("trust.bands_cutoffs"), 1, 99, (round(current.low * 100), round(current.high * 100)),
                          format="%d%%", key="trust_bands")
    if low >= high:
        st.warning(t("trust.bands_same"), icon=":material/warning:")
        return
    proposed = BandCutoffs(low / 100, high / 100)
    ranges = {"low": f"< {low}%", "intermediate": f"{low}–{high}%", "high": f"≥ {high}%"}
    rows = band_summary(y, risk, proposed)
    show_table(pd.DataFrame({
        t("trust.bands_band"): [band_label(r["band"]) for r in rows],
        t("trust.bands_range"): [ranges[r["band"]] for r in rows],
        t("trust.bands_patients"): [f"{r['per_100']:.0f}" for r in rows],
        (t("trust.bands_events_named", outcome=named) if named else t("trust.bands_events")):
            [f"{r['events_per_100']:.0f}" for r in rows],
        (t("trust.bands_rate_named", outcome=named) if named else t("trust.bands_rate")): [pct(r["rate"]) for r in rows]}))
    st.caption(t("trust.bands_per_100", n=len(y)))
    with st.form("trust_bands_form"):
        who = st.text_input(t("trust.bands_set_by"), max_chars=80, key="trust_bands_who")
        if st.form_submit_button(t("trust.bands_use"), icon=":material/tune:"):
            if not who.strip():
                st.error(t("trust.bands_need_name"), icon=":material/error:")
                return
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            chosen = BandCutoffs(low / 100, high / 100, set_by=who.strip(), set_utc=now)
            updated = copy.copy(model)  # the stored model is shared between sessions: never changed in place
            updated.bands_ = chosen
            set_model(updated, {**info, "source": "trained", "name": None}, meta.updated(bands=chosen.to_dict()))
            st.session_state["trust_note"] = t("trust.bands_set", sentence=bands_sentence(chosen, lang()))
            st.rerun()


note = st.session_state.pop("trust_note", None)
if note:
    st.success(note, icon=":material/check_circle:")

try:
    splits = model_splits(model, cohort, fingerprint)
except CoreError:
    splits = None
    st.info(t("trust.other_cohort"), icon=":material/info:")

df_all = cohort.df.reset_index(drop=True)
y_all = np.asarray(cohort.y, dtype=float)
if splits is not None:
    df_test, y_test = df_all.iloc[splits.test], y_all[splits.test]
    risk_test = cached("risk_test", None, lambda: model.predict_risk(df_test))
    # What the model card reports from these checks (saved with the model when it is saved).
    from core.evaluate import trust_summary
    summary = cached("summary", lang(), lambda: trust_summary(model, df_test, y_test, lang()))
    if meta.extra.trust != summary:
        meta = meta.updated(extra={**meta.extra.model_dump(), "trust": summary})
        st.session_state["model_meta"] = meta
    outcome = model.schema.outcome_name(lang())  # None: the UCI wording ("with disease")
    st.caption(t("trust.on_test_outcome", n=len(y_test), events=int(y_test.sum()), outcome=outcome) if outcome
               else t("trust.on_test", n=len(y_test), events=int(y_test.sum())))

tabs = st.tabs([t("trust.tab_calibration"), t("trust.tab_decision"), t("trust.tab_subgroups"),
                t("trust.tab_external"), t("trust.tab_glassbox"), t("trust.tab_uncertainty")])


def need_split() -> bool:
    if splits is None:
        st.info(t("trust.needs_training_cohort"), icon=":material/info:")
        return False
    return True


# ---- 1. calibration ------------------------------------------------------------------------------
with tabs[0]:
    if need_split():
        report = cached("calibration", None, lambda: calibration_report(model, df_test, y_test))
        method = report["method"]
        site = getattr(model.calibration_, "site_update", None)
        st.markdown(t("trust.calibration_in_force", method=t("card.recal_site", site=site) if site else method_name(method)))
        rows = [("calibration_slope", t("metric.calibration_slope"), 2), ("calibration_intercept",
                t("metric.calibration_intercept"), 2), ("ece", t("trust.ece"), 3), ("brier", t("metric.brier"), 3),
                ("mean_risk", t("trust.mean_risk"), 3), ("observed_rate",
                 (t("trust.observed_rate_named", outcome=named) if named else t("trust.observed_rate")), 3)]
        table = pd.DataFrame({t("card.metric"): [label for _, label, _ in rows],
                              t("trust.before"): [num(report["before"][k], d) for k, _, d in rows],
                              t("trust.after"): [num(report["after"][k], d) for k, _, d in rows]})
        st.dataframe(table, hide_index=True)
        curves = {t("trust.before"): report["curve_before"]}
        if method != "none":
            curves[t("trust.after")] = report["curve_after"]
        fig = plots.calibration_bands(curves, title=t("trust.calibration_fig"), perfect=t("fig.perfect"))
        fig.update_layout(xaxis_title=t("fig.predicted"), yaxis_title=t("fig.observed"))
        figure(fig, "trust_calibration")
        st.caption(t("trust.calibration_note", bins=report["n_bins"]))
        if method == "isotonic":
            st.warning(t("trust.isotonic_shap"), icon=":material/warning:")

        st.subheader(t("trust.recalibrate_title"))
        choices = ["auto", "platt", "isotonic", "none"]
        chosen = st.selectbox(t("trust.recalibrate_method"), choices, key=lang_key("trust_method"),
                              format_func=method_name)
        st.caption(t("trust.recalibrate_help", n=len(splits.train)))
        if st.button(t("trust.recalibrate"), icon=":material/tune:"):
            from core.evaluate import recalibrate
            try:
                updated = recalibrate(model, cohort, splits, method=chosen)
            except CoreError as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                cal = updated.calibration_
                scores = ", ".join(f"{method_name(k)} {v:.4f}" for k, v in cal.cv_brier.items())
                adopt(updated, t("trust.recalibrated", method=method_name(cal.method))
                      + (f" ({t('trust.cv_brier')}: {scores})" if scores else ""))
        save_panel("calibration")

# ---- 2. decision curve -------------------------------------------------------------------------------
with tabs[1]:
    if need_split():
        source = st.radio(t("trust.dca_source"), ["test", "cv"], horizontal=True, key=lang_key("trust_dca_source"),
                          format_func=lambda s: t("trust.dca_source_cv") if s == "cv" else t("trust.dca_source_test"))
        y_dca, risk_dca = y_test, risk_test
        if source == "cv":
            cv = st.session_state.get("trust_cv")
            if cv is None or cv[0] != (token, cohort.fingerprint):
                st.caption(t("trust.cv_help"))
                if st.button(t("trust.run_cv"), icon=":material/play_arrow:"):
                    from core.evaluate import cross_validate
                    with st.spinner(t("trust.cv_running")):
                        single = model.config.model_copy(update={"members": 1})
                        result = cross_validate(df_all, y_all, cohort.schema, single, n_splits=5, n_repeats=1)
                    pred = result.predictions[result.predictions["model"] == "mlp"].sort_values("row")
                    st.session_state["trust_cv"] = ((token, cohort.fingerprint), pred)
                    st.rerun()
                y_dca = None
            else:
                y_dca, risk_dca = cv[1]["outcome"].to_numpy(), cv[1]["risk"].to_numpy()
                st.caption(t("trust.cv_note", n=len(y_dca)))
        if y_dca is not None:
            threshold = st.slider(t("trust.threshold"), 1, 60, 15, format="%d%%", key="trust_threshold") / 100
            curve = decision_curve(y_dca, risk_dca)
            fig = plots.decision_curve(curve, threshold, title=t("trust.dca_fig"),
                                       names={"net_benefit": t("fig.model"), "treat_all": t("trust.treat_all"),
                                              "treat_none": t("trust.treat_none")})
            fig.update_layout(xaxis_title=t("trust.threshold_axis"), yaxis_title=t("trust.net_benefit"))
            figure(fig, "trust_dca")
            first, last = grid_ends(curve)
            st.markdown(useful_ranges_text({"useful_ranges": useful_ranges(curve), "thresholds_from": first,
                                            "thresholds_to": last}, lang()))
            s = threshold_summary(y_dca, risk_dca, threshold)
            cols = st.columns(4)
            for col, key in zip(cols, ("sensitivity", "specificity", "ppv", "npv")):
                col.metric(metric_label(key), pct(s[key]))
            st.markdown(t("trust.per_100", threshold=pct(threshold), flagged=round(s["flagged_per_100"]),
                          tp=round(s["true_positives_per_100"]), fp=round(s["false_alarms_per_100"]),
                          fn=round(s["missed_per_100"])))
            st.caption(t("trust.dca_note"))
            bands_panel(y_dca, risk_dca)
            save_panel("bands")

# ---- 3. subgroups ----------------------------------------------------------------------------------
with tabs[2]:
    if need_split():
        names = model.preprocessor_.feature_names
        labels = {f.name: f.display_label(lang()) for f in model.preprocessor_.features}
        columns = st.multiselect(t("trust.subgroup_columns"), names, default=default_columns(model.schema),
                                 format_func=lambda n: labels.get(n, n), key="trust_subgroup_columns")
        if columns:
            table = pd.concat([subgroup_table(df_test, y_test, risk_test, c, model.schema, lang=lang())
                               for c in columns], ignore_index=True)
            table["column"] = table["column"].map(lambda n: labels.get(n, n))
            # A group with too few patients has no AUC: it is named in the table, not drawn as a point.
            figure(plots.subgroup_auc(table[~table["too_few"]], title=t("trust.subgroup_fig")), "trust_subgroups")
            shown = pd.DataFrame({
                t("trust.sg_column"): table["column"], t("trust.sg_group"): table["group"],
                t("trust.sg_n"): table["n"], (t("trust.sg_events_named", outcome=named) if named
                                                                               else t("trust.sg_events")): table["events"],
                t("trust.sg_prevalence"): table["prevalence"].map(pct),
                t("trust.sg_mean_risk"): table["mean_risk"].map(pct),
                t("trust.sg_auc"): [t("trust.sg_too_few", n=MIN_PER_CLASS) if few else f"{num(a)} ({num(lo)}–{num(hi)})"
                                    for a, lo, hi, few in zip(table["auc"], table["auc_low"], table["auc_high"],
                                                              table["too_few"])],
                t("trust.sg_citl"): table["calibration_in_the_large"].map(lambda v: num(v, 2)),
                t("trust.sg_small"): table["small"].map(lambda s: t("trust.sg_small_yes") if s else "")})
            st.dataframe(shown, hide_index=True)
            if table["small"].any():
                st.warning(t("trust.sg_small_warning", n=SMALL_GROUP), icon=":material/warning:")
            st.caption(t("trust.subgroup_note", n=MIN_PER_CLASS))

# ---- 4. external validation ------------------------------------------------------------------------
with tabs[3]:
    st.markdown(t("trust.external_help"))
    # no type filter, as on the Cohort page: the reader recognises what it can read (.dat, .data, .tsv,
    # .xlsx...) and says in words what it cannot
    upload = st.file_uploader(t("trust.external_upload"), key="trust_external_file")
    if upload is not None:
        from core.evaluate import (
            ExternalFileError,
            external_cohort,
            external_extra,
            held_out_update,
            message_text,
            recalibrate_intercept,
            validate_external,
        )

        def run_external():
            ext = external_cohort(model, upload.getvalue(), name=upload.name)
            return ext, validate_external(model, ext)

        try:
            ext, result = cached("external", (upload.name, upload.size, upload.file_id), run_external)
        except CoreError as exc:
            said = exc.text(lang()) if isinstance(exc, ExternalFileError) else str(exc)
            st.error(t("trust.external_error", message=said), icon=":material/error:")
        else:
            cols = st.columns(4)
            cols[0].metric(t("trust.ext_patients"), result.n)
            cols[1].metric(t("trust.ext_prevalence"), pct(result.prevalence),
                           delta=None if result.training_prevalence is None else
                           f"{(result.prevalence - result.training_prevalence) * 100:+.0f} pp", delta_color="off")
            # Each measure with its 95% interval under it, or "too few patients" (QA: a 200-patient site's AUC,
            # Brier and calibration were bare numbers while the test split's had intervals).
            iv = result.intervals
            auc_iv = {"too_few": bool((iv.get("roc_auc") or {}).get("too_few")), "low": result.auc_low,
                      "high": result.auc_high}
            metric_with_interval(cols[2], t("metric.roc_auc"), result.metrics["roc_auc"], auc_iv, 3)
            metric_with_interval(cols[3], t("metric.brier"), result.metrics["brier"], iv.get("brier"), 3)
            cols = st.columns(3)
            metric_with_interval(cols[0], t("metric.calibration_intercept"), result.calibration["calibration_intercept"],
                        iv.get("calibration_intercept"), 2)
            metric_with_interval(cols[1], t("metric.calibration_slope"), result.calibration["calibration_slope"],
                        iv.get("calibration_slope"), 2)
            cols[2].metric(t("trust.ece"), num(result.calibration["ece"]), help=t("trust.ece_no_interval"))
            for message in result.messages:
                code = message["code"]
                if code == "prevalence_shift":
                    higher = message["direction"] == "higher"
                    text = (t("trust.msg_prevalence_higher", here=pct(message["prevalence"]), trained=pct(message["trained"]))
                            if higher else
                            t("trust.msg_prevalence_lower", here=pct(message["prevalence"]), trained=pct(message["trained"])))
                elif code == "citl":
                    text = t("trust.msg_citl", value=f"{message['intercept']:+.2f}")
                elif code == "empty_columns":
                    text = t("trust.msg_empty", columns=", ".join(message["columns"]))
                else:
                    text = message_text(message)
                st.warning(text, icon=":material/warning:")
            if result.problems:
                # Said and listed (column, rows, rule, what was done), as the Cohort page does (QA: a count alone).
                with st.expander(t("trust.ext_problems", n=len(result.problems)), icon=":material/rule:"):
                    show_problems(result.problems)
            c1, c2 = st.columns(2)
            with c1:
                fig = plots.calibration_bands({t("fig.model"): result.curve}, title=t("trust.calibration_fig"),
                                              perfect=t("fig.perfect"))
                fig.update_layout(xaxis_title=t("fig.predicted"), yaxis_title=t("fig.observed"))
                figure(fig, "trust_ext_calibration")
            with c2:
                fig = plots.decision_curve(result.decision, title=t("trust.dca_fig"),
                                           names={"net_benefit": t("fig.model"), "treat_all": t("trust.treat_all"),
                                                  "treat_none": t("trust.treat_none")})
                fig.update_layout(xaxis_title=t("trust.threshold_axis"), yaxis_title=t("trust.net_benefit"))
                figure(fig, "trust_ext_dca")
            recorded = st.session_state.setdefault("trust_external_recorded", set())
            if (token, upload.file_id) not in recorded:  # the card lists every external validation run
                recorded.add((token, upload.file_id))
                meta = meta.updated(extra=external_extra(meta, result))
                st.session_state["model_meta"] = meta
            st.subheader(t("trust.ext_recalibrate_title"))
            st.caption(t("trust.ext_recalibrate_help"))
            with st.form("trust_ext_recalibrate"):
                name = st.text_input(t("trust.save_name"), value=f"{(meta.name or 'heart-mlp')}-site"[:64],
                                     max_chars=64)
                if st.form_submit_button(t("trust.ext_recalibrate"), icon=":material/save:"):
                    try:
                        updated = recalibrate_intercept(model, result)
                        # Its metrics come from site patients the update was not fitted on (cross-fitted),
                        # not from the training split's test patients of the model before the update.
                        held_out = held_out_update(model, result)
                    except CoreError as exc:
                        st.error(str(exc), icon=":material/error:")
                    else:
                        extra = external_extra(meta, result, recalibrated=True, held_out=held_out)
                        path = save_and_activate(updated, name, meta.updated(extra=extra, metrics=held_out["metrics"]))
                        if path is not None:
                            after, iv = held_out["calibration"], held_out["intervals"]
                            st.session_state["trust_note"] = (
                                t("trust.saved", name=name.strip(), version=path.name) + " " +
                                t("trust.ext_after", n=held_out["n"],
                                  citl=with_interval(after["calibration_intercept"], iv["calibration_intercept"], 2),
                                  mean=pct(after["mean_risk"], 1), observed=pct(after["observed_rate"], 1),
                                  brier=with_interval(held_out["metrics"]["brier"], iv["brier"], 3)))
                            st.rerun()

# ---- 5. glass-box second opinion -------------------------------------------------------------------
with tabs[4]:
    if need_split():
        from core.evaluate import compare_global, fit_glassbox, odds_ratio_contradictions
        from core.workflow import compare_patient
        try:
            glass = cached("glassbox", None, lambda: fit_glassbox(model.schema, df_all.iloc[splits.train],
                                                                  y_all[splits.train]))
        except CoreError as exc:
            st.error(str(exc), icon=":material/error:")
            glass = None
        if glass is not None:
            st.markdown(t("trust.glass_intro"))
            lr_risk = glass.predict_risk(df_test)
            c1, c2 = st.columns(2)
            c1.metric(t("trust.glass_auc_mlp"), num(binary_metrics(y_test, risk_test)["roc_auc"]))
            c2.metric(t("trust.glass_auc_lr"), num(binary_metrics(y_test, lr_risk)["roc_auc"]))
            if glass.penalised_:
                st.warning(t("trust.glass_penalised"), icon=":material/warning:")
            ors = glass.odds_ratios(lang())
            # A missing interval says why in its cell (issue 16: "—–—" told the reader nothing): short enough
            # for the cell, with the full reason in a note under the table (a long cell text was cut off).
            no_interval = {"separated": t("trust.or_no_ci_separated_cell"),
                           "not_estimable": t("trust.or_no_ci_not_estimable_cell")}
            figure(plots.odds_ratio_forest(ors, title=t("trust.or_fig"), axis_title=t("trust.or_axis")), "trust_or")
            st.dataframe(pd.DataFrame({
                t("trust.or_feature"): ors["label"], t("trust.or_term"): ors["term"],
                t("trust.or_value"): ors["odds_ratio"].map(lambda v: num(v, 2)),
                t("trust.or_ci"): [f"{num(lo, 2)}–{num(hi, 2)}" if not why else no_interval[why]
                                   for lo, hi, why in zip(ors["low"], ors["high"], ors["no_interval"])]}),
                hide_index=True)
            if (ors["no_interval"] == "separated").any():
                st.caption(t("trust.or_no_ci_separated", cell=no_interval["separated"]))
            if (ors["no_interval"] == "not_estimable").any():
                st.caption(t("trust.or_no_ci_not_estimable", cell=no_interval["not_estimable"]))
            # Where the second opinion's direction contradicts medicine, say so (as for the network's own).
            for _, row in odds_ratio_contradictions(glass, ors).iterrows():
                words = dict(feature=row["label"], term=row["term"], value=num(row["odds_ratio"], 2),
                             low=num(row["low"], 2), high=num(row["high"], 2))
                if row["certain"]:
                    st.warning(t("trust.or_contradiction", **words), icon=":material/warning:")
                else:
                    side = t("trust.or_below") if row["odds_ratio"] < 1 else t("trust.or_above")
                    st.caption(t("trust.or_wrong_side", side=side, **words))
            side = cached("glass_global", lang(), lambda: compare_global(model, glass, df_test, lang()))
            fig = plots.importance_side_by_side(side, title=t("trust.side_fig"),
                                                names=(t("trust.side_mlp"), t("trust.side_lr")),
                                                axis_title=t("trust.side_axis"))
            figure(fig, "trust_side")
            flipped = side[side["disagree"]]["label"].tolist()
            if flipped:
                st.warning(t("trust.side_disagree", features=", ".join(flipped)), icon=":material/warning:")

            st.subheader(t("trust.glass_patient"))
            position = st.selectbox(t("trust.glass_patient_pick"), list(range(len(splits.test))),
                                    format_func=lambda k: t("trust.test_patient", k=k + 1, row=int(splits.test[k]) + 1),
                                    key=lang_key("trust_glass_patient"))  # its words follow the language
            from core.workflow import patient_from_row
            values = patient_from_row(model, df_all, int(splits.test[position]))
            both = compare_patient(model, glass, values, lang=lang())
            c1, c2 = st.columns(2)
            c1.metric(t("trust.glass_risk_mlp"), pct(both["mlp_risk"]))
            c2.metric(t("trust.glass_risk_lr"), pct(both["lr_risk"]))
            tbl = both["table"]
            kinds = {"direction": t("trust.disagree_direction"), "rank": t("trust.disagree_rank"), "": ""}
            # The disagreement next to the feature, and each model's rank beside its value: as six columns the
            # last ("Disagreement") was cut off at 1280 px. Widths hold the longest words of either language.
            st.dataframe(pd.DataFrame({
                t("trust.or_feature"): tbl["label"], t("trust.pt_disagree"): tbl["disagree"].map(kinds),
                t("trust.pt_mlp"): [f"{v * 100:+.1f} ({r})" for v, r in zip(tbl["mlp_shap"], tbl["mlp_rank"])],
                t("trust.pt_lr"): [f"{v:+.2f} ({r})" for v, r in zip(tbl["lr_logodds"], tbl["lr_rank"])]}),
                hide_index=True, column_config={
                    t("trust.or_feature"): st.column_config.TextColumn(width=250),
                    t("trust.pt_disagree"): st.column_config.TextColumn(width=160),
                    t("trust.pt_mlp"): st.column_config.TextColumn(width=185),
                    t("trust.pt_lr"): st.column_config.TextColumn(width=205)})
            if both["risks_differ"]:
                st.warning(t("trust.pt_risks_differ", mlp=pct(both["mlp_risk"]), lr=pct(both["lr_risk"]),
                             gap=f"{abs(both['mlp_risk'] - both['lr_risk']) * 100:.0f}",
                             bands=t("trust.pt_bands_differ") if both["bands"][0] != both["bands"][1] else ""),
                           icon=":material/warning:")
            if both["disagreements"]:
                st.warning(t("trust.pt_disagreements", n=len(both["disagreements"])), icon=":material/warning:")
            elif both["risks_differ"]:  # the reasons agree, the risks do not: "the models agree" would mislead
                st.caption(t("trust.pt_reasons_agree"))
            else:
                st.caption(t("trust.pt_agree"))

# ---- 6. uncertainty ensemble -----------------------------------------------------------------------
with tabs[5]:
    members = int(getattr(model, "n_members_", 1))
    st.markdown(t("trust.ensemble_status", n=members))
    st.caption(t("trust.ensemble_help", width=round(WIDE_INTERVAL * 100)))
    if members == 1 and splits is not None:
        if st.button(t("trust.ensemble_add"), icon=":material/stacks:"):
            from core.model import add_members
            grown = copy.copy(model)
            with st.spinner(t("trust.ensemble_running")):
                try:
                    add_members(grown, df_all.iloc[splits.train], y_all[splits.train], df_all.iloc[splits.val],
                                y_all[splits.val], members=5)
                except CoreError as exc:
                    st.error(str(exc), icon=":material/error:")
                    grown = None
            if grown is not None:
                adopt(grown, t("trust.ensemble_done", n=grown.n_members_))
    elif members > 1 and splits is not None:
        raw = model.preprocessor_.encode(df_test)
        risk, low, high = model.predict_interval_raw(raw)
        width = high - low
        c1, c2 = st.columns(2)
        c1.metric(t("trust.ensemble_median_width"), f"{np.median(width) * 100:.0f} pp")
        c2.metric(t("trust.ensemble_wide"), f"{int(np.sum(width > WIDE_INTERVAL))} / {len(width)}")
    save_panel("ensemble")
