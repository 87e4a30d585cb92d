"""`python -m curation ...`: the command line on the same library functions as the app.

Each feature area registers its own subcommands: a module listed in CLI_MODULES
exposes `register(subparsers)` and sets `func(args, engine) -> int` on its parsers.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from curation.config import database_url, redact_url

CLI_MODULES: list[str] = [
    "curation.cli_core",
    "curation.export_cli",
    "curation.generation.cli",
    "curation.verification.cli",
    "curation.review.cli",
    "curation.diversity.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m curation",
        description="Assay: curate synthetic LLM training data (generate, verify, review, export).",
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help=f"store URL (default: $ASSAY_DATABASE_URL or the workspace, now {redact_url(database_url())})",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in CLI_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "needs_store", True):
        from curation.store import open_store

        engine = open_store(args.db)
    else:
        engine = None
    try:
        return int(args.func(args, engine) or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
