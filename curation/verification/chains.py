"""Which verifiers check which family, and how their verdicts combine into a sample's outcome.

Default chains:

    math         quality, math_answer
    code         quality, code_tests
    instruction  quality, ifeval
    open         quality, judge (only when a judge endpoint is configured)

The *main* verifier of a family is the one that checks correctness:
math_answer, code_tests, ifeval and judge.

Overall outcome (`overall_outcome`, written to ``Sample.passed``), from the
sample's verdicts of the verifiers' current versions:

1. no verdicts at all: None (not verified);
2. any verdict False: False — one failed check is enough to fail;
3. the family's main verifier has a verdict: that verdict (True, or None when it
   could not judge — a timeout, no reference answer, a malformed judge reply);
   a None from another verifier does not block a pass;
4. the main verifier has no verdict: None for math, code and instruction (their
   correctness was never checked); for open, whose judge is optional, True when
   every verdict there is True (the quality checks alone), else None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from curation.data import FAMILIES

DEFAULT_CHAINS: dict[str, tuple[str, ...]] = {
    "math": ("quality", "math_answer"),
    "code": ("quality", "code_tests"),
    "instruction": ("quality", "ifeval"),
    "open": ("quality", "judge"),
}
MAIN_VERIFIER: dict[str, str] = {
    "math": "math_answer",
    "code": "code_tests",
    "instruction": "ifeval",
    "open": "judge",
}
#: Verifiers in a default chain only when they are configured.
OPTIONAL_VERIFIERS: frozenset[str] = frozenset({"judge"})
#: Families whose main verifier is optional (the outcome may rest on the other checks).
OPTIONAL_MAIN: frozenset[str] = frozenset({"open"})


def default_chain(family: str, *, judge_configured: bool = False) -> tuple[str, ...]:
    """The verifiers run on a sample of `family` when none are named."""
    if family not in DEFAULT_CHAINS:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    return tuple(
        name for name in DEFAULT_CHAINS[family] if name not in OPTIONAL_VERIFIERS or judge_configured
    )


def chains_for(
    verifiers: Iterable[str] | None,
    families_of: Mapping[str, tuple[str, ...]],
    *,
    judge_configured: bool = False,
) -> dict[str, tuple[str, ...]]:
    """family -> verifiers to run. `verifiers` None: the default chains; else the named
    verifiers, each on the families it supports (`families_of`: name -> families)."""
    if verifiers is None:
        return {family: default_chain(family, judge_configured=judge_configured) for family in FAMILIES}
    names = list(dict.fromkeys(verifiers))
    unknown = [name for name in names if name not in families_of]
    if unknown:
        raise ValueError(
            f"unknown verifier(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(families_of))})"
        )
    return {
        family: tuple(name for name in names if family in families_of[name] or not families_of[name])
        for family in FAMILIES
    }


def overall_outcome(family: str, verdicts: Mapping[str, bool | None]) -> bool | None:
    """The sample's outcome from {verifier: passed} (current versions only); see the module doc."""
    if not verdicts:
        return None
    values = list(verdicts.values())
    if any(value is False for value in values):
        return False
    main = MAIN_VERIFIER.get(family)
    if main in verdicts:
        return verdicts[main]
    if main is not None and family not in OPTIONAL_MAIN:
        return None
    return True if all(value is True for value in values) else None
