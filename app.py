"""Assay: curate synthetic LLM training data in the browser.

`streamlit run app.py` — the router (`st.navigation` is the only one). Every page is a
thin script in pages/, listed once in `pages.PAGES`; `pages.common.run_app` is the app."""

from pages.common import run_app

run_app()
