"""Turning a teacher's answer into Sample rows (runs in the writer thread).

Solve mode: Sample.prompt is the problem, Sample.response the raw completion,
the family's answer/code/response is extracted into metadata. Write mode: the
teacher wrote the problem too, so the parsed problem becomes the prompt and the
parsed solution the response; the raw completion is kept in
metadata.raw_completion, and an unparseable answer is kept as it came
(prompt = the writing task) with metadata.parse_error.

With a template schema (structured output) every answer is validated: the fields of a
valid one go to metadata.fields (in write mode its problem/answer/tests become the
sample), an invalid one is kept as it came with metadata.validation_error.
"""

from __future__ import annotations

from typing import Any

from curation.generation.extract import ParseError, extract, parse_written
from curation.generation.persist import SlotResult
from curation.generation.plan import PlanItem
from curation.generation.structured import parse_structured, written_from_fields
from curation.teachers.base import Completion, TeacherError


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(max(0, total), parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def build_slots(
    item: PlanItem,
    candidates: list[int],
    completion: Completion,
    *,
    teacher_info: dict[str, Any],
    cached: bool,
    attempts: int,
    latency_ms: float | None,
    last_error_kind: str | None,
    extra_meta: dict[str, Any] | None = None,
    messages: list[dict[str, str]] | None = None,
) -> list[SlotResult]:
    prompt_share = [completion.prompt_tokens] + [0] * (len(candidates) - 1)
    completion_share = _split(completion.completion_tokens, len(candidates))
    if messages is None:
        messages = item.messages
    teacher_prompt = messages[-1]["content"] if messages else ""
    slots = []
    for position, (candidate, choice) in enumerate(zip(candidates, completion.choices, strict=False)):
        truncated = choice.finish_reason == "length"
        meta: dict[str, Any] = dict(item.problem.metadata)
        meta.update(teacher_info)
        meta["finish_reason"] = choice.finish_reason
        meta["truncated"] = truncated
        meta["teacher_prompt"] = teacher_prompt
        if item.levers():
            meta["levers"] = item.levers()
        if item.few_shot_ids:
            meta["few_shot_ids"] = item.few_shot_ids
        if cached:
            meta["cached"] = True
        meta.update(choice.meta)
        if extra_meta:
            meta.update(extra_meta)
        error_kind = last_error_kind
        family = item.problem.family
        fields = None
        if item.schema is not None:
            fields, validation_error = parse_structured(choice.text, item.schema)
            if fields is not None:
                meta["fields"] = fields
            else:
                meta["validation_error"] = validation_error
        if item.task == "write":
            written = None
            if item.schema is not None:
                written = written_from_fields(family, fields) if fields is not None else None
            else:
                try:
                    written = parse_written(family, choice.text)
                except ParseError as exc:
                    meta["parse_error"] = str(exc)[:500]
                    error_kind = "parse_error"
            if written is None:
                prompt, response, reference = teacher_prompt, choice.text, {}
            else:
                prompt, response, reference = written["prompt"], written["response"], written["reference"]
                meta["written"] = True
                meta.update(extract(family, response, reference))
            meta["raw_completion"] = choice.text
        else:
            prompt, response, reference = item.problem.prompt, choice.text, dict(item.problem.reference)
            meta.update(extract(family, choice.text, reference))
        slots.append(
            SlotResult(
                item_index=item.index,
                candidate_index=candidate,
                status="ok",
                attempts=attempts,
                error_kind=error_kind,
                finish_reason=choice.finish_reason,
                prompt_tokens=prompt_share[position],
                completion_tokens=completion_share[position],
                latency_ms=latency_ms,
                cached=cached,
                sample={
                    "external_id": item.problem.id,
                    "family": family,
                    "prompt": prompt,
                    "response": response,
                    "reference": reference,
                    "metadata": meta,
                },
            )
        )
    return slots


def failed_slots(
    item: PlanItem, candidates: list[int], error: TeacherError, attempts: int
) -> list[SlotResult]:
    return [
        SlotResult(
            item_index=item.index,
            candidate_index=candidate,
            status="failed",
            attempts=attempts,
            error_kind=error.kind,
            error=str(error)[:1000],
        )
        for candidate in candidates
    ]


def skipped_slots(item_index: int, candidates: list[int], reason: str) -> list[SlotResult]:
    return [
        SlotResult(
            item_index=item_index, candidate_index=c, status="skipped", error_kind="parse_error", error=reason
        )
        for c in candidates
    ]
