"""Which model the session uses: a finished training run, or a saved bundle from the store; and the one
way a model is saved to the store (from the Train and Trust pages), with one way of reporting failures."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from core.errors import CoreError
from core.model import BundleMeta, as_bundle_meta, list_drafts, save_draft_to_store, save_to_store
from core.workflow import cohort_summary, training_metadata
from ui.i18n import t
from ui.state import load_saved_bundle, set_model


def created_text(iso: str | None) -> str:
    if not iso:
        return "—"
    try:
        return dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def info_from_meta(meta: BundleMeta, source: str, path: Path | None = None) -> dict:
    """What the sidebar shows: name (None = not saved yet), created, test AUC; and where it came from.
    A saved version also gets its store name, version number and content hash (the audit trail's id)."""
    meta = as_bundle_meta(meta)
    m = meta.metrics
    info = {"name": meta.name, "created": created_text(meta.created_utc), "test_auc": meta.test_auc,
            # its 95% interval (stored with the metrics), or too few test patients for one
            "test_auc_low": m.get("roc_auc_low"), "test_auc_high": m.get("roc_auc_high"),
            "test_auc_too_few": bool(m.get("roc_auc_too_few")),
            # a site-updated model's metrics are the site's held-out patients', not a test split's
            "auc_site": (getattr(meta.extra, "site_update", None) or {}).get("site"),
            "source": source, "path": str(path) if path else None}
    if path is not None:
        from core.model import bundle_digest, version_label  # the store alone: no TensorFlow
        path = Path(path)
        info["name"] = version_label(path)  # the store's name: an import may be renamed
        info["store_name"] = path.parent.name
        info["version"] = int(path.name[1:]) if path.name[1:].isdigit() else None
        info["model_id"] = f"sha256:{bundle_digest(path)}"
    return info


def audit_identity() -> dict:
    """The session's model as the audit trail names it: model, version, model_id (core.workflow.make_record)."""
    info = st.session_state.get("model_info") or {}
    meta = as_bundle_meta(st.session_state.get("model_meta"))
    return {"model": info.get("store_name") or info.get("name") or meta.name or t("sidebar.unsaved_model"),
            "version": info.get("version"), "model_id": info.get("model_id")}


def activate_saved(path: Path) -> None:
    """Make a saved version the session's model (loaded once per server, shared read-only)."""
    path = Path(path)
    model = load_saved_bundle(path)
    meta = model.metadata_
    set_model(model, info_from_meta(meta, "store", path), meta)


def show_store_error(exc: Exception) -> None:
    """A store operation's failure as one line: ours as written, the system's (a full disk, no
    permission) by its reason, never a traceback."""
    if isinstance(exc, CoreError):
        st.error(str(exc), icon=":material/error:")
    else:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        st.error(t("train.store_error", reason=reason), icon=":material/error:")


def store_reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, CoreError) else (getattr(exc, "strerror", None) or type(exc).__name__)


def draft_time(created: float) -> str:
    when = dt.datetime.fromtimestamp(created)
    return f"{when:%H:%M}" if when.date() == dt.date.today() else f"{when:%Y-%m-%d %H:%M}"


def keep_draft(model, meta: BundleMeta) -> None:
    """Save a just-trained model as the session's draft in the store (issue 16.4). A failure (a full
    disk) loses nothing in memory: a one-line warning on the Train page."""
    token = st.session_state.get("resume_token")
    if not token:
        return
    from ui.resume import signed_in_user  # ui.resume imports this module
    try:
        path = save_draft_to_store(model, token, signed_in_user(), meta=as_bundle_meta(meta))
    except (CoreError, OSError) as exc:
        st.session_state["draft_warning"] = t("train.draft_failed", reason=store_reason(exc))
        return
    st.session_state["model_info"]["draft_path"] = str(path)


def restore_draft(token: str, user: str | None) -> bool:
    """A new browser session whose token's memory is gone: its latest draft becomes the session's model
    (loaded verified, as any saved bundle). False when there is none or it cannot be read (said once)."""
    try:
        drafts = list_drafts(token=token, user=user)
        if not drafts:
            return False
        model = load_saved_bundle(drafts[0]["path"])
    except (CoreError, OSError) as exc:
        st.session_state["draft_warning"] = t("train.draft_failed", reason=store_reason(exc))
        return False
    meta = model.metadata_
    set_model(model, info_from_meta(meta, "trained"), meta)
    st.session_state["model_info"]["draft_path"] = str(drafts[0]["path"])
    st.session_state["train_note"] = t("train.draft_restored", time=draft_time(drafts[0]["created"]))
    return True


def save_and_activate(model, name: str, meta: BundleMeta | None) -> Path | None:
    """Save ``model`` as a new version of ``name`` and make the saved version the session's model: its
    metadata (as read back from the store, so verified) and name. When ``model`` already is the session's
    model it stays (with its test results); else the saved bundle takes its place. Failures are shown
    (st.error) and give None; the session is then unchanged."""
    try:
        path = save_to_store(model, name, meta=meta)
        saved = load_saved_bundle(path)
    except (CoreError, OSError) as exc:
        show_store_error(exc)
        return None
    if st.session_state.get("model") is model:
        st.session_state["model_info"] = info_from_meta(saved.metadata_, "store", path)
        st.session_state["model_meta"] = saved.metadata_
    else:
        activate_saved(path)
    return path


def adopt_finished_job() -> None:
    """Take a finished training run once, on whichever page the session is: the model becomes the
    session's (and the sidebar shows it), or its error is kept for the Train page."""
    job = st.session_state.get("train_job")
    if job is None or not job.finished or job.adopted:
        return
    job.adopted = True
    if job.result is None:
        st.session_state["train_error"] = (t("train.failed_internal", kind=job.error) if job.internal_error
                                           else t("train.failed", message=job.error))
        return
    result = job.result
    meta = training_metadata(result.model, result.metrics, name=None, cohort=cohort_summary(job.cohort),
                             sizes=result.sizes)
    set_model(result.model, info_from_meta(meta, "trained"), meta, train_result=result)
    keep_draft(result.model, meta)
    numbers = dict(epochs=result.model.epochs_run_, best=result.model.best_epoch_, seconds=f"{job.seconds:.1f}")
    networks = int(getattr(result.model, "n_members_", 1) or 1)
    if job.status == "stopped":
        note = t("train.stopped_note", **numbers)
    elif networks > 1:  # the epochs are the first network's: say so (QA)
        note = t("train.done_note_ensemble", networks=networks, **numbers)
    else:
        note = t("train.done_note", **numbers)
    st.session_state["train_note"] = note


def model_bundle_dir() -> Path:
    """The session's model as a bundle folder on disk (what a batch job loads, verified): its saved version,
    else its draft, else a draft saved now (a model changed on the Trust page has none yet). Raises
    CoreError or OSError (a full disk) when it cannot be saved."""
    info = st.session_state.get("model_info") or {}
    for key in ("path", "draft_path"):  # set_model forgets both for a model that is not theirs
        path = info.get(key)
        if path and (Path(path) / "metadata.json").is_file():
            return Path(path)
    token = st.session_state.get("resume_token")
    if not token:
        raise CoreError(t("scoring.job_no_session"))
    from ui.resume import signed_in_user  # ui.resume imports this module
    path = save_draft_to_store(st.session_state["model"], token, signed_in_user(),
                               meta=as_bundle_meta(st.session_state.get("model_meta")))
    st.session_state["model_info"]["draft_path"] = str(path)
    return path
