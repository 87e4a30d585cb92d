from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from curation.io.writers.base import TABULAR_COLUMNS, WRITERS, Writer, pandas_snippet

#: Rows per Parquet row group (and per Arrow record batch): memory stays bounded by one group.
ROW_GROUP = 20_000


def arrow_schema() -> Any:
    import pyarrow as pa  # heavy: only for the Arrow formats

    return pa.schema([(name, pa.string()) for name in TABULAR_COLUMNS])


def record_batches(rows: Iterable[Any], size: int = ROW_GROUP) -> Iterator[Any]:
    """Arrow record batches of the tabular columns, `size` rows each."""
    import pyarrow as pa  # heavy: only for the Arrow formats

    schema = arrow_schema()
    columns: list[list[str]] = [[] for _ in TABULAR_COLUMNS]
    appends = [column.append for column in columns]
    a_id, a_family, a_prompt, a_response, a_ref, a_meta, a_prov = appends
    n = 0
    for row in rows:
        a_id(row.id)
        a_family(row.family)
        a_prompt(row.prompt)
        a_response(row.response)
        a_ref(row.reference_json)
        a_meta(row.metadata_json)
        a_prov(row.provenance_json)
        n += 1
        if n == size:
            yield pa.RecordBatch.from_arrays([pa.array(c, type=pa.string()) for c in columns], schema=schema)
            for column in columns:
                column.clear()
            n = 0
    if n:
        yield pa.RecordBatch.from_arrays([pa.array(c, type=pa.string()) for c in columns], schema=schema)


@WRITERS.register("parquet")
class ParquetWriter(Writer):
    """Parquet with the interchange columns (nested fields and provenance as JSON text),
    written one row group at a time."""

    name = "parquet"
    extension = ".parquet"
    description = "Parquet (interchange columns, nested fields and provenance as JSON text)"

    def write(self, rows: Iterable[Any], path: Path) -> int:
        import pyarrow.parquet as pq  # heavy: only for the Arrow formats

        count = 0
        with pq.ParquetWriter(path, arrow_schema(), compression="zstd") as writer:
            for batch in record_batches(rows):
                writer.write_batch(batch, row_group_size=len(batch))
                count += batch.num_rows
        return count

    def encode_table(self, rows: Iterable[Any]) -> Any:
        """A piece of rows as an Arrow table (made in a worker process)."""
        import pyarrow as pa  # heavy: only for the Arrow formats

        return pa.Table.from_batches(list(record_batches(rows)), schema=arrow_schema())

    def write_tables(self, tables: Iterable[Any], path: Path) -> int:
        import pyarrow.parquet as pq  # heavy: only for the Arrow formats

        count = 0
        with pq.ParquetWriter(path, arrow_schema(), compression="zstd") as writer:
            for table in tables:
                writer.write_table(table.select(list(arrow_schema().names)), row_group_size=ROW_GROUP)
                count += table.num_rows
        return count

    def load_snippet(self, files: list[str]) -> str:
        return pandas_snippet(files, "read_parquet")
