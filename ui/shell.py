"""What every page shares: page config, session defaults, the sidebar and the decision-support notice.

app.py draws it once per run, above the page. A page file run on its own (``streamlit run pages/x.py``)
draws it itself through :func:`ensure_shell`, so every page works alone.

The pages live in ``pages/``. Streamlit still treats such a folder as its legacy multipage mode for the
first script run of a server; ui.serve (scripts/start.sh) turns that mode off before the server starts, and
under plain `streamlit run app.py` app.py leaves it at once (before drawing anything), so the sidebar's
widgets keep one identity from the first run on.
"""
from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from ui.auth import read_secrets, require_login
from ui.i18n import LANGUAGES, t
from ui.jobs import progress_text
from ui.models import adopt_finished_job
from ui.resume import keep, resume_or_start
from ui.scoring_job import progress_text as scoring_progress_text
from ui.state import active_cohort, active_model, cohort_title, configure_store, init_session

_run = threading.local()  # each script run has its own thread

ICON = Path(__file__).resolve().parent.parent / "assets" / "icon.png"

# A metric's label wraps instead of ending in "…": Streamlit cuts it to one line, and "Estimated risk of
# coronary artery disease" lost its outcome at 1280 px (issue 16.7). Style only: no text, no space taken.
WRAP_LABELS = """<style>
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  height: auto !important; }
</style>"""


# Streamlit writes its file uploader's own words ("Upload", "50MB per file") in English, with no option to
# translate them (1.67): each is hidden (font size 0) and the table's words are drawn in its place. Style only.
UPLOADER_WORDS = """<style>
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p {{ font-size: 0; }}
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p::after {{
  content: "{button}"; font-size: 0.875rem; }}
[data-testid="stFileUploaderDropzoneInstructions"] span {{ font-size: 0; }}
[data-testid="stFileUploaderDropzoneInstructions"] span::after {{ content: "{limit}"; font-size: 0.875rem; }}
</style>"""


def css_text(text: str) -> str:
    """A string as a CSS content value holds it (quotes and backslashes escaped, no line break)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("<", "\\3c ")


def uploader_words() -> str:
    mb = int(st.get_option("server.maxUploadSize"))
    return UPLOADER_WORDS.format(button=css_text(t("uploader.button")), limit=css_text(t("uploader.limit", mb=mb)))


def auc_text(info: dict) -> str:
    """The test AUC as the sidebar shows it: never a bare number from a small test split (its 95% interval,
    or "too few patients"); older bundles without a stored interval show the number alone."""
    auc = info.get("test_auc")
    if info.get("test_auc_too_few"):
        return t("metric.too_few")
    if auc is None:
        return "—"
    low, high = info.get("test_auc_low"), info.get("test_auc_high")
    if low is None or high is None:
        return f"{auc:.3f}"
    return f"{auc:.3f} ({t('metric.interval', low=f'{low:.2f}', high=f'{high:.2f}')})"


def draw_shell(pages=None) -> None:
    """``pages``: app.py's function listing the pages, registered unlisted while the user is signed out."""
    init_session()
    with st.sidebar:
        # The language lives in its own key ("lang"), read by every t() call; the widget only changes it.
        # It is drawn first so that everything after it in this run speaks the chosen language.
        options = list(LANGUAGES)
        current = st.session_state.get("lang") if st.session_state.get("lang") in LANGUAGES else "en"
        chosen = st.selectbox(t("sidebar.language"), options, index=options.index(current),
                              format_func=LANGUAGES.get, key="lang_choice")
        st.session_state["lang_switched_from"] = current if chosen != current else None  # for ui.i18n.lang_key
        st.session_state["lang"] = chosen
    # A file of ours, not a Material icon: Streamlit fetches those from fonts.gstatic.com, which a hospital
    # network without internet answers late or never.
    st.set_page_config(page_title=t("app.title"), page_icon=str(ICON), layout="wide")
    secrets = read_secrets()
    configure_store(secrets)
    require_login(secrets, pages)  # stops the run until the user is in: nothing of a cohort or model is drawn before
    resume_or_start()  # a reload gets the session's cohort, model, running job and patient form back
    adopt_finished_job()  # a run that ended while the user was on another page
    with st.sidebar:
        cohort = active_cohort()
        st.markdown(f"**{t('sidebar.cohort')}**")
        if cohort.synthetic:
            st.badge(t("sidebar.synthetic"), color="orange", icon=":material/science:")
        st.text(cohort_title(cohort))  # a file name is user input: shown as text, never as markdown
        st.caption(t("sidebar.cohort_stats", n=cohort.n, prevalence=f"{cohort.prevalence:.0%}"))
        model, info = active_model()
        st.markdown(f"**{t('sidebar.model')}**")
        if model is None:
            st.caption(t("sidebar.no_model"))
        else:
            st.text(info.get("name") or t("sidebar.unsaved_model"))
            if info.get("auc_site"):
                st.caption(t("sidebar.model_stats_site", created=info.get("created", "—"), site=info["auc_site"],
                             auc=auc_text(info)))
            else:
                st.caption(t("sidebar.model_stats", created=info.get("created", "—"), auc=auc_text(info)))
        job = st.session_state.get("train_job")
        if job is not None and job.running:
            # Redrawn every second on its own (the Train page's bar is a fragment too): the sidebar said
            # "epoch 0" all through a run, while the page's bar moved (issue 16.6)
            st.fragment(training_status, run_every=1.0)()
        score_job = st.session_state.get("score_job")
        if score_job is not None and score_job.running:  # the Score page's background job, seen from any page
            st.fragment(scoring_status, run_every=1.0)()
        st.warning(t("notice.decision_support"), icon=":material/medical_information:")
    st.caption(f":material/medical_information: {t('notice.short')}")
    st.html(WRAP_LABELS + uploader_words())
    _run.drawn = True


def training_status() -> None:
    """The running job's progress in the sidebar, in the Train page's words; a full run once it ends (the
    model then shows in the sidebar on whichever page the user is)."""
    job = st.session_state.get("train_job")
    if job is None:
        return
    if job.finished:
        if not job.adopted:
            st.rerun()
        return
    st.caption(t("sidebar.training", progress=progress_text(job.snapshot(), job.config.epochs)))


def scoring_status() -> None:
    """The Score page's running job in the sidebar, in that page's words; once ended, where to look."""
    job = st.session_state.get("score_job")
    if job is None:
        return
    if job.finished:
        st.caption(t("sidebar.scoring_done") if job.status == "done" else t("sidebar.scoring_stopped"))
        return
    st.caption(t("sidebar.scoring", progress=scoring_progress_text(job.snapshot())))


def end_run() -> None:
    if getattr(_run, "drawn", False):
        keep()
    _run.drawn = False


def ensure_shell() -> None:
    """Draw the shared parts unless app.py already did in this run."""
    if not getattr(_run, "drawn", False):
        draw_shell()
