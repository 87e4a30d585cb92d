from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from curation.writers.base import WRITERS, Writer


def _line(row: Any) -> str:
    if isinstance(row, dict):
        import json

        return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str)
    return row.interchange_json(f',"provenance":{row.provenance_json}')


@WRITERS.register("jsonl")
class JsonlWriter(Writer):
    """Flat prompt/response rows in the interchange format, provenance under `provenance`."""

    name = "jsonl"
    extension = ".jsonl"
    description = "JSONL, flat prompt/response (the interchange format plus provenance)"

    def write(self, rows: Iterable[Any], path: Path) -> int:
        count = 0
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(_line(row))
                handle.write("\n")
                count += 1
        return count

    def load_snippet(self, files: list[str]) -> str:
        lines = ["import pandas as pd", ""]
        lines += [f'{Path(name).stem} = pd.read_json("{name}", lines=True)' for name in files]
        return "\n".join(lines)
