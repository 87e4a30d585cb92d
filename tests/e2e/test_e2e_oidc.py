"""End to end in a real browser: sign in through OIDC (`st.login`) against a real OIDC
provider on loopback (oidc-provider-mock, in this process), review a sample with the
keyboard, and find the token's name as the reviewer stored with the decision. A token
whose name has no Assay account signs nobody in."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from oidc_provider_mock import User, run_server_in_thread

from curation.auth import AUTH_ENV, Actor, add_user
from curation.review.decisions import current_decision
from curation.store import open_store
from curation.store.queries import get_sample
from curation.testing.review_batches import ReviewRow, insert_review_batch
from tests.e2e.browser import free_port, go, needs_chromium, screenshot, serve, settle

pytestmark = needs_chromium

GRACE = User(sub="grace", claims={"name": "Grace Hopper", "email": "grace@example.org"})
STRANGER = User(sub="stranger", claims={"name": "Nobody Known", "email": "nobody@example.org"})


@pytest.fixture
def provider() -> Iterator[str]:
    """A real OIDC provider on a free loopback port: its base URL. Two predefined
    users sign in with one click on its authorization page."""
    with run_server_in_thread(port=free_port(), user_claims=[GRACE, STRANGER]) as server:
        yield f"http://localhost:{server.server_port}"


def oidc_secrets(app_port: int, provider: str) -> str:
    return f"""
[auth]
redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"
cookie_secret = "{secrets.token_hex(32)}"
client_id = "assay-test"
client_secret = "{secrets.token_hex(16)}"
server_metadata_url = "{provider}/.well-known/openid-configuration"
"""


def sign_in_at_provider(page, sub: str) -> None:
    """From the app's sign-in screen through the provider's page and back."""
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Authorize Client").wait_for()
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url("http://127.0.0.1:*/**")
    settle(page)


def press(page, key: str) -> None:
    """A key press with the focus on the page body, never in an input."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.locator("body").press(key)


def wait_for_sample(page, sample_id: int) -> None:
    page.get_by_role("heading", name=f"Sample {sample_id}", exact=True).wait_for()
    settle(page)


def test_oidc_sign_in_names_the_reviewer_of_each_decision(make_store_url, tmp_path, provider, browser_page):
    url = make_store_url("sqlite")
    engine = open_store(url)
    admin = add_user(engine, None, "admin", "admin", password="admin password")
    add_user(engine, Actor(admin.name, admin.role), GRACE.claims["name"], "reviewer")
    rows = [ReviewRow(prompt=f"What is {i} + {i}?", response=str(2 * i), family="math") for i in range(3)]
    _, ids = insert_review_batch(engine, "oidc", rows)

    port = free_port()
    page = browser_page
    with serve(url, tmp_path, env={AUTH_ENV: None}, secrets=oidc_secrets(port, provider), port=port) as base:
        page.goto(base)
        settle(page)
        assert page.get_by_label("Password", exact=True).count() == 0  # OIDC: no local form
        assert page.get_by_test_id("stSidebarNav").count() == 0

        sign_in_at_provider(page, GRACE.sub)
        page.get_by_test_id("stSidebar").get_by_text(
            "Signed in as Grace Hopper (reviewer)", exact=True
        ).wait_for()
        assert page.get_by_label("Reviewer name", exact=True).count() == 0
        screenshot(page, "21-oidc-signed-in")

        go(page, "Review")
        wait_for_sample(page, ids[0])
        press(page, "a")
        wait_for_sample(page, ids[1])
        press(page, "x")
        wait_for_sample(page, ids[2])

        # Sign out: the app forgets the user and ends the provider's session too.
        page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
        page.get_by_role("heading", name="End Session").wait_for()
        page.get_by_role("button", name="End session").click()
        page.wait_for_url("http://127.0.0.1:*/**")
        settle(page)
        page.get_by_role("button", name="Sign in", exact=True).wait_for()
        assert page.get_by_text("Signed in as", exact=False).count() == 0
        assert page.get_by_test_id("stSidebarNav").count() == 0

    assert [current_decision(engine, sample_id) for sample_id in ids[:2]] == ["accept", "reject"]
    assert [h["reviewer"] for sample_id in ids[:2] for h in get_sample(engine, sample_id).history] == [
        "Grace Hopper",
        "Grace Hopper",
    ]


def test_an_oidc_user_without_an_account_is_not_signed_in(make_store_url, tmp_path, provider, browser_page):
    url = make_store_url("sqlite")
    add_user(open_store(url), None, "admin", "admin", password="admin password")
    port = free_port()
    page = browser_page
    with serve(url, tmp_path, env={AUTH_ENV: None}, secrets=oidc_secrets(port, provider), port=port) as base:
        page.goto(base)
        settle(page)
        sign_in_at_provider(page, STRANGER.sub)
        page.get_by_text("Nobody Known has no Assay account", exact=False).wait_for()
        page.get_by_text(
            "python -m curation users add 'Nobody Known' --role reviewer --no-password", exact=True
        ).wait_for()
        assert page.get_by_test_id("stSidebarNav").count() == 0
        assert page.get_by_text("Signed in as", exact=False).count() == 0
