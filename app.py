"""Assay: curate synthetic LLM training data in the browser.

`streamlit run app.py` — the router (`st.navigation` is the only one). Every page is a
thin script in app_pages/, listed once in `app_pages.PAGES`."""

from __future__ import annotations

import streamlit as st

from app_pages import PAGES
from app_pages.common import engine, sidebar

st.set_page_config(page_title="Assay", page_icon="🧪", layout="wide")

sections: dict[str, list[st.Page]] = {}
for entry in PAGES:
    sections.setdefault(entry.section, []).append(
        st.Page(entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path, default=entry.default)
    )

engine()
page = st.navigation(sections)
sidebar()
page.run()
