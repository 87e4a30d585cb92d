"""Sign-in sessions: how long one lasts and which OIDC claim names the user."""

from __future__ import annotations

import pytest

from curation.auth import Actor, add_user, set_disabled
from curation.auth.sessions import (
    DEFAULT_SESSION_HOURS,
    SESSION_HOURS_ENV,
    oidc_actor,
    oidc_signed_in_at,
    oidc_user_name,
    session_expired,
    session_hours,
)
from curation.store import open_store


def test_sessions_last_twelve_hours_by_default(monkeypatch):
    monkeypatch.delenv(SESSION_HOURS_ENV, raising=False)
    assert session_hours() == DEFAULT_SESSION_HOURS == 12
    assert not session_expired(1000.0, now=1000.0 + 12 * 3600 - 1)
    assert session_expired(1000.0, now=1000.0 + 12 * 3600)


@pytest.mark.parametrize(("value", "hours"), [("1", 1.0), ("0.5", 0.5), (" 48 ", 48.0)])
def test_session_hours_come_from_the_environment(monkeypatch, value, hours):
    monkeypatch.setenv(SESSION_HOURS_ENV, value)
    assert session_hours() == hours
    assert session_expired(0.0, now=hours * 3600)
    assert not session_expired(0.0, now=hours * 3600 - 1)


@pytest.mark.parametrize("value", ["0", "-1", "twelve", "nan"])
def test_a_bad_session_length_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(SESSION_HOURS_ENV, value)
    with pytest.raises(ValueError, match=SESSION_HOURS_ENV):
        session_hours()


def test_no_sign_in_time_counts_as_expired():
    assert session_expired(None, now=0.0)


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"name": "Grace Hopper", "preferred_username": "grace", "email": "g@example.org"}, "Grace Hopper"),
        ({"name": "  ", "preferred_username": "grace", "email": "g@example.org"}, "grace"),
        ({"email": "g@example.org", "sub": "123"}, "g@example.org"),
        ({"sub": "123"}, None),
        ({"name": 7}, None),
    ],
)
def test_the_oidc_name_is_the_first_of_name_preferred_username_email(claims, name):
    assert oidc_user_name(claims) == name


@pytest.mark.parametrize(
    ("claims", "when"),
    [
        ({"auth_time": 5, "iat": 9}, 5.0),
        ({"iat": 9}, 9.0),
        ({}, None),
        ({"iat": True}, None),
        ({"iat": "9"}, None),
    ],
)
def test_an_oidc_session_starts_when_the_provider_signed_the_user_in(claims, when):
    assert oidc_signed_in_at(claims) == when


@pytest.fixture(params=["sqlite", "postgresql"])
def users_store(request, make_store_url):
    """A store with an admin, a reviewer known by name and a viewer with a stored e-mail."""
    engine = open_store(make_store_url(request.param))
    root = add_user(engine, None, "root", "admin", password="root password")
    admin = Actor(root.name, root.role)
    add_user(engine, admin, "Grace Hopper", "reviewer")
    add_user(engine, admin, "ada", "viewer", email="Ada@Example.org")
    add_user(engine, admin, "off", "reviewer", email="off@example.org")
    set_disabled(engine, admin, "off", True)
    return engine


@pytest.mark.parametrize(
    ("claims", "actor"),
    [
        ({"sub": "1", "name": "Grace Hopper", "email": "g@example.org"}, Actor("Grace Hopper", "reviewer")),
        ({"sub": "2", "name": "Ada L.", "email": "ada@example.org"}, Actor("ada", "viewer")),
        ({"sub": "3", "email": "ADA@example.org"}, Actor("ada", "viewer")),
        ({"sub": "4", "name": "Stranger", "email": "s@example.org"}, None),
        ({"sub": "5", "name": "off", "email": "off@example.org"}, None),
        ({"sub": "6"}, None),
    ],
)
def test_an_oidc_token_signs_in_the_user_it_names(users_store, claims, actor):
    assert oidc_actor(users_store, claims) == actor
