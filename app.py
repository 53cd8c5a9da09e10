"""Heart-disease risk dashboard: the shared frame (ui.shell: page config, session, sidebar, notice) and
navigation over the pages.

Run: streamlit run app.py

Nothing imported here (or by the Cohort page) loads TensorFlow: the first page draws in about a second,
then ui.state.warm_tensorflow imports it in the background for training and loading models.
"""
import streamlit as st

from ui.i18n import t
from ui.shell import draw_shell, end_run
from ui.state import warm_tensorflow

try:
    draw_shell()
    PAGES = [
        st.Page("views/cohort.py", title=t("nav.cohort"), icon=":material/groups:", default=True),
        st.Page("views/train.py", title=t("nav.train"), icon=":material/model_training:"),
        st.Page("views/patient.py", title=t("nav.patient"), icon=":material/person:"),
        st.Page("views/explain.py", title=t("nav.explain"), icon=":material/insights:"),
        st.Page("views/model_card.py", title=t("nav.model_card"), icon=":material/description:"),
    ]
    st.navigation(PAGES).run()
finally:
    end_run()
    # After the page is drawn (also when it stopped early): TensorFlow loads while the user reads.
    warm_tensorflow()
