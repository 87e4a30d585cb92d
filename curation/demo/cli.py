"""`demo`: fill an empty workspace with the demo data."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine

from curation.auth import command_actor
from curation.demo.workspace import ensure_demo_workspace


def cmd_demo(args: argparse.Namespace, engine: Engine) -> int:
    created = ensure_demo_workspace(
        engine, command_actor(args, engine), force=args.force, say=lambda message: print(f"demo: {message}", file=sys.stderr)
    )
    print("demo workspace: " + (", ".join(created) if created else "already populated, nothing to do"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="fill an empty workspace with the demo data")
    p.add_argument("--force", action="store_true", help="add the demo batches even if the workspace has data")
    p.set_defaults(func=cmd_demo)
