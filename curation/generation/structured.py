"""Structured output: a template's JSON schema, how it reaches the teacher, and the
validation of what comes back.

The schema is sent as ``response_format`` (``{"type": "json_schema", ...}``) when
the teacher's ``structured_output`` is ``json_schema`` (endpoints that support it:
OpenAI, vLLM, SGLang, llama.cpp); with ``prompt`` it is appended to the user
message instead. Either way the answer is parsed and validated here: a valid one
is stored as ``metadata.fields``, an invalid one is kept (never dropped) with
``metadata.validation_error`` saying why.

A Pydantic model in code becomes a schema with `schema_of`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

STRUCTURED_OUTPUT_MODES = ("json_schema", "prompt")
#: Marks the schema in a prompt (the test server finds it there, like a model would).
SCHEMA_MARKER = "Reply with one JSON object (no other text) that matches this JSON schema:"
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


class StructuredOutputError(ValueError):
    pass


def schema_of(model: Any) -> dict[str, Any]:
    """The JSON schema of a Pydantic model class (or a schema dict, returned as is)."""
    if isinstance(model, Mapping):
        return dict(model)
    if hasattr(model, "model_json_schema"):
        return model.model_json_schema()
    raise StructuredOutputError(f"not a JSON schema or a Pydantic model: {model!r}")


def check_schema(schema: Any) -> dict[str, Any]:
    """`schema` if it is a valid JSON schema of an object, else StructuredOutputError."""
    if not isinstance(schema, Mapping):
        raise StructuredOutputError("the template's schema must be a JSON object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise StructuredOutputError(
            f"the template's schema is not a valid JSON schema: {exc.message}"
        ) from None
    if schema.get("type") != "object":
        raise StructuredOutputError('the template\'s schema must describe an object ("type": "object")')
    return dict(schema)


def response_format(schema: Mapping[str, Any], name: str = "answer") -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for JSON that matches `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": False}}


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The text that puts the schema in the prompt (for endpoints without ``response_format``)."""
    return f"{SCHEMA_MARKER}\n{json.dumps(schema, indent=2, ensure_ascii=False)}"


def schema_in_prompt(text: str) -> dict[str, Any] | None:
    """The schema a prompt carries after `SCHEMA_MARKER`, if any."""
    _, marker, rest = text.partition(SCHEMA_MARKER)
    if not marker:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(rest.strip())
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def parse_structured(text: str, schema: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(fields, None) for an answer that is a JSON object matching `schema` (a ```json
    fence around it is allowed), else (None, the reason)."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text.strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"[:500]
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return None, f"schema violation at {where}: {first.message}{more}"[:500]
    return value, None


#: Field names a teacher-written problem may use, by role (the first present wins).
_PROBLEM_FIELDS = ("problem", "question", "instruction", "prompt")
_SOLUTION_FIELDS = ("solution", "response", "answer")


def _first(fields: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            return value
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return None


def written_from_fields(family: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """A teacher-written problem from valid structured fields: {"prompt", "response",
    "reference"} (math: `answer`; code: `tests`, `entry_point`), or None without a problem
    and a solution field."""
    prompt, response = _first(fields, _PROBLEM_FIELDS), _first(fields, _SOLUTION_FIELDS)
    if prompt is None or response is None:
        return None
    reference: dict[str, Any] = {}
    if family == "math" and fields.get("answer") is not None:
        reference["answer"] = str(fields["answer"])
    tests = fields.get("tests")
    if isinstance(tests, list) and all(isinstance(line, str) for line in tests):
        tests = "\n".join(tests)  # a list of assert lines
    if family == "code" and isinstance(tests, str):
        reference["tests"] = tests
        if isinstance(fields.get("entry_point"), str):
            reference["entry_point"] = fields["entry_point"]
    return {"prompt": prompt, "response": response, "reference": reference}


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _fits(value: Any, schema: Mapping[str, Any]) -> bool:
    expected = _PYTHON_TYPES.get(schema.get("type", ""))
    return expected is None or isinstance(value, expected)


def example_instance(schema: Mapping[str, Any], values: Mapping[str, Any] | None = None) -> Any:
    """A value matching `schema`, taking a property's value from `values` by name when
    given (for the offline teachers: the simulated teacher and the test server)."""
    values = values or {}
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        out = {}
        for name, sub in (schema.get("properties") or {}).items():
            out[name] = values[name] if name in values and _fits(values[name], sub) else example_instance(sub)
        return out
    if kind == "array":
        return [example_instance(schema.get("items") or {"type": "string"})] * int(schema.get("minItems", 1))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return "text"
