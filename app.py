"""Heart-disease risk dashboard: page config, session defaults, the shared sidebar, navigation.

Run: streamlit run app.py
"""
import streamlit as st

from ui.i18n import LANGUAGES, t
from ui.state import active_cohort, active_model, init_session, warm_tensorflow

st.set_page_config(page_title="Heart-disease risk · decision support", page_icon="❤️", layout="wide")
init_session()

PAGES = [
    st.Page("pages/cohort.py", title=t("nav.cohort"), icon=":material/groups:", default=True),
    st.Page("pages/train.py", title=t("nav.train"), icon=":material/model_training:"),
    st.Page("pages/patient.py", title=t("nav.patient"), icon=":material/person:"),
    st.Page("pages/explain.py", title=t("nav.explain"), icon=":material/insights:"),
    st.Page("pages/model_card.py", title=t("nav.model_card"), icon=":material/description:"),
]

with st.sidebar:
    st.selectbox("Language / 语言", options=list(LANGUAGES), format_func=LANGUAGES.get, key="lang")
    cohort = active_cohort()
    st.markdown(f"**{t('sidebar.cohort')}**")
    badge = f" :orange-badge[{t('sidebar.synthetic')}]" if cohort.synthetic else ""
    st.markdown(f"{cohort.name}{badge}")
    st.caption(t("sidebar.cohort_stats", n=cohort.n, prevalence=f"{cohort.prevalence:.0%}"))
    model, info = active_model()
    st.markdown(f"**{t('sidebar.model')}**")
    if model is None:
        st.caption(t("sidebar.no_model"))
    else:
        st.markdown(info.get("name", "—"))
        auc = info.get("test_auc")
        st.caption(t("sidebar.model_stats", created=info.get("created", "—"),
                     auc="—" if auc is None else f"{auc:.3f}"))
    st.warning(t("notice.decision_support"), icon=":material/medical_information:")

st.navigation(PAGES).run()
warm_tensorflow()
