"""Sign-in sessions: how long one lasts (`ASSAY_SESSION_HOURS`, default 12) and which
user an OIDC token signs in. The app keeps the session itself (Streamlit's session
state, and for OIDC Streamlit's signed cookie).

The OIDC user is the `users` row named by the token's `name` claim, or, when the
token has none, its `preferred_username`, then its `email`: the first of
`OIDC_NAME_CLAIMS` that is present. That name is the reviewer name stored with every
decision. When no user has that name, a user whose stored e-mail (`users add --email`)
is the token's `email` is the one. A token that matches no enabled user signs nobody
in: an admin adds the user first (`python -m curation users add NAME --role reviewer
--no-password`); nobody is added just for having an account at the provider."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from sqlalchemy import Engine, func, select

from curation.auth.accounts import find_actor
from curation.auth.roles import Actor, Role
from curation.store import session_scope
from curation.store.models import User

SESSION_HOURS_ENV = "ASSAY_SESSION_HOURS"
DEFAULT_SESSION_HOURS = 12.0
OIDC_NAME_CLAIMS = ("name", "preferred_username", "email")


def session_hours() -> float:
    """How long a sign-in lasts, in hours: `ASSAY_SESSION_HOURS` (fractions allowed), else 12."""
    raw = os.environ.get(SESSION_HOURS_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSION_HOURS
    try:
        hours = float(raw)
    except ValueError:
        hours = 0.0
    if not hours > 0:
        raise ValueError(f"{SESSION_HOURS_ENV} must be a positive number of hours, got {raw!r}")
    return hours


def session_expired(signed_in_at: float | None, now: float | None = None) -> bool:
    """Whether a sign-in made at `signed_in_at` (seconds since the epoch) has run out.
    No time at all counts as expired."""
    if signed_in_at is None:
        return True
    now = time.time() if now is None else now
    return now - signed_in_at >= session_hours() * 3600


def oidc_user_name(claims: Mapping[str, object]) -> str | None:
    """The user name an OIDC token gives: the first non-empty of `OIDC_NAME_CLAIMS`."""
    for claim in OIDC_NAME_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def oidc_signed_in_at(claims: Mapping[str, object]) -> float | None:
    """When the provider issued the token (`auth_time`, else `iat`), or None. The app
    measures an OIDC session from there, so a reload does not restart the clock."""
    for claim in ("auth_time", "iat"):
        value = claims.get(claim)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def oidc_actor(engine: Engine, claims: Mapping[str, object]) -> Actor | None:
    """The enabled user an OIDC token signs in: by name (`oidc_user_name`), else by the
    token's e-mail against the users' stored e-mail (case-insensitive); None if neither."""
    name = oidc_user_name(claims)
    actor = find_actor(engine, name) if name else None
    if actor is not None:
        return actor
    email = claims.get("email")
    if not isinstance(email, str) or not email.strip():
        return None
    with session_scope(engine, write=False) as session:
        users = session.scalars(
            select(User).where(func.lower(User.email) == email.strip().lower(), User.disabled.is_(False))
        ).all()
        if len(users) != 1:  # none, or an ambiguous e-mail: sign nobody in
            return None
        return Actor(users[0].name, Role(users[0].role))
