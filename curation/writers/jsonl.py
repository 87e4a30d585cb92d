from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from curation.writers.base import WRITERS, Writer


@WRITERS.register("jsonl")
class JsonlWriter(Writer):
    """Flat prompt/response rows in the interchange format, provenance under `provenance`."""

    name = "jsonl"
    extension = ".jsonl"
    description = "JSONL, flat prompt/response (the interchange format plus provenance)"

    def write(self, rows: Iterable[dict[str, Any]], path: Path) -> int:
        count = 0
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str))
                handle.write("\n")
                count += 1
        return count
