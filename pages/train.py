"""Train page: configure and train the MLP in the background, watch it learn, judge it on the test split,
save / load / delete / import models.

All modelling is core's: core.pipeline.train_on_cohort (in ui.jobs' thread), core.evaluate, core.model's
bundles, core.store, core.bundle_zip. TensorFlow is imported by the engine when a run starts.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import streamlit as st
from pydantic import ValidationError

from core.errors import CoreError
from core.metrics import (
    MIN_PER_CLASS,
    N_BOOT,
    binary_metrics,
    calibration_table,
    metric_intervals,
    proportion_intervals,
    roc_frame,
)
from core.model import (
    TrainConfig,
    as_bundle_meta,
    bundle_to_zip,
    delete_draft,
    delete_model,
    draft_hours,
    import_bundle_zip,
    list_drafts,
    list_models,
)
from core.data import DEMO_NAME
from core.workflow import cohort_summary, option_names, training_metadata
from ui import figures
from ui.common import metric_with_interval
from ui.i18n import lang, t
from ui.jobs import TrainingJob, progress_text
from ui.models import activate_saved, draft_time, save_and_activate, show_store_error
from ui.shell import ensure_shell
from ui.state import active_cohort, cohort_title, forget_saved_bundles, load_saved_bundle

DEFAULT = TrainConfig()
DASHBOARD_MEMBERS = 5  # networks in the uncertainty ensemble: ~3x one fit's time, gives every risk a range
METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "roc_auc", "pr_auc", "brier",
           "calibration_slope", "calibration_intercept")


def metric_name(key: str) -> str:
    names = {"accuracy": t("metric.accuracy"), "sensitivity": t("metric.sensitivity"),
             "specificity": t("metric.specificity"), "ppv": t("metric.ppv"), "npv": t("metric.npv"),
             "roc_auc": t("metric.roc_auc"), "pr_auc": t("metric.pr_auc"), "brier": t("metric.brier"),
             "calibration_slope": t("metric.calibration_slope"),
             "calibration_intercept": t("metric.calibration_intercept")}
    return names.get(key, key)


# ---- training ----------------------------------------------------------------------------------
def config_from_form(values: dict) -> TrainConfig:
    text = values.pop("hidden").replace(" ", "")
    try:
        hidden = tuple(int(part) for part in text.split(",") if part)
    except ValueError:
        raise CoreError(t("train.bad_hidden")) from None
    if not hidden:
        raise CoreError(t("train.bad_hidden"))
    try:
        return TrainConfig(hidden=hidden, **values)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise CoreError(t("train.bad_config", detail=detail)) from None


@st.fragment(run_every=0.5)
def live_progress() -> None:
    """Redrawn every half second while the run lasts; a full rerun when it ends."""
    job = st.session_state.get("train_job")
    if job is None:
        return
    if job.finished:
        st.rerun()  # the whole page: the sidebar and the results show the new model
    snap = job.snapshot()
    total = job.config.epochs
    # Over the whole job: an ensemble's later networks used to run under a full bar (issue 16.6)
    st.progress(snap["fraction"], text=progress_text(snap, total))
    if snap["history"].get("loss"):
        cols = st.columns(3)
        for col, metric in zip(cols, ("loss", "accuracy", "auc")):
            col.plotly_chart(figures.training_curve(snap["history"], metric, max_epochs=total), key=f"live_{metric}",
                             config={"displayModeBar": False})
    else:
        st.caption(t("train.starting"))
    if snap["stopping"]:
        st.caption(t("train.stopping"))
    elif st.button(t("train.stop"), icon=":material/stop_circle:", key="stop_training"):
        job.stop()


# What the dashboard accepts per setting (TrainConfig allows more, e.g. 10,000 epochs from the CLI). The inputs
# have no bounds of their own: a bounded st.number_input keeps an out-of-range entry on screen with a red "!"
# and silently submits its old value, so the form did nothing. Here every entry is checked on submit and a
# refused one is named next to its field.
LIMITS = {"epochs": (1, 2000), "batch_size": (1, 4096), "learning_rate": (1e-5, 1.0), "l2": (0.0, 1.0),
          "patience": (1, 1000), "seed": (0, 2**31 - 1), "members": (1, 20)}


def out_of_range(values: dict) -> dict[str, str]:
    """{setting: message} for every entry outside LIMITS (or not a whole number where one is needed)."""
    errors = {}
    for name, (low, high) in LIMITS.items():
        value = values.get(name)
        if value is None:
            errors[name] = t("train.setting_missing")
        elif not low <= value <= high:
            errors[name] = t("train.setting_range", value=f"{value:g}", low=f"{low:g}", high=f"{high:g}")
        elif isinstance(low, int) and float(value) != int(value):
            errors[name] = t("train.setting_whole", value=f"{value:g}")
    return errors


def training_form(cohort, running: bool) -> None:
    errors = st.session_state.get("train_form_errors", {})

    def field(col, name: str, widget):
        if name in errors:
            col.error(errors[name], icon=":material/error:")
        return widget

    with st.form("train_form"):
        st.caption(t("train.defaults_note"))
        choices = option_names(lang())
        c1, c2, c3 = st.columns(3)
        values = {
            "hidden": c1.text_input(t("train.hidden"), value=",".join(str(u) for u in DEFAULT.hidden),
                                    help=t("train.hidden_help")),
            "activation": c1.selectbox(t("train.activation"), ["relu", "tanh", "sigmoid"], format_func=choices.get),
            "optimizer": c1.selectbox(t("train.optimizer"), ["adam", "sgd"], format_func=choices.get),
            "loss": c1.selectbox(t("train.loss"), ["bce", "mse"], format_func=choices.get),
            "epochs": field(c2, "epochs", c2.number_input(t("train.epochs"), value=DEFAULT.epochs, step=1,
                                                          help=t("train.range_help", low=1, high=2000))),
            "batch_size": field(c2, "batch_size", c2.number_input(t("train.batch"), value=DEFAULT.batch_size, step=1,
                                                                  help=t("train.range_help", low=1, high=4096))),
            "learning_rate": field(c2, "learning_rate", c2.number_input(
                t("train.lr"), value=DEFAULT.learning_rate, step=0.001, format="%.4f", help=t("train.lr_help"))),
            "l2": field(c2, "l2", c2.number_input(t("train.l2"), value=DEFAULT.l2, step=1e-4, format="%.5f")),
            "dropout": c3.slider(t("train.dropout"), 0.0, 0.9, DEFAULT.dropout, 0.05),
            "early_stopping": c3.checkbox(t("train.early_stopping"), DEFAULT.early_stopping,
                                          help=t("train.early_stopping_help")),
            "patience": field(c3, "patience", c3.number_input(t("train.patience"), value=DEFAULT.patience, step=1,
                                                              help=t("train.range_help", low=1, high=1000))),
            "seed": field(c3, "seed", c3.number_input(t("train.seed"), value=DEFAULT.seed, step=1)),
            # Every risk on the patient page comes with a range when the model is an ensemble (issue: trust).
            "members": field(c3, "members", c3.number_input(t("train.members"), value=DASHBOARD_MEMBERS, step=1,
                                                            help=t("train.members_help"))),
        }
        submitted = st.form_submit_button(t("train.start"), type="primary", icon=":material/play_arrow:",
                                          disabled=running)
        if errors:
            st.error(t("train.settings_refused", n=len(errors)), icon=":material/error:")
    if submitted and not running:
        refused = out_of_range(values)
        if refused:
            if refused != errors:
                st.session_state["train_form_errors"] = refused
                st.rerun()  # draw the messages next to their fields
            return
        st.session_state.pop("train_form_errors", None)
        for name in ("epochs", "batch_size", "patience", "seed", "members"):
            values[name] = int(values[name])
        try:
            config = config_from_form(values)
        except CoreError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        st.session_state.pop("train_error", None)
        st.session_state["train_job"] = TrainingJob(cohort, config).start()
        st.rerun()


# ---- results -----------------------------------------------------------------------------------
def results_panel(cohort) -> None:
    model = st.session_state.get("model")
    if model is None:
        return
    result = st.session_state.get("train_result")
    meta = as_bundle_meta(st.session_state.get("model_meta"))
    st.subheader(t("train.results"))
    trained_on = meta.extra.cohort
    if meta.fingerprint and meta.fingerprint != cohort.fingerprint:
        # After a cohort switch the model (and these results) are still the previous cohort's: say so, or the
        # metrics read as this cohort's (seen in QA).
        name = trained_on.get("name") or "?"
        if trained_on.get("synthetic") and name == DEMO_NAME:
            name = t("cohort.demo_name")
        st.info(t("train.results_other_cohort", trained=name, n=trained_on.get("rows", "?"),
                  active=cohort_title(cohort)), icon=":material/info:")
    history = getattr(model, "history_", None) or {}
    if history.get("loss"):
        cols = st.columns(3)
        for col, metric in zip(cols, ("loss", "accuracy", "auc")):
            col.plotly_chart(figures.training_curve(history, metric, best_epoch=model.best_epoch_), key=f"final_{metric}",
                             config={"displayModeBar": False})
    if result is None:  # a loaded bundle keeps its metrics, not the test patients' risks
        metrics = meta.metrics
        site = getattr(meta.extra, "site_update", None) or {}
        if site:
            st.caption(t("train.stored_metrics_site", n=site.get("n", "?"), site=site.get("site", "?"),
                         method=site.get("method", "?")))
        else:
            st.caption(t("train.stored_metrics"))
        metric_grid(metrics)
        return
    st.caption(t("train.results_help", n=len(result.test_y), train=result.sizes["train"],
                 validation=result.sizes["validation"]))
    proposed = float(getattr(result, "threshold", 0.5))
    if st.session_state.get("threshold_for") != id(result):  # a new training run: its proposal, not the old slider
        st.session_state["threshold_for"] = id(result)
        st.session_state["threshold"] = proposed
    show_proposed_threshold(result, proposed)
    threshold = st.slider(t("train.threshold"), 0.05, 0.95, step=0.01, key="threshold", help=t("train.threshold_help"))
    metrics = binary_metrics(result.test_y, result.test_risk, threshold)
    metric_grid(metrics, test_intervals(result, threshold))
    c1, c2, c3 = st.columns(3)
    auc = metrics["roc_auc"]
    c1.plotly_chart(figures.roc(roc_frame(result.test_y, result.test_risk), auc), key="roc")
    c2.plotly_chart(figures.calibration(calibration_table(result.test_y, result.test_risk, n_bins=5)),
                    key="calibration")
    c3.plotly_chart(figures.confusion(metrics, model.schema), key="confusion")


def show_proposed_threshold(result, proposed: float) -> None:
    """The proposed default threshold, the rule that chose it (on the training split) and what it means per
    100 test patients, which played no part in choosing it."""
    from core.metrics import threshold_summary
    s = threshold_summary(result.test_y, result.test_risk, proposed)
    prevalence = getattr(result.model, "prevalence_", float(np.mean(result.test_y)))
    if getattr(result, "threshold_rule", "fixed") == "youden":
        rule = t("train.rule_youden", prevalence=f"{prevalence:.0%}")
    else:
        rule = t("train.rule_fixed", prevalence=f"{prevalence:.0%}")
    ratio = lambda v: "—" if v != v else f"{v:.2f}"  # noqa: E731 - nan when the test split has one class
    st.info(t("train.threshold_proposed", threshold=f"{proposed:.2f}", rule=rule, n=s["n"],
              flagged=round(s["flagged_per_100"]), tp=round(s["true_positives_per_100"]),
              fn=round(s["missed_per_100"]), fp=round(s["false_alarms_per_100"]),
              sensitivity=ratio(s["sensitivity"]), specificity=ratio(s["specificity"])), icon=":material/tune:")


def test_intervals(result, threshold: float) -> dict:
    """95% intervals of the test metrics at ``threshold``. The AUC's and Brier's (a 1000-resample bootstrap)
    do not depend on the threshold: computed once per training run, not on every move of the slider."""
    key = ("test_intervals", id(result))
    if st.session_state.get("test_intervals_for") != key:
        st.session_state["test_intervals"] = metric_intervals(result.test_y, result.test_risk, threshold)
        st.session_state["test_intervals_for"] = key
    return {**st.session_state["test_intervals"], **proportion_intervals(result.test_y, result.test_risk, threshold)}


def stored_intervals(metrics: dict) -> dict:
    """The intervals a bundle stored with its metrics (``<measure>_low``/``_high``/``_too_few``)."""
    out = {}
    for key in METRICS:
        if metrics.get(f"{key}_too_few"):
            out[key] = {"too_few": True}
        elif metrics.get(f"{key}_low") is not None and metrics.get(f"{key}_high") is not None:
            out[key] = {"too_few": False, "low": metrics[f"{key}_low"], "high": metrics[f"{key}_high"]}
    return out


def metric_grid(metrics: dict, intervals: dict | None = None) -> None:
    """Each test metric with its 95% interval under it, or "too few patients" instead of a number."""
    intervals = stored_intervals(metrics) if intervals is None else intervals
    shown = [k for k in METRICS if k in metrics]
    for start in range(0, len(shown), 4):
        cols = st.columns(4)
        for col, key in zip(cols, shown[start:start + 4]):
            metric_with_interval(col, metric_name(key), metrics.get(key), intervals.get(key))
    if intervals:
        st.caption(t("metric.interval_note", boot=N_BOOT, n=MIN_PER_CLASS))


# ---- the model store ---------------------------------------------------------------------------
def save_panel(cohort) -> None:
    model = st.session_state.get("model")
    info = st.session_state.get("model_info") or {}
    if model is None or info.get("source") != "trained":
        return
    meta = st.session_state.get("model_meta")
    st.subheader(t("train.save_title"))
    name = st.text_input(t("train.save_name"), value=st.session_state.get("save_name_default", "heart-mlp"),
                         max_chars=64, help=t("train.save_name_help"))
    if st.button(t("train.save"), icon=":material/save:"):
        if meta is None:  # no session metadata (should not happen): describe the model from the cohort
            meta = training_metadata(model, {}, name=None, cohort=cohort_summary(cohort))
        # The session keeps the trained object (and its test results); the card now reads the saved metadata.
        path = save_and_activate(model, name, as_bundle_meta(meta))
        if path is not None:
            st.session_state["store_note"] = t("train.saved_note", name=name.strip(), version=path.name)
            st.rerun()


def drafts_panel() -> None:
    """This session's (or signed-in user's) drafts, apart from the named versions: each can be saved
    under a name (a normal version; the draft then goes) or deleted (issue 16.4)."""
    from ui.resume import signed_in_user
    token = st.session_state.get("resume_token")
    try:
        drafts = list_drafts(token=token, user=signed_in_user()) if token else []
    except (CoreError, OSError) as exc:
        show_store_error(exc)
        return
    if not drafts:
        return
    st.subheader(t("train.drafts_title"))
    st.caption(t("train.drafts_help", hours=draft_hours()))
    info = st.session_state.get("model_info") or {}
    for draft in drafts[:10]:
        key = draft["dir"].name
        current = info.get("draft_path") == str(draft["path"])
        label = t("train.draft_label", time=draft_time(draft["created"]))
        c1, c2, c3, c4 = st.columns([3, 3, 1.5, 2], vertical_alignment="bottom")
        c1.markdown(f"{label} {t('train.draft_current') if current else ''}")
        name = c2.text_input(t("train.save_name"), value="heart-mlp", max_chars=64, key=f"draft_name_{key}",
                             help=t("train.save_name_help"))
        if c3.button(t("train.draft_save"), icon=":material/save:", key=f"draft_save_{key}"):
            save_draft_as(draft, name, current)
        if c4.button(t("train.draft_delete"), icon=":material/delete:", key=f"draft_delete_{key}"):
            try:
                delete_draft(draft["path"])
            except (CoreError, OSError) as exc:
                show_store_error(exc)
            else:
                if current:
                    info["draft_path"] = None
                st.session_state["store_note"] = t("train.draft_deleted_note")
                st.rerun()


def save_draft_as(draft: dict, name: str, current: bool) -> None:
    """A draft saved under a name is an ordinary version (through the one save path); the draft goes."""
    try:
        if current:  # the session's own trained model: it stays, with its test results
            model, meta = st.session_state["model"], as_bundle_meta(st.session_state.get("model_meta"))
        else:
            model = load_saved_bundle(draft["path"])
            meta = model.metadata_
    except (CoreError, OSError) as exc:
        show_store_error(exc)
        return
    path = save_and_activate(model, name, meta)
    if path is None:
        return
    try:
        delete_draft(draft["path"])
    except (CoreError, OSError):
        pass  # saved under its name; the draft goes with the age cleanup
    st.session_state["store_note"] = t("train.saved_note", name=name.strip(), version=path.name)
    st.rerun()


def store_panel() -> None:
    st.subheader(t("train.store_title"))
    note = st.session_state.pop("store_note", None)
    if note:
        st.success(note, icon=":material/check_circle:")
    try:
        models = list_models()
    except (CoreError, OSError) as exc:
        show_store_error(exc)
        return
    if not models:
        st.caption(t("train.no_saved"))
    else:
        labels = {i: f"{m['name']} {m['path'].name} · {dt.datetime.fromtimestamp(m['mtime']):%Y-%m-%d %H:%M}"
                  for i, m in enumerate(models)}
        choice = st.selectbox(t("train.saved"), list(labels), format_func=labels.get, key="saved_choice")
        entry = models[choice if choice is not None and choice < len(models) else 0]
        c1, c2, c3 = st.columns(3)
        if c1.button(t("train.load"), icon=":material/upload_file:"):
            try:
                activate_saved(entry["path"])
            except (CoreError, OSError) as exc:
                show_store_error(exc)
            else:
                st.session_state["store_note"] = t("train.loaded_note", name=entry["name"], version=entry["path"].name)
                st.rerun()
        try:
            c2.download_button(t("train.download_zip"), bundle_to_zip(entry["path"]),
                               file_name=f"{entry['name']}-{entry['path'].name}.zip", mime="application/zip",
                               icon=":material/download:", on_click="ignore")
        except (CoreError, OSError):
            c2.caption(t("train.zip_unavailable"))
        confirm = c3.checkbox(t("train.confirm_delete"), key="confirm_delete")
        c3.button(t("train.delete"), icon=":material/delete:", disabled=not confirm, on_click=delete_version,
                  args=(entry["path"], entry["name"]))
        delete_error = st.session_state.pop("delete_error", None)
        if delete_error:
            st.error(delete_error, icon=":material/error:")

    with st.expander(t("train.import_title"), icon=":material/archive:"):
        st.caption(t("train.import_help"))
        upload = st.file_uploader(t("train.import_label"), type=["zip"], key="bundle_upload")
        import_name = st.text_input(t("train.import_name"), key="import_name", help=t("train.import_name_help"))
        if upload is not None and st.button(t("train.import"), icon=":material/input:"):
            try:
                path = import_bundle_zip(upload.getvalue(), import_name)
                activate_saved(path)
            except (CoreError, OSError) as exc:
                show_store_error(exc)
            else:
                st.session_state["store_note"] = t("train.imported_note", version=path.name)
                st.rerun()


def delete_version(path: Path, name: str) -> None:
    """Delete button callback (runs before the widgets are drawn, so it may reset the confirmation)."""
    st.session_state["confirm_delete"] = False
    st.session_state.pop("saved_choice", None)  # the list is one shorter now
    try:
        delete_model(path)
    except (CoreError, OSError) as exc:
        st.session_state["delete_error"] = str(exc)
        return
    forget_saved_bundles()
    info = st.session_state.get("model_info") or {}
    if info.get("path") == str(path):
        info["path"] = None  # the model stays in this session; it is no longer in the store
    st.session_state["store_note"] = t("train.deleted_note", name=name, version=path.name)


# ---- the page ----------------------------------------------------------------------------------
ensure_shell()  # when this page runs without app.py
st.title(t("train.title"))
cohort = active_cohort()
st.caption(t("train.cohort", name=cohort_title(cohort), n=cohort.n, prevalence=f"{cohort.prevalence:.0%}"))

job = st.session_state.get("train_job")
running = job is not None and job.running

training_form(cohort, running)
if running:
    live_progress()
error = st.session_state.get("train_error")
if error:
    st.error(error, icon=":material/error:")
note = st.session_state.pop("train_note", None)
if note:
    st.success(note, icon=":material/check_circle:")
draft_warning = st.session_state.pop("draft_warning", None)
if draft_warning:
    st.warning(draft_warning, icon=":material/warning:")
results_panel(cohort)
save_panel(cohort)
drafts_panel()
store_panel()
