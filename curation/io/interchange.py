"""The interchange format: JSONL (one object per line), CSV and Parquet with the
same columns (nested fields as JSON strings).

    {"id": str?, "family": "math"|"code"|"instruction"|"open", "prompt": str,
     "response": str, "reference": {...}?, "metadata": {...}?}

Reading streams the file and validates every record; errors name the line (or
row) and the field. Callers that must be all-or-nothing validate the whole file
before writing anything (see `validate_file`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.config import MAX_FIELD_CHARS, MAX_LINE_BYTES
from curation.data import FAMILIES, SampleRecord

TOP_LEVEL_FIELDS = ("id", "family", "prompt", "response", "reference", "metadata")
#: Fields written by `verify-file`; accepted on input so its output can be re-imported.
PASSTHROUGH_FIELDS = ("verdicts", "passed")
FORMATS = ("jsonl", "csv", "parquet")
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class RecordError:
    line: int
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class InterchangeError(ValueError):
    """A file does not follow the interchange format. `errors` lists the first few problems."""

    def __init__(self, errors: list[RecordError], path: str | None = None, truncated: bool = False):
        self.errors = errors
        self.path = path
        self.truncated = truncated
        first = str(errors[0]) if errors else "invalid file"
        more = f" (and {len(errors) - 1} more{'+' if truncated else ''})" if len(errors) > 1 else ""
        prefix = f"{Path(path).name}: " if path else ""
        super().__init__(f"{prefix}{first}{more}")

    @property
    def line(self) -> int | None:
        return self.errors[0].line if self.errors else None

    @property
    def field(self) -> str | None:
        return self.errors[0].field if self.errors else None


def detect_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "parquet"):
        return suffix
    raise ValueError(f"{Path(path).name}: unknown file type '.{suffix}' (use .jsonl, .csv or .parquet)")


def _check_string(value: Any, field: str, line: int, unit: str, *, required: bool = True) -> None:
    if not isinstance(value, str):
        raise _Bad(line, field, f"expected a string, got {_type_name(value)}", unit)
    if len(value) > MAX_FIELD_CHARS:
        raise _Bad(line, field, f"{len(value):,} characters, over the {MAX_FIELD_CHARS:,} limit", unit)


class _Bad(Exception):
    def __init__(self, line: int, field: str | None, message: str, unit: str):
        self.error = RecordError(line, field, message, unit)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", type(None): "null", bool: "a boolean"}.get(
        type(value), f"{type(value).__name__}"
    )


def _check_reference(family: str, reference: dict[str, Any], line: int, unit: str) -> None:
    """Per-family shape of `reference`; an empty reference is always allowed."""
    if not reference:
        return

    def need_str(key: str, optional: bool = False) -> None:
        if key not in reference:
            if not optional:
                raise _Bad(line, f"reference.{key}", "missing", unit)
            return
        _check_string(reference[key], f"reference.{key}", line, unit)

    if family == "math":
        if (
            "answer" in reference
            and isinstance(reference["answer"], int | float)
            and not isinstance(reference["answer"], bool)
        ):
            raise _Bad(line, "reference.answer", 'expected a string (write numbers as text, e.g. "42")', unit)
        need_str("answer")
    elif family == "code":
        need_str("tests")
        need_str("entry_point", optional=True)
    elif family == "instruction":
        ids = reference.get("instruction_id_list")
        if ids is None:
            raise _Bad(line, "reference.instruction_id_list", "missing", unit)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _Bad(line, "reference.instruction_id_list", "expected a list of strings", unit)
        kwargs = reference.get("kwargs", [{} for _ in ids])
        if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
            raise _Bad(line, "reference.kwargs", "expected a list of objects", unit)
        if len(kwargs) != len(ids):
            raise _Bad(
                line,
                "reference.kwargs",
                f"has {len(kwargs)} entries for {len(ids)} instruction ids",
                unit,
            )


def record_from_dict(
    obj: Any, line: int, *, require_response: bool = True, unit: str = "line"
) -> SampleRecord:
    """Validate one decoded object and build a SampleRecord (raises _Bad)."""
    if not isinstance(obj, dict):
        raise _Bad(line, None, f"expected a JSON object, got {_type_name(obj)}", unit)
    for key in obj:
        if key not in TOP_LEVEL_FIELDS and key not in PASSTHROUGH_FIELDS:
            raise _Bad(line, key, "unknown field (put extra information under 'metadata')", unit)
    for key in ("family", "prompt") + (("response",) if require_response else ()):
        if key not in obj:
            raise _Bad(line, key, "missing", unit)
    family = obj["family"]
    if family not in FAMILIES:
        raise _Bad(line, "family", f"expected one of {', '.join(FAMILIES)}, got {family!r}"[:200], unit)
    _check_string(obj["prompt"], "prompt", line, unit)
    if not obj["prompt"].strip():
        raise _Bad(line, "prompt", "empty", unit)
    response = obj.get("response", "")
    if response is None and not require_response:
        response = ""
    _check_string(response, "response", line, unit)
    record_id = obj.get("id")
    if record_id is not None:
        _check_string(record_id, "id", line, unit)
        if len(record_id) > 200:
            raise _Bad(line, "id", "longer than 200 characters", unit)
    reference = obj.get("reference")
    metadata = obj.get("metadata")
    reference = {} if reference is None else reference
    metadata = {} if metadata is None else metadata
    for key, value in (("reference", reference), ("metadata", metadata)):
        if not isinstance(value, dict):
            raise _Bad(line, key, f"expected an object, got {_type_name(value)}", unit)
        if not value:
            continue
        size = len(json.dumps(value, ensure_ascii=False))
        if size > MAX_FIELD_CHARS:
            raise _Bad(line, key, f"{size:,} characters of JSON, over the {MAX_FIELD_CHARS:,} limit", unit)
    _check_reference(family, reference, line, unit)
    return SampleRecord(
        family=family,
        prompt=obj["prompt"],
        response=response,
        reference=reference,
        metadata=metadata,
        id=record_id,
    )


def _iter_jsonl(path: Path, after_line: int = 0) -> Iterator[tuple[int, Any, str]]:
    """Decoded lines; `after_line` skips ahead so validation can go on past an error."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number <= after_line:
                continue
            if len(raw) > MAX_LINE_BYTES:
                raise _Bad(
                    number, None, f"line is {len(raw):,} bytes, over the {MAX_LINE_BYTES:,} limit", "line"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Bad(
                    number, None, f"not valid UTF-8 (byte {exc.start + 1} of the line)", "line"
                ) from None
            if not text.strip():
                continue
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            try:
                yield number, json.loads(text), "line"
            except json.JSONDecodeError as exc:
                raise _Bad(number, None, f"malformed JSON: {exc.msg} (column {exc.colno})", "line") from None


def _decode_nested(row: dict[str, Any], line: int, unit: str) -> dict[str, Any]:
    """CSV/Parquet hold nested fields as JSON strings; empty cells are absent fields."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, str) and value == "" and key not in ("prompt", "response")):
            continue
        if isinstance(value, float) and value != value:  # NaN from pandas
            continue
        if key in ("reference", "metadata", "verdicts") and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _Bad(line, key, f"malformed JSON: {exc.msg} (column {exc.colno})", unit) from None
        out[key] = value
    return out


def _iter_csv(path: Path) -> Iterator[tuple[int, Any, str]]:
    with open(path, "rb") as raw_handle:
        data = raw_handle.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _Bad(line, None, f"not valid UTF-8 (byte offset {exc.start})", "line") from None
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        return
    for column in reader.fieldnames:
        if column not in TOP_LEVEL_FIELDS and column not in PASSTHROUGH_FIELDS:
            raise _Bad(1, column, "unknown column (put extra information under 'metadata')", "line")
    start_line = 2
    try:
        for row in reader:
            line = start_line
            start_line = reader.line_num + 1
            if None in row:
                raise _Bad(line, None, "more cells than header columns", "line")
            yield line, _decode_nested(row, line, "line"), "line"
    except csv.Error as exc:
        raise _Bad(reader.line_num, None, f"malformed CSV: {exc}", "line") from None


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any, str]]:
    import pyarrow.parquet as pq  # heavy: only for Parquet files

    parquet = pq.ParquetFile(path)
    for column in parquet.schema_arrow.names:
        if column not in TOP_LEVEL_FIELDS and column not in PASSTHROUGH_FIELDS:
            raise _Bad(1, column, "unknown column (put extra information under 'metadata')", "row")
    row_number = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            row_number += 1
            yield row_number, _decode_nested(row, row_number, "row"), "row"


_READERS = {"jsonl": _iter_jsonl, "csv": _iter_csv, "parquet": _iter_parquet}


class RecordScan:
    """One streaming pass over a file: yields the valid records and collects the
    problems (up to `max_errors`), so a caller can validate and write in the same
    pass and still refuse the whole file at the end (`raise_if_errors`).

    After a bad JSONL line the scan goes on with the next line; a file that cannot
    be framed further (bad CSV quoting, unreadable Parquet) stops at its first error."""

    def __init__(
        self,
        path: str | Path,
        *,
        require_response: bool = True,
        fmt: str | None = None,
        max_errors: int = MAX_REPORTED_ERRORS,
    ):
        self.path = Path(path)
        self.fmt = fmt or detect_format(self.path)
        self.require_response = require_response
        self.max_errors = max_errors
        self.errors: list[RecordError] = []
        self.count = 0

    def __iter__(self) -> Iterator[SampleRecord]:
        seen_ids: dict[str, int] = {}
        iterator = _READERS[self.fmt](self.path)
        while len(self.errors) < self.max_errors:
            try:
                line, obj, unit = next(iterator)
            except StopIteration:
                return
            except _Bad as bad:
                self.errors.append(bad.error)
                if self.fmt != "jsonl":
                    return
                iterator = _iter_jsonl(self.path, bad.error.line)
                continue
            try:
                record = record_from_dict(obj, line, require_response=self.require_response, unit=unit)
                if record.id is not None:
                    first = seen_ids.setdefault(record.id, line)
                    if first != line:
                        raise _Bad(line, "id", f"duplicate id {record.id!r} (first on {unit} {first})", unit)
            except _Bad as bad:
                self.errors.append(bad.error)
                continue
            self.count += 1
            yield record

    def raise_if_errors(self) -> None:
        if self.errors:
            raise InterchangeError(self.errors, str(self.path), truncated=len(self.errors) >= self.max_errors)
        if self.count == 0:
            raise InterchangeError([RecordError(1, None, "the file holds no records")], str(self.path))


def iter_records(
    path: str | Path, *, require_response: bool = True, fmt: str | None = None
) -> Iterator[SampleRecord]:
    """Stream validated records; raises InterchangeError at the first bad one."""
    scan = RecordScan(path, require_response=require_response, fmt=fmt, max_errors=1)
    yield from scan
    scan.raise_if_errors()


def validate_file(
    path: str | Path,
    *,
    require_response: bool = True,
    fmt: str | None = None,
    on_progress: Any = None,
    max_errors: int = MAX_REPORTED_ERRORS,
) -> int:
    """Check a whole file, collecting up to `max_errors` problems. Returns the record count."""
    scan = RecordScan(path, require_response=require_response, fmt=fmt, max_errors=max_errors)
    for _record in scan:
        if on_progress is not None and scan.count % 5000 == 0:
            on_progress(scan.count)
    scan.raise_if_errors()
    return scan.count


def write_jsonl(records: Iterator[dict[str, Any]], path: str | Path) -> int:
    """Write dicts as JSONL (UTF-8, one object per line). Returns the row count."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            handle.write("\n")
            count += 1
    return count
