"""Structured output: a template's JSON schema goes as response_format (or into the
prompt), every answer is validated, invalid ones are kept and flagged, valid ones parsed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from curation.data import SampleRecord
from curation.generation.params import GenerationParams
from curation.generation.plan import build_plan
from curation.generation.run import run_generation
from curation.generation.structured import parse_structured, written_from_fields
from curation.generation.templates import PromptTemplate, TemplateError, default_template
from curation.store import session_scope
from curation.store.models import Sample
from curation.testing.openai_server import OpenAICompatServer
from curation.verification.heuristics import check_quality

KEY_ENV = "ASSAY_TEST_TEACHER_KEY"
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["reasoning", "answer"],
}


class WrittenProblem(BaseModel):
    problem: str
    answer: str
    tests: list[str]


@pytest.fixture
def server():
    with OpenAICompatServer(seed=7) as running:
        yield running


def structured_params(
    base_url: str, *, count: int, structured_output: str = "json_schema", **extra: Any
) -> dict:
    template = {**default_template("math", "solve").to_dict(), "schema": ANSWER_SCHEMA}
    return {
        "batch": "structured",
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": count}},
        "template": template,
        "teacher": {
            "kind": "openai",
            "base_url": base_url,
            "model": "test-model",
            "api_key_env": KEY_ENV,
            "timeout": 5.0,
            "structured_output": structured_output,
        },
        **extra,
    }


def samples(engine) -> list[Sample]:
    with session_scope(engine, write=False) as session:
        rows = list(session.scalars(select(Sample).order_by(Sample.item_index)))
        session.expunge_all()
        return rows


@pytest.mark.parametrize("structured_output", ["json_schema", "prompt"])
def test_invalid_answers_are_flagged_and_valid_ones_parsed(engine, server, monkeypatch, structured_output):
    monkeypatch.setenv(KEY_ENV, "unused")
    server.configure(invalid_json_rate=0.2, json_schema_support=structured_output == "json_schema")
    run_generation(engine, structured_params(server.base_url, count=40, structured_output=structured_output))
    rows = samples(engine)
    assert len(rows) == 40  # nothing dropped
    flagged = [s for s in rows if "validation_error" in s.meta]
    parsed = [s for s in rows if "fields" in s.meta]
    assert len(flagged) == server.stats.invalid_json > 0
    assert len(flagged) + len(parsed) == 40
    for sample in flagged:
        assert sample.meta["validation_error"].startswith("invalid JSON")
        assert "fields" not in sample.meta
    for sample in parsed:
        fields = json.loads(sample.response)
        assert sample.meta["fields"] == fields and set(fields) == {"reasoning", "answer"}
        assert fields["answer"].strip()


def test_without_json_schema_support_response_format_fails_and_the_prompt_carries_the_schema(
    sqlite_engine, server, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, "unused")
    server.configure(json_schema_support=False)
    prompt_params = GenerationParams.from_dict(
        structured_params(server.base_url, count=1, structured_output="prompt")
    )
    item = build_plan(prompt_params).items[0]
    assert item.response_format() is None and '"answer"' in item.messages[-1]["content"]
    schema_params = GenerationParams.from_dict(structured_params(server.base_url, count=1))
    item = build_plan(schema_params).items[0]
    assert item.response_format()["json_schema"]["schema"] == ANSWER_SCHEMA
    assert '"answer"' not in item.messages[-1]["content"]
    with pytest.raises(Exception, match="not supported"):
        run_generation(
            sqlite_engine,
            structured_params(server.base_url, count=2, error_rate_threshold=0.5, error_window=2),
        )


def test_schema_violations_are_named():
    fields, error = parse_structured('{"reasoning": "r", "answer": 3}', ANSWER_SCHEMA)
    assert fields is None and error == "schema violation at answer: 3 is not of type 'string'"
    fields, error = parse_structured('```json\n{"reasoning": "r", "answer": "3"}\n```', ANSWER_SCHEMA)
    assert fields == {"reasoning": "r", "answer": "3"} and error is None


def test_a_pydantic_model_is_a_schema_and_a_bad_schema_is_refused():
    template = PromptTemplate(user="Write a problem about {topic}.", schema=WrittenProblem)
    assert template.schema["properties"]["tests"]["type"] == "array"
    assert PromptTemplate.from_dict(template.to_dict()) == template
    with pytest.raises(TemplateError, match="must describe an object"):
        PromptTemplate(user="x", schema={"type": "string"})
    with pytest.raises(TemplateError, match="not a valid JSON schema"):
        PromptTemplate(user="x", schema={"type": "object", "properties": {"a": {"type": 5}}})


def test_simulated_teacher_writes_problems_as_structured_fields(sqlite_engine):
    template = {**default_template("math", "write").to_dict(), "schema": WrittenProblem.model_json_schema()}
    run_generation(
        sqlite_engine,
        {
            "batch": "written",
            "family": "math",
            "mode": "write",
            "source": {"kind": "topics", "count": 30},
            "template": template,
            "teacher": {"kind": "simulated", "fault_rate": 0.4},
        },
    )
    rows = samples(sqlite_engine)
    invalid = [s for s in rows if s.meta.get("simulated_fault") == "invalid_json"]
    assert invalid and all("validation_error" in s.meta for s in invalid)
    valid = [s for s in rows if "fields" in s.meta]
    assert valid and len(valid) + len(invalid) == len(rows)
    for sample in valid:
        assert sample.prompt == sample.meta["fields"]["problem"]
        assert sample.reference == {"answer": sample.meta["fields"]["answer"]}


def test_the_quality_check_fails_an_answer_that_did_not_validate():
    def verdict(metadata):
        return check_quality(
            SampleRecord(
                family="open", prompt="Name a colour.", response="Blue is a calm colour.", metadata=metadata
            )
        )

    flagged = verdict({"validation_error": "invalid JSON: Expecting value"})
    assert flagged.passed is False and "structured" in flagged.reason
    assert flagged.details["checks"]["structured"]["why"].startswith("invalid JSON")
    assert verdict({"fields": {"answer": "blue"}}).details["checks"]["structured"] == {"passed": True}
    assert "structured" not in verdict({}).details["checks"]


def test_written_code_problems_take_their_tests_from_the_fields():
    fields = {
        "problem": "def double(x):",
        "solution": "def double(x):\n    return 2 * x",
        "tests": ["assert double(2) == 4", "assert double(0) == 0"],
        "entry_point": "double",
    }
    written = written_from_fields("code", fields)
    assert written["reference"] == {
        "tests": "assert double(2) == 4\nassert double(0) == 0",
        "entry_point": "double",
    }
    assert written_from_fields("code", {"solution": "x"}) is None  # no problem field


def test_batches_without_a_schema_keep_their_fingerprint_and_cache_keys():
    """Values recorded from the code before structured output existed (commit a8fe25d): a
    rerun of an earlier batch must continue it and find its cached answers."""
    from curation.generation.engine import cache_key, make_request
    from curation.teachers import make_teacher

    params = GenerationParams.from_dict(
        {
            "batch": "b",
            "family": "open",
            "source": {"kind": "open_prompts", "count": 3},
            "teacher": {"kind": "openai", "base_url": "http://x/v1", "model": "m"},
        }
    )
    assert params.fingerprint() == "c13c40ff817a9a91"
    teacher = make_teacher(params.teacher, api_key="k")
    item = build_plan(params).items[1]
    assert cache_key(teacher, make_request(teacher, item, [0]), 1) == (
        "34358f07b147bbed7f9a1e6642503340bd9c249f3fc4708c870fd92f9fe7eaa4"
    )
