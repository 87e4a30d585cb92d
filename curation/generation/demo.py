"""The demo workspace's candidate batches, made offline by the simulated teacher.

Every batch made here says so: its name starts with "simulated", Batch.source
starts with "simulated", generation_config.teacher is "simulated" and each
sample's metadata has teacher "simulated" and the fault injected (if any).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from curation.generation.run import run_generation
from curation.store.db import session_scope
from curation.store.models import Batch

DEMO_FAULT_RATE = 0.2
DEMO_SEED = 7

#: name -> (family, mode, source)
DEMO_BATCHES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "simulated math": (
        "math",
        "solve",
        {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 40, "chain_sum": 20}},
    ),
    "simulated code": ("code", "solve", {"kind": "humaneval", "limit": 40}),
    "simulated instruction": ("instruction", "solve", {"kind": "ifeval", "count": 60}),
    "simulated open": ("open", "solve", {"kind": "open_prompts", "count": 40}),
}


def demo_params(name: str, *, fault_rate: float = DEMO_FAULT_RATE, seed: int = DEMO_SEED) -> dict[str, Any]:
    family, mode, source = DEMO_BATCHES[name]
    return {
        "batch": name,
        "family": family,
        "mode": mode,
        "source": source,
        "teacher": {"kind": "simulated", "fault_rate": fault_rate, "seed": seed, "api_key_env": None},
        "n": 1,
        "seed": seed,
    }


def create_demo_batches(
    engine: Engine, *, fault_rate: float = DEMO_FAULT_RATE, seed: int = DEMO_SEED
) -> list[str]:
    """Create (or finish) the four simulated demo batches; returns the names it generated.
    Batches already "ready" are left alone, so calling it twice is harmless."""
    with session_scope(engine, write=False) as session:
        ready = set(
            session.scalars(
                select(Batch.name).where(Batch.status == "ready", Batch.name.in_(list(DEMO_BATCHES)))
            )
        )
    created = []
    for name in DEMO_BATCHES:
        if name in ready:
            continue
        run_generation(engine, demo_params(name, fault_rate=fault_rate, seed=seed))
        created.append(name)
    return created
