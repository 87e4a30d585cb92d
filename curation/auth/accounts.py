"""Local accounts: `python -m curation users add NAME --role admin|reviewer|viewer`.

Passwords are kept only as argon2id hashes (argon2-cffi, the maintained binding of the
reference implementation), never in plain text. The first account of a workspace can be
added without an acting user and must be an admin; after that, only admins manage users.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select

from curation.auth.roles import Action, Actor, Role, require, writes
from curation.store import session_scope
from curation.store.models import User

_hasher = PasswordHasher()

MIN_PASSWORD_CHARS = 8


class AccountError(ValueError):
    """A user-management request that cannot be carried out (unknown or duplicate name,
    weak password). Nothing is changed."""


@dataclass(frozen=True)
class UserView:
    name: str
    role: Role
    local: bool
    disabled: bool


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 120:
        raise AccountError("a user name needs 1 to 120 characters")
    return name


def user_count(engine: Engine) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def add_user(
    engine: Engine,
    actor: Actor | None,
    name: str,
    role: Role | str,
    *,
    password: str | None = None,
    email: str | None = None,
) -> UserView:
    """Add a user. `password` makes it a local account (stored as an argon2 hash);
    without one the user can sign in only through OIDC. `actor` must be an admin,
    except for the first user of a workspace, which must itself be an admin."""
    name, role = _check_name(name), Role(role)
    password_hash = hash_password(password) if password is not None else None
    with session_scope(engine) as session:
        existing = session.scalar(select(func.count()).select_from(User)) or 0
        if actor is None:
            if existing:
                raise AccountError("only an admin can add users once the workspace has one (--as NAME)")
            if role is not Role.ADMIN:
                raise AccountError("the first user of a workspace must be an admin")
        else:
            require(actor, Action.MANAGE_USERS)
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise AccountError(f"user {name!r} exists already")
        session.add(User(name=name, role=role.value, password_hash=password_hash, email=email))
    return UserView(name, role, password_hash is not None, False)


def _user(session, name: str) -> User:  # noqa: ANN001 - a Session
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"no user named {name!r}")
    return user


@writes(Action.MANAGE_USERS)
def set_role(engine: Engine, actor: Actor, name: str, role: Role | str) -> None:
    with session_scope(engine) as session:
        _user(session, name).role = Role(role).value


def set_password(engine: Engine, actor: Actor, name: str, password: str) -> None:
    """An admin sets anyone's password; every user may set their own."""
    if actor.name != name:
        require(actor, Action.MANAGE_USERS)
    password_hash = hash_password(password)
    with session_scope(engine) as session:
        _user(session, name).password_hash = password_hash


@writes(Action.MANAGE_USERS)
def set_disabled(engine: Engine, actor: Actor, name: str, disabled: bool) -> None:
    with session_scope(engine) as session:
        _user(session, name).disabled = disabled


def list_users(engine: Engine) -> list[UserView]:
    with session_scope(engine, write=False) as session:
        users = session.scalars(select(User).order_by(User.name)).all()
        return [UserView(u.name, Role(u.role), u.password_hash is not None, u.disabled) for u in users]


def find_actor(engine: Engine, name: str) -> Actor | None:
    """The enabled user `name` as an acting user, or None."""
    with session_scope(engine, write=False) as session:
        user = session.scalar(select(User).where(User.name == name.strip()))
        if user is None or user.disabled:
            return None
        return Actor(user.name, Role(user.role))


def authenticate(engine: Engine, name: str, password: str) -> Actor | None:
    """The local account `name` if `password` matches its hash, else None (the same
    answer for an unknown name, a wrong password and a disabled account)."""
    with session_scope(engine, write=False) as session:
        user = session.scalar(select(User).where(User.name == name.strip()))
        if user is None or user.disabled or user.password_hash is None:
            _hasher.hash("timing-equaliser")  # an unknown name costs what a wrong password does
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return Actor(user.name, Role(user.role))
