"""Streamlit-side helpers shared by the pages: translation, session state, common widgets.
Holds no modelling logic: that lives in core/."""
