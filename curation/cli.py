"""`python -m curation ...`: the command line on the same library functions as the app.

Each feature (`curation.features.DEFAULT_FEATURES`) registers its own commands from
its `cli.py`; the same commands are installed as the `assay` console script.
"""

from __future__ import annotations

import argparse
import sys

from curation.auth import AUTH_ENV, USER_ENV, IdentityError, PermissionDenied
from curation.config import database_url, redact_url
from curation.features import feature_modules
from curation.store import open_store


def build_parser(prog: str = "assay") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Assay: curate synthetic LLM training data (generate, verify, review, export).",
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help=f"store URL (default: $ASSAY_DATABASE_URL or the workspace, now {redact_url(database_url())})",
    )
    parser.add_argument("--as", dest="as_user", default=None, metavar="NAME", help=AS_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in feature_modules("cli"):
        module.register(subparsers)
    _accept_as(subparsers)
    return parser


AS_HELP = (
    f"act as this user (default: ${USER_ENV}); commands that change the store need one "
    f"whose role allows the change, unless {AUTH_ENV}=none"
)


def _accept_as(subparsers: argparse._SubParsersAction) -> None:
    """Accept `--as NAME` after a (sub)command too: `assay export --as ana ...`."""
    for command in subparsers.choices.values():
        if not any("--as" in action.option_strings for action in command._actions):
            command.add_argument("--as", dest="as_user", default=argparse.SUPPRESS, metavar="NAME", help=AS_HELP)
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_as(action)


def main(argv: list[str] | None = None, prog: str = "assay") -> int:
    """Run one command; the exit status. `assay` (the console script) and
    `python -m curation` both land here."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "needs_store", True):
        engine = open_store(args.db)
    else:
        engine = None
    try:
        return int(args.func(args, engine) or 0)
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PermissionDenied as exc:
        print(f"error: permission denied: {exc}", file=sys.stderr)
        return 3
    except (ValueError, KeyError, FileNotFoundError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
