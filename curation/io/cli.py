"""`import`: a file in the interchange format into a new batch, all or nothing."""

from __future__ import annotations

import argparse

from sqlalchemy import Engine

from curation.auth import command_actor
from curation.io.importer import import_file
from curation.jobs import refuse_if_busy
from curation.jobs.console import end_progress, print_progress


def cmd_import(args: argparse.Namespace, engine: Engine) -> int:
    origin = "real" if args.reference else "eval" if args.eval else "synthetic"
    actor = command_actor(args, engine)
    refuse_if_busy(engine, "import", {"batch": args.batch})
    result = import_file(engine, actor, args.file, args.batch, origin=origin, progress=print_progress)
    end_progress()
    families = ", ".join(f"{k}: {v}" for k, v in sorted(result["families"].items()))
    print(f"imported {result['imported']} records into {origin} batch {result['batch']!r} ({families})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import", help="import a JSONL/CSV/Parquet file as a new batch (all or nothing)"
    )
    p.add_argument("file")
    p.add_argument("--batch", required=True, help="name of the new batch")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--reference", action="store_true", help="the file is real human data (the reference set)"
    )
    group.add_argument(
        "--eval", action="store_true", help="the file is an evaluation set (for decontamination)"
    )
    p.set_defaults(func=cmd_import)
