"""Assay: curate synthetic LLM training data in the browser.

`streamlit run app.py` — the router. Every page is a thin script in pages/."""

from __future__ import annotations

import streamlit as st

from pages.common import engine, sidebar

st.set_page_config(page_title="Assay", page_icon="🧪", layout="wide")

PAGES = {
    "Workspace": [
        st.Page("pages/home.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/import_data.py", title="Import", icon=":material/upload_file:", url_path="import"),
    ],
    "Curate": [
        st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:", url_path="generate"),
        st.Page("pages/samples.py", title="Samples", icon=":material/table_rows:", url_path="samples"),
        st.Page("pages/verify.py", title="Verify", icon=":material/fact_check:", url_path="verify"),
        st.Page("pages/review.py", title="Review", icon=":material/rate_review:", url_path="review"),
        st.Page("pages/diversity.py", title="Diversity", icon=":material/scatter_plot:", url_path="diversity"),
    ],
    "Ship": [
        st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/pending_actions:", url_path="jobs"),
    ],
}

engine()
page = st.navigation(PAGES)
sidebar()
page.run()
