"""Decisions are append-only with undo; export carries provenance that resolves back."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import func, select

from curation.export import ExportConfig, run_export, sha256_file
from curation.io.importer import import_file
from curation.review.decisions import current_decision, record_decision, undo_last
from curation.store import session_scope
from curation.store.models import Decision, ExportRow, Sample
from curation.store.queries import SampleFilter, get_sample, query_samples
from tests.helpers import ADMIN, as_user


@pytest.fixture
def batch(engine, records_file):
    import_file(engine, ADMIN, records_file(10), "b")
    rows, _ = query_samples(engine, SampleFilter())
    return [row.id for row in rows]


def test_latest_decision_wins_and_history_is_kept(engine, batch):
    first = batch[0]
    record_decision(engine, as_user("ada"), first, "accept")
    record_decision(engine, as_user("bob"), first, "reject", reason_tags=["wrong answer"], note="off by one")
    detail = get_sample(engine, first)
    assert detail.decision == "reject" == current_decision(engine, first)
    assert [(h["reviewer"], h["action"]) for h in detail.history] == [("ada", "accept"), ("bob", "reject")]
    assert detail.history[1]["reason_tags"] == ["wrong answer"]


def test_undo_appends_an_event_restoring_the_previous_state(engine, batch):
    sample_id = batch[1]
    record_decision(engine, as_user("ada"), sample_id, "accept")
    record_decision(engine, as_user("ada"), sample_id, "reject")
    assert undo_last(engine, as_user("ada")) is not None
    assert current_decision(engine, sample_id) == "accept"
    assert undo_last(engine, as_user("ada")) is not None
    assert current_decision(engine, sample_id) is None
    assert undo_last(engine, as_user("ada")) is None
    with session_scope(engine, write=False) as session:
        assert (
            session.scalar(
                select(Decision.id).where(Decision.sample_id == sample_id).order_by(Decision.id.desc())
            )
            == 4
        )


@pytest.mark.parametrize(
    ("reviewer", "action", "error"),
    [("ada", "maybe", ValueError("action must be one of")), ("ada", "accept", TypeError("acting user"))],
)
def test_bad_decisions_are_refused(engine, batch, reviewer, action, error):
    """A bad action, and a bare name instead of the acting user, change nothing."""
    actor = as_user(reviewer) if isinstance(error, ValueError) else reviewer
    with pytest.raises(type(error), match=str(error)):
        record_decision(engine, actor, batch[0], action)
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count()).select_from(Decision)) == 0


def test_filters_find_decided_samples(engine, batch):
    record_decision(engine, as_user("ada"), batch[2], "accept")
    record_decision(engine, as_user("ada"), batch[3], "reject")
    rows, total = query_samples(engine, SampleFilter(decisions=["accept"]))
    assert (total, [r.id for r in rows]) == (1, [batch[2]])
    _, undecided = query_samples(engine, SampleFilter(decisions=["undecided"]))
    assert undecided == 8
    rows, total = query_samples(engine, SampleFilter(search="5 + 6"))
    assert total == 1 and "5 + 6" in rows[0].prompt


def test_export_has_provenance_that_resolves_back_to_the_store(engine, batch, tmp_path):
    for sample_id in batch[:4]:
        record_decision(engine, as_user("ada"), sample_id, "accept", reason_tags=["great example"])
    record_decision(engine, as_user("ada"), batch[4], "reject")
    config = ExportConfig(out=str(tmp_path / "out"), reference_sets=[], eval_sets=[], created_by="ada")
    result = run_export(engine, ADMIN, config)
    data = tmp_path / "out" / "data.jsonl"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert result.rows == 4
    assert manifest["files"] == {"data.jsonl": sha256_file(data)}
    frame = pd.read_json(data, lines=True)
    assert len(frame) == 4
    with session_scope(engine, write=False) as session:
        for row in frame.to_dict("records"):
            provenance = row["provenance"]
            sample = session.get(Sample, provenance["sample_id"])
            assert sample.content_hash == provenance["content_hash"]
            assert (sample.prompt, sample.response, sample.decision) == (
                row["prompt"],
                row["response"],
                "accept",
            )
            assert provenance["decision"]["reviewer"] == "ada"
            assert provenance["batch"] == "b"
        linked = set(
            session.scalars(select(ExportRow.sample_id).where(ExportRow.export_id == result.export_id))
        )
    assert linked == set(batch[:4])
