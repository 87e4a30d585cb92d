"""The store on SQLite and PostgreSQL: schema, migrations, constraints, concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from curation.io.importer import import_file
from curation.review.decisions import current_decision, record_decision
from curation.store import open_store, session_scope
from curation.store.db import make_engine
from curation.store.migrate import current_revision, head_revision, upgrade
from curation.store.models import Base, Batch, Decision, Sample
from tests.helpers import ADMIN, as_user


def test_schema_is_at_head_and_matches_models(engine):
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sample_slot_is_unique(engine):
    with session_scope(engine) as session:
        batch = Batch(name="b")
        session.add(batch)
        session.flush()
        batch_id = batch.id
    row = dict(
        batch_id=batch_id, item_index=0, candidate_index=0, family="math", prompt="p", content_hash="h"
    )
    with session_scope(engine) as session:
        session.add(Sample(**row))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(Sample(**row))


def test_deleting_a_batch_cascades_to_its_samples(engine, records_file):
    import_file(engine, ADMIN, records_file(5), "b")
    with session_scope(engine) as session:
        session.delete(session.scalar(select(Batch).where(Batch.name == "b")))
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count(Sample.id))) == 0


def test_upgrade_from_every_revision_keeps_data(make_store_url, records_file):
    """Data written at the first revision survives each later upgrade step."""
    from alembic.script import ScriptDirectory

    from curation.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    revisions = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    engine = make_engine(make_store_url("sqlite"))
    upgrade(engine, revisions[0])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO batches (name, origin, source, generation_config, status, generation, lineage, stats, created_at, updated_at) VALUES ('kept', 'synthetic', '', '{}', 'ready', 0, '{}', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO samples (batch_id, item_index, candidate_index, family, prompt, response, reference, metadata, content_hash, created_at) VALUES (1, 0, 0, 'math', 'p', 'r', '{}', '{\"k\": 1}', 'h', '2026-01-01')"
            )
        )
    for revision in revisions[1:]:
        upgrade(engine, revision)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM samples")).scalar() == 1
    upgrade(engine)
    with session_scope(engine, write=False) as session:
        sample = session.scalar(select(Sample))
        assert (sample.prompt, sample.meta) == ("p", {"k": 1})


def _decide_many(url: str, sample_ids: list[int], reviewer: str, rounds: int) -> None:
    engine = open_store(url)
    for round_number in range(rounds):
        for sample_id in sample_ids:
            action = ("accept", "reject")[(round_number + sample_id) % 2]
            record_decision(engine, as_user(reviewer), sample_id, action, note=f"round {round_number}")
    engine.dispose()


def test_concurrent_reviewers_never_lose_a_decision(store_url, records_file):
    """Four reviewer processes decide the same samples at once; every event is kept
    and each sample's current decision is its latest event."""
    engine = open_store(store_url)
    import_file(engine, ADMIN, records_file(10), "shared")
    with session_scope(engine, write=False) as session:
        ids = list(session.scalars(select(Sample.id).order_by(Sample.id)))
    reviewers, rounds = 4, 15
    ctx = multiprocessing.get_context("spawn")
    processes = [
        ctx.Process(target=_decide_many, args=(store_url, ids, f"reviewer-{n}", rounds))
        for n in range(reviewers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count(Decision.id))) == reviewers * rounds * len(ids)
        for sample_id in ids:
            latest = session.scalar(
                select(Decision.action)
                .where(Decision.sample_id == sample_id)
                .order_by(Decision.id.desc())
                .limit(1)
            )
            assert session.get(Sample, sample_id).decision == latest == current_decision(engine, sample_id)


def test_workspace_directory_is_created(tmp_path: Path):
    engine = open_store(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'w.db'}")
    assert (tmp_path / "nested" / "dir" / "w.db").exists()
    engine.dispose()
