"""Sign-in under AppTest, against a real store: the local accounts' form, sign out,
session expiry, the first run without accounts, the demo mode and the OIDC screen."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from curation.auth import AUTH_ENV, Actor, add_user
from curation.config import PROJECT_ROOT
from curation.store import open_store
from pages.common import ACTOR_KEY, DEMO_NOTE, SIGNED_IN_AT_KEY

APP = str(PROJECT_ROOT / "app.py")
PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts(request, monkeypatch, make_store_url):
    """A workspace with an admin and a reviewer (local accounts), sign-in on."""
    url = make_store_url(request.param)
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    monkeypatch.delenv(AUTH_ENV, raising=False)
    engine = open_store(url)
    admin = add_user(engine, None, "root", "admin", password="root password")
    add_user(engine, Actor(admin.name, admin.role), "ada", "reviewer", password=PASSWORD)
    return engine


def open_app() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def sign_in(app: AppTest, name: str, password: str) -> AppTest:
    app.text_input(key="sign_in_name").input(name)
    app.text_input(key="sign_in_password").input(password)
    app.button[0].click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def sidebar_texts(app: AppTest) -> list[str]:
    return [t.value for t in app.sidebar.text]


@pytest.mark.parametrize(("name", "password"), [("ada", "wrong password"), ("nobody", PASSWORD), ("ada", "")])
def test_bad_credentials_are_refused_without_saying_which_part(accounts, name, password):
    app = sign_in(open_app(), name, password)
    assert [e.value for e in app.error] == ["Wrong name or password."]
    assert ACTOR_KEY not in app.session_state
    assert [t.label for t in app.text_input] == ["Name", "Password"]
    assert not any(text.startswith("Signed in as") for text in sidebar_texts(app))


def test_the_right_password_signs_in_and_names_the_reviewer(accounts):
    app = sign_in(open_app(), "ada", PASSWORD)
    assert "Signed in as ada (reviewer)" in sidebar_texts(app)
    assert app.session_state[ACTOR_KEY] == Actor("ada", "reviewer")
    assert app.session_state["reviewer_name"] == "ada"
    assert app.session_state["sign_in_password"] == ""  # not kept in the session
    app.switch_page("pages/review.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == ["Review"]
    assert "Reviewer name" not in [t.label for t in app.text_input]


def test_sign_out_brings_the_form_back(accounts):
    app = sign_in(open_app(), "ada", PASSWORD)
    app.sidebar.button(key="sign_out").click().run()
    assert ACTOR_KEY not in app.session_state
    assert "reviewer_name" not in app.session_state
    assert [t.label for t in app.text_input] == ["Name", "Password"]


def test_an_expired_session_asks_to_sign_in_again(accounts):
    app = sign_in(open_app(), "ada", PASSWORD)
    app.session_state[SIGNED_IN_AT_KEY] = time.time() - 12 * 3600 - 1
    app.run()
    assert [i.value for i in app.info] == ["Your session expired. Sign in again."]
    assert ACTOR_KEY not in app.session_state
    assert [t.label for t in app.text_input] == ["Name", "Password"]


def test_a_disabled_account_cannot_sign_in(accounts):
    from curation.auth import set_disabled

    set_disabled(accounts, Actor("root", "admin"), "ada", True)
    app = sign_in(open_app(), "ada", PASSWORD)
    assert [e.value for e in app.error] == ["Wrong name or password."]


def test_the_first_run_explains_how_to_add_an_account(monkeypatch, make_store_url):
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    monkeypatch.delenv(AUTH_ENV, raising=False)
    open_store(url)
    app = open_app()
    [info] = app.info
    assert "python -m curation users add NAME --role admin" in info.value
    assert not app.text_input


def test_the_demo_has_no_sign_in_and_says_so(monkeypatch, make_store_url):
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    monkeypatch.setenv(AUTH_ENV, "none")
    open_store(url)
    app = open_app()
    assert DEMO_NOTE in [c.value for c in app.sidebar.caption]
    assert [t.label for t in app.text_input] == ["Reviewer name"]
    assert [t.value for t in app.title] == ["Assay"]  # the overview page ran


def test_with_an_auth_section_the_sign_in_goes_through_oidc(accounts):
    app = AppTest.from_file(APP, default_timeout=60)
    app.secrets["auth"] = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "assay",
        "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert [b.label for b in app.button] == ["Sign in"]
    assert not app.text_input  # no local password form
