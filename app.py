"""Heart-disease risk dashboard: the shared frame (ui.shell: page config, session, sidebar, notice) and
navigation over the pages.

Run: streamlit run app.py

Nothing imported here (or by the Cohort page) loads TensorFlow: the first page draws without it, then
ui.state.warm_tensorflow imports it in the background for training and loading models.
"""
import streamlit as st

from ui.legacy_pages import leave_legacy_pages_mode

# Streamlit's legacy `pages/` mode wraps the first run of a server around this script (see ui.legacy_pages);
# leave it before anything is drawn: st.navigation below is the only navigation.
if leave_legacy_pages_mode():
    st.rerun()

from ui.i18n import t  # noqa: E402  (after leaving the legacy mode, before drawing)
from ui.shell import draw_shell, end_run  # noqa: E402  (after leaving the legacy mode, before drawing)
from ui.state import warm_tensorflow  # noqa: E402  (after leaving the legacy mode, before drawing)


def pages() -> list:
    """The app's pages, titled in the session's language (built after the sidebar's language choice)."""
    found = [
        st.Page("pages/cohort.py", title=t("nav.cohort"), icon=":material/groups:", default=True),
        st.Page("pages/train.py", title=t("nav.train"), icon=":material/model_training:"),
        st.Page("pages/patient.py", title=t("nav.patient"), icon=":material/person:"),
        st.Page("pages/scoring.py", title=t("nav.scoring"), icon=":material/table_view:"),
        st.Page("pages/explain.py", title=t("nav.explain"), icon=":material/insights:"),
        st.Page("pages/model_card.py", title=t("nav.model_card"), icon=":material/description:"),
        st.Page("pages/trust.py", title=t("nav.trust"), icon=":material/verified:"),
    ]
    # audit-page-start: the audit page exists only when the audit log is on (off by default)
    from core.workflow import audit_path
    if audit_path(st.secrets) is not None:
        found.append(st.Page("pages/audit.py", title=t("nav.audit"), icon=":material/receipt_long:"))
    # audit-page-end
    return found


try:
    # Signed out, the pages are still registered (their addresses keep working) but not listed: the sign-in
    # page shows no links (ui.auth).
    draw_shell(pages)
    st.navigation(pages()).run()
finally:
    end_run()
    # After the page is drawn (also when it stopped early): TensorFlow loads while the user reads.
    warm_tensorflow()
