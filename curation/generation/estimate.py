"""The cost estimate shown before a generation starts (CLI and Generate page).

From the run's plan: the requests still to make (slots neither answered nor skipped,
so slots that failed in an earlier run are counted again, and named), the prompt
tokens estimated from the prompts' length, and `max_tokens` per candidate as the
most each answer can cost. The figure is an upper bound for the completions and an
estimate for the prompts (see curation.generation.cost).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from curation.generation.cost import completion_ceiling, estimate_prompt_tokens, mode_prices
from curation.generation.params import GenerationParams
from curation.generation.persist import finished_slots, token_cost
from curation.generation.plan import build_plan
from curation.store.db import session_scope
from curation.store.models import Batch, GenerationRequest


@dataclass
class CostEstimate:
    requests: int
    slots: int
    #: Slots that failed in an earlier run and are asked for again (counted in `requests`).
    failed_before: int
    prompt_tokens: int
    max_completion_tokens: int
    #: Estimated prompt cost plus every answer at max_tokens, at the run's prices.
    max_cost: float
    batch_api: bool
    spend_cap: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        prices = "batch prices" if self.batch_api else "online prices"
        text = (
            f"estimate: {self.requests:,} requests for {self.slots:,} answers"
            + (f" ({self.failed_before:,} failed before, asked again)" if self.failed_before else "")
            + f"; ~{self.prompt_tokens:,} prompt tokens + at most {self.max_completion_tokens:,} completion tokens"
            + f"; at most ${self.max_cost:,.4f} at {prices}"
        )
        if self.spend_cap is not None and self.spend_cap < self.max_cost:
            text += f" (the spend cap of ${self.spend_cap:g} may stop it first)"
        return text


def estimate_generation(engine: Engine, params: GenerationParams | dict[str, Any]) -> CostEstimate:
    """What the run of `params` would request and cost at most (nothing is sent or written)."""
    if not isinstance(params, GenerationParams):
        params = GenerationParams.from_dict(params)
    with session_scope(engine, write=False) as session:
        batch = session.scalar(select(Batch).where(Batch.name == params.batch))
        batch_id, lineage = (batch.id, dict(batch.lineage or {})) if batch is not None else (None, None)
        failed = 0
        if batch_id is not None:
            failed = session.scalar(
                select(func.count()).where(
                    GenerationRequest.batch_id == batch_id, GenerationRequest.status == "failed"
                )
            )
    plan = build_plan(params, engine, lineage=lineage)
    done = finished_slots(engine, batch_id) if batch_id is not None else set()
    max_tokens = params.teacher.max_tokens
    requests = slots = prompt_tokens = completion_tokens = 0
    for item in plan.items:
        missing = [c for c in range(params.n) if (item.index, c) not in done]
        if not missing:
            continue
        groups = [[c] for c in missing] if params.teacher.split_candidates else [missing]
        item_prompt = estimate_prompt_tokens(item.messages)
        for group in groups:
            requests += 1
            slots += len(group)
            prompt_tokens += item_prompt
            completion_tokens += completion_ceiling(max_tokens, len(group))
    prices = mode_prices(params.prices, params.batch_api)
    return CostEstimate(
        requests=requests,
        slots=slots,
        failed_before=int(failed or 0),
        prompt_tokens=prompt_tokens,
        max_completion_tokens=completion_tokens,
        max_cost=round(token_cost(prices, prompt_tokens, completion_tokens), 6),
        batch_api=params.batch_api,
        spend_cap=params.max_cost,
    )
