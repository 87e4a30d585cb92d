"""End to end in a real browser: local accounts' sign-in form (a wrong password is
refused without saying which part was wrong, the right one signs in, signing out
brings the form back), a session that runs out (ASSAY_SESSION_HOURS), and the
single-user demo (ASSAY_AUTH=none) that opens without a sign-in and says so."""

from __future__ import annotations

import pytest

from curation.auth import AUTH_ENV, add_user
from curation.auth.sessions import SESSION_HOURS_ENV
from curation.store import open_store
from pages.common import DEMO_NOTE
from tests.e2e.browser import go, needs_chromium, screenshot, serve, settle

pytestmark = needs_chromium

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts_store(make_store_url) -> str:
    """A SQLite workspace with one local account: ada, an admin."""
    url = make_store_url("sqlite")
    add_user(open_store(url), None, "ada", "admin", password=PASSWORD)
    return url


def sign_in(page, name: str, password: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    settle(page)


def test_local_sign_in_refuses_a_wrong_password_and_signs_out(accounts_store, tmp_path, browser_page):
    page = browser_page
    with serve(accounts_store, tmp_path, env={AUTH_ENV: None}) as base:
        page.goto(f"{base}/review")
        settle(page)
        assert page.get_by_test_id("stSidebarNav").count() == 0

        sign_in(page, "ada", "not the password")
        page.get_by_text("Wrong name or password.", exact=True).wait_for()
        assert page.get_by_test_id("stSidebarNav").count() == 0
        sign_in(page, "nobody", PASSWORD)
        page.get_by_text("Wrong name or password.", exact=True).wait_for()

        sign_in(page, "ada", PASSWORD)
        page.get_by_test_id("stSidebar").get_by_text("Signed in as ada (admin)", exact=True).wait_for()
        page.get_by_role("heading", name="Review").first.wait_for()  # the page of the URL opens
        assert page.get_by_label("Reviewer name", exact=True).count() == 0
        screenshot(page, "20-signed-in")
        go(page, "Overview")

        page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
        settle(page)
        page.get_by_label("Password", exact=True).wait_for()
        assert page.get_by_text("Signed in as", exact=False).count() == 0
        assert page.get_by_test_id("stSidebarNav").count() == 0


def test_a_session_expires_and_the_form_comes_back(accounts_store, tmp_path, browser_page):
    page = browser_page
    # 0.002 hours: 7.2 seconds.
    with serve(accounts_store, tmp_path, env={AUTH_ENV: None, SESSION_HOURS_ENV: "0.002"}) as base:
        page.goto(base)
        settle(page)
        sign_in(page, "ada", PASSWORD)
        page.get_by_test_id("stSidebar").get_by_text("Signed in as ada (admin)", exact=True).wait_for()
        expired = page.get_by_text("Your session expired. Sign in again.", exact=True)
        for _ in range(120):  # rerun the app until it notices; no assertion on the time taken
            if expired.count():
                break
            page.wait_for_timeout(1000)
            go(page, "Overview")
        expired.wait_for()
        assert page.get_by_label("Password", exact=True).is_visible()
        assert page.get_by_test_id("stSidebarNav").count() == 0
        sign_in(page, "ada", PASSWORD)
        page.get_by_test_id("stSidebar").get_by_text("Signed in as ada (admin)", exact=True).wait_for()


def test_first_run_without_accounts_explains_users_add(make_store_url, tmp_path, browser_page):
    url = make_store_url("sqlite")
    open_store(url)
    page = browser_page
    with serve(url, tmp_path, env={AUTH_ENV: None}) as base:
        page.goto(base)
        settle(page)
        page.get_by_text("python -m curation users add NAME --role admin", exact=True).wait_for()
        assert page.get_by_label("Password", exact=True).count() == 0
        assert page.get_by_test_id("stSidebarNav").count() == 0


def test_the_demo_opens_without_sign_in_and_says_so(page, app_server):
    base, _ = app_server
    page.goto(base)
    settle(page)
    page.get_by_test_id("stSidebar").get_by_text(DEMO_NOTE, exact=True).wait_for()
    assert page.get_by_label("Reviewer name", exact=True).is_visible()
    assert page.get_by_label("Password", exact=True).count() == 0
    go(page, "Review")
