from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from curation.io.writers.base import TABULAR_COLUMNS, WRITERS, TextWriter, pandas_snippet


@WRITERS.register("csv")
class CsvWriter(TextWriter):
    """CSV with the interchange columns; reference, metadata and provenance as JSON text."""

    name = "csv"
    extension = ".csv"
    description = "CSV (interchange columns, nested fields and provenance as JSON text)"

    def header(self) -> str:
        return self._format([TABULAR_COLUMNS])

    @staticmethod
    def _format(rows: Iterable[Iterable[str]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        return buffer.getvalue()

    def lines(self, rows: Iterable[Any]) -> Iterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        for row in rows:
            out.writerow(
                (
                    row.id,
                    row.family,
                    row.prompt,
                    row.response,
                    row.reference_json,
                    row.metadata_json,
                    row.provenance_json,
                )
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    def load_snippet(self, files: list[str]) -> str:
        return pandas_snippet(files, "read_csv", ", keep_default_na=False")
