"""Export writers; importing this package registers every format (heavy libraries
such as pyarrow and datasets are imported only when a writer runs)."""

from curation.io.writers import chat, csv_writer, hf, jsonl, parquet, preference  # noqa: F401
from curation.io.writers.base import TABULAR_COLUMNS, WRITERS, Writer

__all__ = ["TABULAR_COLUMNS", "WRITERS", "Writer"]
