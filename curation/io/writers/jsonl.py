from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from curation.io.writers.base import WRITERS, TextWriter, per_file_snippet


@WRITERS.register("jsonl")
class JsonlWriter(TextWriter):
    """Flat prompt/response rows in the interchange format, provenance under `provenance`."""

    name = "jsonl"
    extension = ".jsonl"
    description = "JSONL, flat prompt/response (the interchange format plus provenance)"

    def lines(self, rows: Iterable[Any]) -> Iterator[str]:
        for row in rows:
            if isinstance(row, dict):
                yield json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
            else:
                yield row.interchange_json(f',"provenance":{row.provenance_json}') + "\n"

    def load_snippet(self, files: list[str]) -> str:
        return per_file_snippet(["import pandas as pd"], 'pd.read_json("{file}", lines=True)', files)
