"""Prices, the worst-case cost of a request and the spend cap's words.

A request's cost is its real `usage` at the prices of its mode: the online prices
(`prompt_per_million`, `completion_per_million`) or, with the Batch API, the batch
prices (`batch_prompt_per_million`, `batch_completion_per_million`; the online ones
when those are not given). Before a request is sent under a spend cap, its
worst-case cost is reserved: the prompt's estimated tokens plus `max_tokens` per
candidate (a teacher without `max_tokens` is assumed to write at most
UNBOUNDED_COMPLETION_TOKENS per candidate).
"""

from __future__ import annotations

import math
from typing import Any

from curation.generation.persist import token_cost

PRICE_KEYS = (
    "prompt_per_million",
    "completion_per_million",
    "batch_prompt_per_million",
    "batch_completion_per_million",
)
UNBOUNDED_COMPLETION_TOKENS = 4096
#: Characters per token assumed for an estimate (English BPE averages about 4; 3 errs high).
CHARS_PER_TOKEN = 3
#: Tokens a chat format adds per message (role, separators) and per request.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REQUEST = 3


def mode_prices(prices: dict[str, float], batch_api: bool) -> dict[str, float]:
    """The {prompt_per_million, completion_per_million} a run pays, by its mode."""
    if not batch_api:
        return {key: float(prices.get(key, 0.0)) for key in PRICE_KEYS[:2]}
    return {
        key: float(prices.get(f"batch_{key}", prices.get(key, 0.0)))
        for key in ("prompt_per_million", "completion_per_million")
    }


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Tokens of a conversation, estimated from its length (no tokenizer is loaded)."""
    total = TOKENS_PER_REQUEST
    for message in messages:
        total += TOKENS_PER_MESSAGE + math.ceil(len(str(message.get("content") or "")) / CHARS_PER_TOKEN)
    return total


def completion_ceiling(max_tokens: int | None, candidates: int) -> int:
    return (max_tokens or UNBOUNDED_COMPLETION_TOKENS) * candidates


def worst_case_cost(
    prices: dict[str, float], messages: list[dict[str, Any]], max_tokens: int | None, candidates: int
) -> float:
    """What one request can cost at most: its estimated prompt and `max_tokens` per candidate."""
    return token_cost(prices, estimate_prompt_tokens(messages), completion_ceiling(max_tokens, candidates))


def cap_reason(max_cost: float, answers: int) -> str:
    return f"spend cap of ${max_cost:g} reached after {answers:,} answers"
