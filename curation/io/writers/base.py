"""Writers turn export rows into files. One class per format, registered by name.

A writer receives `ExportRecord`s (see `curation.export.rows`): the interchange
fields plus provenance, with the nested fields also available as ready-made JSON
text so tabular formats never parse and re-serialise them row by row."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from curation.registry import Registry

#: Columns of the tabular formats (CSV, Parquet, Hugging Face): the interchange
#: format's columns, nested fields as JSON text, plus the provenance object as JSON text.
TABULAR_COLUMNS: tuple[str, ...] = (
    "id",
    "family",
    "prompt",
    "response",
    "reference",
    "metadata",
    "provenance",
)


class Writer(ABC):
    name: ClassVar[str]
    extension: ClassVar[str]
    description: ClassVar[str] = ""
    #: True when the format is a folder (a Hugging Face dataset), not one file per split.
    folder: ClassVar[bool] = False
    #: True when the rows are preference pairs of candidates rather than the plan's samples.
    pairs: ClassVar[bool] = False

    def missing_dependencies(self) -> list[str]:
        return []

    @abstractmethod
    def write(self, rows: Iterable[Any], path: Path) -> int:
        """Write rows to `path` (a file, or a folder for folder formats); return the row count."""

    def write_splits(
        self, splits: Mapping[str, Iterable[Any]], out_dir: Path, names: Mapping[str, str]
    ) -> dict[str, int]:
        """Write each split to `out_dir / names[split]`; return rows per split.

        File formats write one file per split; folder formats override this to
        write one dataset holding every split."""
        return {split: self.write(rows, out_dir / names[split]) for split, rows in splits.items()}

    def load_snippet(self, files: list[str]) -> str:
        """Python that loads the export back (shown in the dataset card)."""
        return "\n".join(
            f'rows = [json.loads(line) for line in open("{name}", encoding="utf-8")]' for name in files
        )


def per_file_snippet(imports: list[str], load: str, files: list[str], first_comment: str = "") -> str:
    """Python that loads each export file into a variable named for it: the `imports`, then
    one `name = load` line per file (`{file}` in `load` stands for the file's name), the
    first with `first_comment` after it."""
    lines = [*imports, ""]
    for i, name in enumerate(files):
        comment = f"  # {first_comment}" if first_comment and i == 0 else ""
        lines.append(f"{Path(name).stem} = {load.replace('{file}', name)}{comment}")
    return "\n".join(lines)


def pandas_snippet(files: list[str], reader: str, options: str = "") -> str:
    """Python that loads tabular export files with pandas' `reader` and parses the provenance column."""
    lines = ["import json", "import pandas as pd", ""]
    for name in files:
        stem = Path(name).stem
        lines.append(f'{stem} = pd.{reader}("{name}"{options})')
        lines.append(f"{stem}['provenance'] = {stem}['provenance'].map(json.loads)")
    return "\n".join(lines)


class TextWriter(Writer):
    """A line-oriented text format. Subclasses give `lines(rows)` (and a `header()`);
    `encode_table` turns a piece of rows into an Arrow table of lines in a worker
    process and `write_tables` concatenates them, so big exports use every core."""

    def header(self) -> str:
        return ""

    @abstractmethod
    def lines(self, rows: Iterable[Any]) -> Iterator[str]:
        """The text of each row, newline included."""

    def write(self, rows: Iterable[Any], path: Path) -> int:
        count = 0
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(self.header())
            for line in self.lines(rows):
                handle.write(line)
                count += 1
        return count

    def encode_table(self, rows: Iterable[Any]) -> Any:
        """Rows as an Arrow table with one `line` column (made in a worker process)."""
        import pyarrow as pa  # heavy: only on the parallel export path

        return pa.table({"line": pa.array(list(self.lines(rows)), type=pa.large_string())})

    def write_tables(self, tables: Iterable[Any], path: Path) -> int:
        """Concatenate the `line` columns of encoded tables, in order."""
        count = 0
        with open(path, "wb") as handle:
            handle.write(self.header().encode("utf-8"))
            for table in tables:
                handle.write("".join(table.column("line").to_pylist()).encode("utf-8"))
                count += table.num_rows
        return count


WRITERS: Registry[type[Writer]] = Registry("writer")
