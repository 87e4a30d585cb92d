"""The IFEval-style constraints generation uses: how each is stated to a teacher and
how its arguments are drawn. Semantics follow IFEval (google-research/instruction_following_eval)."""

from __future__ import annotations

import random
from typing import Any

#: The constraints the built-in instruction source draws from (and the simulated teacher can satisfy).
SUPPORTED: tuple[str, ...] = (
    "punctuation:no_comma",
    "length_constraints:number_words",
    "change_case:english_lowercase",
    "detectable_format:number_bullet_lists",
    "startend:end_checker",
    "keywords:existence",
)

END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "Any other questions?",
)
KEYWORD_POOL = (
    "balance",
    "budget",
    "community",
    "curiosity",
    "evidence",
    "habit",
    "harvest",
    "journey",
    "lantern",
    "patience",
    "planet",
    "practice",
    "rhythm",
    "season",
    "signal",
    "summit",
)


def describe(instruction_id: str, kwargs: dict[str, Any]) -> str:
    """The sentence that states a constraint in an instruction (IFEval wording)."""
    if instruction_id == "punctuation:no_comma":
        return "In your entire response, refrain from the use of any commas."
    if instruction_id == "length_constraints:number_words":
        return f"Answer with {kwargs['relation']} {kwargs['num_words']} words."
    if instruction_id == "change_case:english_lowercase":
        return (
            "Your entire response should be in English, and in all lowercase letters. "
            "No capital letters are allowed."
        )
    if instruction_id == "detectable_format:number_bullet_lists":
        return (
            f"Your answer must contain exactly {kwargs['num_bullets']} bullet points. "
            "Use the markdown bullet points such as:\n* This is point 1.\n* This is point 2"
        )
    if instruction_id == "startend:end_checker":
        return f"Finish your response with this exact phrase {kwargs['end_phrase']} No other words should follow this phrase."
    if instruction_id == "keywords:existence":
        return f"Include keywords {', '.join(kwargs['keywords'])} in the response."
    raise KeyError(f"unknown constraint {instruction_id!r}")


def draw_kwargs(instruction_id: str, rng: random.Random) -> dict[str, Any]:
    if instruction_id == "length_constraints:number_words":
        if rng.random() < 0.5:
            return {"relation": "at least", "num_words": rng.choice((40, 60, 80, 100))}
        return {"relation": "less than", "num_words": rng.choice((120, 150, 200))}
    if instruction_id == "detectable_format:number_bullet_lists":
        return {"num_bullets": rng.randint(2, 5)}
    if instruction_id == "startend:end_checker":
        return {"end_phrase": rng.choice(END_PHRASES)}
    if instruction_id == "keywords:existence":
        return {"keywords": rng.sample(KEYWORD_POOL, rng.randint(1, 2))}
    return {}


def draw_constraints(rng: random.Random, count: int) -> tuple[list[str], list[dict[str, Any]]]:
    """`count` distinct constraints with their arguments."""
    ids = rng.sample(SUPPORTED, min(count, len(SUPPORTED)))
    return ids, [draw_kwargs(i, rng) for i in ids]


def catalog_text() -> str:
    """The list of constraint ids and their arguments, for the write-mode template."""
    return "\n".join(
        [
            "- punctuation:no_comma (kwargs {})",
            '- length_constraints:number_words (kwargs {"relation": "at least"|"less than", "num_words": int})',
            "- change_case:english_lowercase (kwargs {})",
            '- detectable_format:number_bullet_lists (kwargs {"num_bullets": int})',
            '- startend:end_checker (kwargs {"end_phrase": str})',
            '- keywords:existence (kwargs {"keywords": [str, ...]})',
        ]
    )
