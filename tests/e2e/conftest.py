"""Browser fixtures: the real app server (`streamlit run app.py` on a free port, its own
SQLite workspace) and a Chromium page driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from curation.store import open_store
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, serve


@pytest.fixture
def app_server(make_store_url, tmp_path) -> Iterator[tuple[str, str]]:
    """The real app on a free port with its own empty SQLite workspace: (base URL, store URL)."""
    store_url = make_store_url("sqlite")
    open_store(store_url)
    with serve(store_url, tmp_path) as base:
        yield base, store_url


@pytest.fixture
def browser_page(request):
    """A Chromium page; on failure a screenshot FAILED-<test>.png is kept."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        context.set_default_timeout(60_000)
        page = context.new_page()
        yield page
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            screenshot(page, f"FAILED-{request.node.name}")
        browser.close()


@pytest.fixture
def page(app_server, browser_page):
    """A browser page, with the empty-workspace app running."""
    return browser_page
