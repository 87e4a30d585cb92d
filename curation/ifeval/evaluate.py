"""Strict and loose evaluation of one response, as IFEval's ``evaluation_lib``.

Strict: each instruction is checked on the response as is. Loose: an
instruction is followed if it holds on any of eight variants of the response
(the response; without its first line; without its last line; without both;
and each of those four with every ``*`` removed), which forgives a preamble
like "Sure, here it is:", a closing remark and markdown emphasis. As in the
reference, an empty (whitespace-only) response follows nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from curation.data import record_dict
from curation.ifeval.checkers import Checker, InstructionError, build_checker


def loose_variants(response: str) -> list[str]:
    """The responses loose mode tries, in evaluation_lib's order, without
    duplicates or empty ones."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    candidates = (
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    )
    seen: set[str] = set()
    out: list[str] = []
    for candidate in candidates:
        if candidate.strip() and candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out


@dataclass(frozen=True)
class InstructionOutcome:
    instruction_id: str
    kwargs: dict[str, Any]
    strict: bool
    loose: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)


@dataclass(frozen=True)
class Evaluation:
    outcomes: tuple[InstructionOutcome, ...]

    @property
    def strict_passed(self) -> bool:
        return all(o.strict for o in self.outcomes)

    @property
    def loose_passed(self) -> bool:
        return all(o.loose for o in self.outcomes)

    @property
    def strict_score(self) -> float:
        return sum(o.strict for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def loose_score(self) -> float:
        return sum(o.loose for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0


def build_checkers(
    instruction_ids: Sequence[str], kwargs_list: Sequence[Mapping[str, Any] | None] | None = None
) -> list[Checker]:
    """Checkers for an IFEval ``instruction_id_list`` and its parallel ``kwargs``.

    ``kwargs_list`` may be omitted when no instruction takes arguments. Raises
    `InstructionError` for the first unknown id or malformed argument.
    """
    if isinstance(instruction_ids, str) or not isinstance(instruction_ids, Sequence):
        raise InstructionError(None, "instruction_id_list must be a list of ids", "instruction_id_list")
    if kwargs_list is None:
        kwargs_list = [None] * len(instruction_ids)
    elif isinstance(kwargs_list, str | Mapping) or not isinstance(kwargs_list, Sequence):
        raise InstructionError(None, "kwargs must be a list with one object per instruction", "kwargs")
    if len(kwargs_list) != len(instruction_ids):
        raise InstructionError(
            None, f"kwargs has {len(kwargs_list)} entries for {len(instruction_ids)} instructions", "kwargs"
        )
    return [build_checker(i, k) for i, k in zip(instruction_ids, kwargs_list, strict=True)]


def evaluate_checkers(response: str, checkers: Sequence[Checker]) -> Evaluation:
    """Check ``response`` against built checkers, strict and loose."""
    empty = not response.strip()
    variants: list[str] | None = None
    outcomes: list[InstructionOutcome] = []
    for checker in checkers:
        if empty:
            outcomes.append(
                InstructionOutcome(checker.instruction_id, checker.kwargs, False, False, "empty response")
            )
            continue
        strict, reason = checker.check(response)
        loose = strict
        if not strict:
            if variants is None:
                variants = [v for v in loose_variants(response) if v != response]
            loose = any(checker.check(v)[0] for v in variants)
            if loose:
                reason += " (followed in loose mode)"
        outcomes.append(InstructionOutcome(checker.instruction_id, checker.kwargs, strict, loose, reason))
    return Evaluation(tuple(outcomes))


def evaluate_response(
    response: str,
    instruction_ids: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Any] | None] | None = None,
) -> Evaluation:
    """Check ``response`` against IFEval instructions; raises `InstructionError`."""
    return evaluate_checkers(response, build_checkers(instruction_ids, kwargs_list))
