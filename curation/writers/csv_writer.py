from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from curation.writers.base import TABULAR_COLUMNS, WRITERS, Writer


@WRITERS.register("csv")
class CsvWriter(Writer):
    """CSV with the interchange columns; reference, metadata and provenance as JSON text."""

    name = "csv"
    extension = ".csv"
    description = "CSV (interchange columns, nested fields and provenance as JSON text)"

    def write(self, rows: Iterable[Any], path: Path) -> int:
        count = 0
        with open(path, "w", encoding="utf-8", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(TABULAR_COLUMNS)
            for row in rows:
                out.writerow(
                    (row.id, row.family, row.prompt, row.response, row.reference_json, row.metadata_json, row.provenance_json)
                )
                count += 1
        return count

    def load_snippet(self, files: list[str]) -> str:
        lines = ["import json", "import pandas as pd", ""]
        for name in files:
            stem = Path(name).stem
            lines.append(f'{stem} = pd.read_csv("{name}", keep_default_na=False)')
            lines.append(f"{stem}['provenance'] = {stem}['provenance'].map(json.loads)")
        return "\n".join(lines)
