"""The demo workspace: the bundled real reference sets, an example import, and four
candidate batches written offline by the *simulated* teacher (labelled so everywhere),
verified so their failures can be compared with the faults the simulator injected."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from curation.auth.roles import Action, Actor, writes
from curation.config import DEMO_DIR
from curation.diversity.service import Selection, compute_diversity, embed_selection, resolve_batch, run_dedup
from curation.generation.demo import DEMO_BATCHES, create_demo_batches
from curation.io.importer import import_file
from curation.store.db import session_scope
from curation.store.models import Batch
from curation.verification.demo import verify_demo_batches

EXAMPLE_BATCH = "example import"


def _say(message: str) -> None:
    return None


@writes(Action.IMPORT)
def ensure_demo_workspace(
    engine: Engine, actor: Actor, *, force: bool = False, say: Callable[[str], None] = _say
) -> list[str]:
    """Populate an empty workspace (or add what is missing with `force`). Returns the batches created."""
    with session_scope(engine, write=False) as session:
        existing = set(session.scalars(select(Batch.name)))
    if existing and not force:
        return []
    created: list[str] = []
    for path in sorted(DEMO_DIR.glob("reference_*.jsonl")):
        name = "reference: " + path.stem.removeprefix("reference_").replace("_", " ")
        if name not in existing:
            say(f"importing the real reference set {name!r}")
            import_file(engine, actor, path, name, origin="real", source=f"bundled:{path.name}")
            created.append(name)
    if EXAMPLE_BATCH not in existing:
        import_file(
            engine, actor, DEMO_DIR / "example_batch.jsonl", EXAMPLE_BATCH, source="bundled:example_batch.jsonl"
        )
        created.append(EXAMPLE_BATCH)
    say("generating the demo batches with the simulated teacher (offline)")
    created += create_demo_batches(engine)
    say("verifying the demo batches")
    verify_demo_batches(engine, batches=[*DEMO_BATCHES, EXAMPLE_BATCH])
    say("embedding the demo data and the reference sets (bundled MiniLM, offline)")
    describe_diversity(engine, list(DEMO_BATCHES))
    return created


def describe_diversity(engine: Engine, batch_names: list[str]) -> None:
    """Embeddings, duplicate marks and a metric snapshot per batch, so the Diversity
    and Review pages have something to show from the first start."""
    embed_selection(engine, Selection(origins=("real", "synthetic")))
    for name in batch_names:
        batch_id = resolve_batch(engine, name).id
        run_dedup(engine, name)
        compute_diversity(engine, Selection(batch_ids=(batch_id,)))
