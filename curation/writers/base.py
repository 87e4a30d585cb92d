"""Writers turn export rows into files. One class per format, registered by name.

A writer receives `ExportRecord`s (see `curation.export.rows`): the interchange
fields plus provenance, with the nested fields also available as ready-made JSON
text so tabular formats never parse and re-serialise them row by row."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from curation.registry import Registry

#: Columns of the tabular formats (CSV, Parquet, Hugging Face): the interchange
#: format's columns, nested fields as JSON text, plus the provenance object as JSON text.
TABULAR_COLUMNS: tuple[str, ...] = ("id", "family", "prompt", "response", "reference", "metadata", "provenance")


class Writer(ABC):
    name: ClassVar[str]
    extension: ClassVar[str]
    description: ClassVar[str] = ""
    #: True when the format is a folder (a Hugging Face dataset), not one file per split.
    folder: ClassVar[bool] = False

    def missing_dependencies(self) -> list[str]:
        return []

    @abstractmethod
    def write(self, rows: Iterable[Any], path: Path) -> int:
        """Write rows to `path` (a file, or a folder for folder formats); return the row count."""

    def write_splits(self, splits: Mapping[str, Iterable[Any]], out_dir: Path, names: Mapping[str, str]) -> dict[str, int]:
        """Write each split to `out_dir / names[split]`; return rows per split.

        File formats write one file per split; folder formats override this to
        write one dataset holding every split."""
        return {split: self.write(rows, out_dir / names[split]) for split, rows in splits.items()}

    def load_snippet(self, files: list[str]) -> str:
        """Python that loads the export back (shown in the dataset card)."""
        return "\n".join(f'rows = [json.loads(line) for line in open("{name}", encoding="utf-8")]' for name in files)


WRITERS: Registry[type[Writer]] = Registry("writer")
