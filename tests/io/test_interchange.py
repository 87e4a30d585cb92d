"""Import is all or nothing; every error names the line (or row) and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from curation.io.importer import import_file
from curation.io.interchange import InterchangeError, iter_records, validate_file
from curation.store import session_scope
from curation.store.models import Base
from tests.helpers import ADMIN, sample_records, write_jsonl

GOOD = {"family": "math", "prompt": "1+1?", "response": "2", "reference": {"answer": "2"}}


def table_counts(engine) -> dict[str, int]:
    with session_scope(engine, write=False) as session:
        return {
            name: session.scalar(select(func.count()).select_from(table))
            for name, table in Base.metadata.tables.items()
        }


BAD_LINES = [
    ('{"family": "math", "prompt": "x", "response": "y"', None, "malformed JSON"),
    ('["not", "an", "object"]', None, "expected a JSON object"),
    ({"family": "math", "response": "y"}, "prompt", "missing"),
    ({"family": "math", "prompt": "x"}, "response", "missing"),
    ({"family": "poetry", "prompt": "x", "response": "y"}, "family", "expected one of"),
    ({"family": "math", "prompt": 7, "response": "y"}, "prompt", "expected a string"),
    ({"family": "math", "prompt": "x", "response": None}, "response", "expected a string"),
    ({"family": "math", "prompt": "x", "response": "y", "id": 5}, "id", "expected a string"),
    ({"family": "math", "prompt": "x", "response": "y", "reference": []}, "reference", "expected an object"),
    ({"family": "math", "prompt": "x", "response": "y", "metadata": "m"}, "metadata", "expected an object"),
    (
        {"family": "math", "prompt": "x", "response": "y", "reference": {"answer": 4}},
        "reference.answer",
        "expected a string",
    ),
    (
        {"family": "code", "prompt": "x", "response": "y", "reference": {"entry_point": "f"}},
        "reference.tests",
        "missing",
    ),
    (
        {
            "family": "instruction",
            "prompt": "x",
            "response": "y",
            "reference": {"instruction_id_list": ["a", "b"], "kwargs": [{}]},
        },
        "reference.kwargs",
        "2 instruction ids",
    ),
    ({"family": "math", "prompt": "x", "response": "y", "extra": 1}, "extra", "unknown field"),
    ({"family": "math", "prompt": "x", "response": "y" * 200_001}, "response", "over the 200,000 limit"),
    ({"family": "math", "prompt": "   ", "response": "y"}, "prompt", "empty"),
]


@pytest.mark.parametrize(("bad", "field", "message"), BAD_LINES)
def test_bad_line_names_line_and_field_and_imports_nothing(engine, tmp_path: Path, bad, field, message):
    before = table_counts(engine)
    path = write_jsonl(tmp_path / "in.jsonl", [GOOD, GOOD, bad, GOOD])
    with pytest.raises(InterchangeError) as caught:
        import_file(engine, ADMIN, path, "broken")
    error = caught.value
    assert error.line == 3
    assert error.field == field
    assert message in str(error)
    assert "line 3" in str(error)
    assert table_counts(engine) == before


def test_bad_utf8_names_the_line(sqlite_engine, tmp_path: Path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"family": "math", "prompt": "caf\xe9"}\n')
    with pytest.raises(InterchangeError, match="line 2: not valid UTF-8"):
        import_file(sqlite_engine, ADMIN, path, "b")
    assert table_counts(sqlite_engine)["samples"] == 0


def test_duplicate_ids_are_refused(sqlite_engine, tmp_path: Path):
    path = write_jsonl(tmp_path / "in.jsonl", [{**GOOD, "id": "a"}, {**GOOD, "id": "b"}, {**GOOD, "id": "a"}])
    with pytest.raises(InterchangeError) as caught:
        import_file(sqlite_engine, ADMIN, path, "b")
    assert (caught.value.line, caught.value.field) == (3, "id")
    assert "first on line 1" in str(caught.value)


def test_several_errors_are_reported_at_once(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "in.jsonl", [GOOD, "{oops", {"family": "x", "prompt": "p", "response": ""}, GOOD]
    )
    with pytest.raises(InterchangeError) as caught:
        validate_file(path)
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, None), (3, "family")]


def test_empty_file_is_an_error(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(InterchangeError, match="no records"):
        validate_file(path)


def test_existing_batch_name_is_refused(sqlite_engine, records_file):
    import_file(sqlite_engine, ADMIN, records_file(3), "b")
    with pytest.raises(ValueError, match="already exists"):
        import_file(sqlite_engine, ADMIN, records_file(3, name="other.jsonl"), "b")
    assert table_counts(sqlite_engine)["samples"] == 3


def _as_table(records):
    rows = []
    for record in records:
        row = dict(record)
        for key in ("reference", "metadata"):
            if key in row:
                row[key] = json.dumps(row[key])
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_reads_the_same_records(tmp_path: Path, fmt: str):
    records = sample_records(5)
    records[2]["prompt"] = 'multi\nline, with "quotes" and ünïcode'
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, records)
    elif fmt == "csv":
        _as_table(records).to_csv(path, index=False)
    else:
        _as_table(records).to_parquet(path, index=False)
    assert [r.to_dict() for r in iter_records(path)] == records


def test_csv_error_names_the_file_line(tmp_path: Path):
    frame = _as_table(sample_records(3))
    frame.loc[1, "reference"] = "{not json"
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InterchangeError) as caught:
        validate_file(path)
    assert (caught.value.line, caught.value.field) == (3, "reference")


def test_parquet_error_names_the_row(tmp_path: Path):
    frame = _as_table(sample_records(3))
    frame.loc[2, "family"] = "nope"
    path = tmp_path / "in.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(InterchangeError, match="row 3, field 'family'"):
        validate_file(path)


def test_import_keeps_every_field(engine, records_file):
    from curation.store.queries import SampleFilter, get_sample, query_samples

    result = import_file(engine, ADMIN, records_file(7), "seven")
    assert result["imported"] == 7
    rows, total = query_samples(engine, SampleFilter())
    assert total == 7
    detail = get_sample(engine, rows[3].id)
    assert (detail.external_id, detail.reference, detail.metadata) == ("r3", {"answer": "7"}, {"n": 3})
