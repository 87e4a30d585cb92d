"""How the acting user is found outside the app: the CLI acts as `--as NAME` or
`ASSAY_USER`. `ASSAY_AUTH=none` (set by `make run`'s single-user demo, and only
explicitly) turns sign-in off: everyone is an admin under the name given, or "local"."""

from __future__ import annotations

import argparse
import os

from sqlalchemy import Engine

from curation.auth.accounts import find_actor
from curation.auth.roles import Actor, Role

AUTH_ENV = "ASSAY_AUTH"
USER_ENV = "ASSAY_USER"
ANONYMOUS_NAME = "local"


class IdentityError(ValueError):
    """No acting user could be found; nothing was done."""


def auth_disabled() -> bool:
    """True only when `ASSAY_AUTH=none` is set explicitly."""
    return os.environ.get(AUTH_ENV, "").strip().lower() == "none"


def open_actor(name: str | None = None) -> Actor:
    """The acting user when sign-in is off: an admin."""
    return Actor((name or "").strip() or ANONYMOUS_NAME, Role.ADMIN)


def cli_actor(engine: Engine, name: str | None = None) -> Actor:
    """The acting user of a CLI command: `--as NAME`, else `ASSAY_USER`."""
    name = (name or os.environ.get(USER_ENV) or "").strip()
    if auth_disabled():
        return open_actor(name)
    if not name:
        raise IdentityError(
            f"name the acting user with --as NAME or {USER_ENV}=NAME "
            f"(add one with: python -m curation users add NAME --role admin), "
            f"or set {AUTH_ENV}=none for a single-user workspace"
        )
    actor = find_actor(engine, name)
    if actor is None:
        raise IdentityError(
            f"no enabled user named {name!r} (python -m curation users add {name} --role ...)"
        )
    return actor


def command_actor(args: argparse.Namespace, engine: Engine) -> Actor:
    """`cli_actor` for a parsed command line (its `--as NAME`, if any)."""
    return cli_actor(engine, getattr(args, "as_user", None))
