"""`python -m curation users ...`: local accounts and roles.

    users add NAME --role admin|reviewer|viewer [--password-stdin]
    users list | set-role NAME ROLE | disable NAME | enable NAME | passwd NAME

The first user of a workspace may be added without `--as` and must be an admin; every
other change needs an admin (a user may change their own password)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from sqlalchemy import Engine

from curation.auth.accounts import (
    AccountError,
    add_user,
    list_users,
    set_disabled,
    set_password,
    set_role,
    user_count,
)
from curation.auth.identity import command_actor
from curation.auth.roles import Role


def _read_password(args: argparse.Namespace) -> str:
    """The new password: one line of stdin (`--password-stdin`), else typed twice."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ; nothing was changed")
    return first


def cmd_add(args: argparse.Namespace, engine: Engine) -> int:
    actor = command_actor(args, engine) if user_count(engine) else None
    password = None if args.no_password else _read_password(args)
    user = add_user(engine, actor, args.name, args.role, password=password, email=args.email)
    kind = "local account" if user.local else "OIDC-only user"
    print(f"added {user.role.value} {user.name!r} ({kind})")
    return 0


def cmd_list(args: argparse.Namespace, engine: Engine) -> int:
    users = list_users(engine)
    if not users:
        print("no users yet: python -m curation users add NAME --role admin")
    for user in users:
        flags = ", ".join(
            flag for flag, on in (("local", user.local), ("oidc only", not user.local), ("disabled", user.disabled)) if on
        )
        print(f"{user.name:<32} {user.role.value:<9} {flags}")
    return 0


def cmd_set_role(args: argparse.Namespace, engine: Engine) -> int:
    set_role(engine, command_actor(args, engine), args.name, args.role)
    print(f"{args.name!r} is now {args.role}")
    return 0


def _set_disabled(disabled: bool) -> Callable[[argparse.Namespace, Engine], int]:
    def command(args: argparse.Namespace, engine: Engine) -> int:
        set_disabled(engine, command_actor(args, engine), args.name, disabled)
        print(f"{args.name!r} is now {'disabled' if disabled else 'enabled'}")
        return 0

    return command


def cmd_passwd(args: argparse.Namespace, engine: Engine) -> int:
    actor = command_actor(args, engine)
    set_password(engine, actor, args.name, _read_password(args))
    print(f"password of {args.name!r} changed")
    return 0


def _password_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from one line of stdin (no prompt)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="local accounts and roles (admin, reviewer, viewer)")
    commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    roles = [role.value for role in Role]

    p = commands.add_parser("add", help="add a user (the first one must be an admin)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--email", default=None, help="the e-mail an OIDC sign-in maps to this user")
    p.add_argument("--no-password", action="store_true", help="no local password: OIDC sign-in only")
    _password_options(p)
    p.set_defaults(func=cmd_add)

    p = commands.add_parser("list", help="list users, their roles and state")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("set-role", help="change a user's role")
    p.add_argument("name")
    p.add_argument("role", choices=roles)
    p.set_defaults(func=cmd_set_role)

    for name, disabled in (("disable", True), ("enable", False)):
        p = commands.add_parser(name, help=f"{name} a user's sign-in")
        p.add_argument("name")
        p.set_defaults(func=_set_disabled(disabled))

    p = commands.add_parser("passwd", help="set a user's password (admins: anyone's; others: their own)")
    p.add_argument("name")
    _password_options(p)
    p.set_defaults(func=cmd_passwd)
