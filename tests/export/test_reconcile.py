"""Reconciliation: every difference between consecutive columns has reasons that add up."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from curation.export import ExportConfig, run_export
from curation.export.reconcile import UNEXPLAINED, cost_table, reconcile, template_label
from curation.review.decisions import record_decision
from curation.store import session_scope
from curation.store.models import ExportRow, GenerationRequest, Mark, utcnow
from tests.helpers import ADMIN, add_batch, as_user, real_rows, synthetic_rows


def generated_batch(engine):
    """20 requested slots: 14 generated, 3 failed (2 timeout, 1 http_429), 2 pending, 1 skipped.
    Of the 14 samples: 2 marked (1 more mark overridden), decisions on the rest."""
    rows = synthetic_rows(14, decision=None)
    decisions = ["accept"] * 8 + ["reject"] * 2 + ["skip"] + [None] * 3
    for row, decision in zip(rows, decisions, strict=True):
        row["decision"] = decision
    batch_id, ids = add_batch(
        engine, "gen", rows, stats={"cost": 1.6, "prompt_tokens": 1000, "completion_tokens": 4000}
    )
    statuses = (
        [("ok", None, i) for i in range(14)]
        + [("failed", "timeout", None)] * 2
        + [
            ("failed", "http_429", None),
            ("pending", None, None),
            ("pending", None, None),
            ("skipped", None, None),
        ]
    )
    with session_scope(engine) as session:
        session.execute(
            insert(GenerationRequest),
            [
                {
                    "batch_id": batch_id,
                    "item_index": index,
                    "candidate_index": 0,
                    "status": status,
                    "error_kind": kind,
                    "sample_id": ids[sample] if sample is not None else None,
                }
                for index, (status, kind, sample) in enumerate(statuses)
            ],
        )
        # an accepted sample marked as a near duplicate, an undecided one marked exact, an overridden mark
        session.add(Mark(sample_id=ids[0], kind="near_dup", reason="jaccard 0.86"))
        session.add(Mark(sample_id=ids[13], kind="exact_dup"))
        session.add(Mark(sample_id=ids[1], kind="near_dup", overridden_by="ada", overridden_at=utcnow()))
    return batch_id, ids


def test_reconciliation_columns_add_up_with_reasons(engine, tmp_path):
    _, ids = generated_batch(engine)
    add_batch(engine, "human", real_rows(6), origin="real")
    with session_scope(engine) as session:
        session.add(Mark(sample_id=ids[2], kind="copy_of_real"))
    # accepted & unmarked: ids 1, 3..7; a share of 40% with 6 real rows keeps 4 of them
    export = run_export(engine, ADMIN, ExportConfig(out=str(tmp_path / "e"), synthetic_share=0.4))
    with session_scope(engine, write=False) as session:
        exported = set(
            session.scalars(select(ExportRow.sample_id).where(ExportRow.export_id == export.export_id))
        )
    record_decision(engine, as_user("ada"), ids[11], "accept")  # after the export
    record_decision(engine, as_user("ada"), min(exported & set(ids)), "reject")  # exported, rejected since

    report = reconcile(engine)
    assert report.export_id == export.export_id
    assert report.problems() == []
    gen = next(b for b in report.batches if b.batch == "gen")
    counts = {s.name: s.count for s in gen.steps}
    assert counts == {
        "requested": 20,
        "generated": 14,
        "verified": 14,
        "deduplicated": 11,
        "reviewed": 6,
        "exported": 4,
    }
    assert gen.requested_basis == "generation requests"
    assert gen.step("generated").reasons == {
        "failed generation: timeout": 2,
        "failed generation: http_429": 1,
        "not generated yet (pending)": 2,
        "skipped": 1,
    }
    assert gen.step("verified").breakdown == {"pass": 9, "fail": 5, "unknown": 0}
    assert gen.step("deduplicated").reasons == {
        "duplicate: copy of real": 1,
        "duplicate: near dup": 1,
        "duplicate: exact dup": 1,
    }
    assert gen.step("reviewed").reasons == {"rejected": 3, "skipped": 1, "undecided": 1}
    assert gen.step("reviewed").breakdown == {"accept": 8, "reject": 3, "skip": 1, "undecided": 2}
    assert gen.step("exported").reasons == {
        "not needed for the synthetic share": 2,
        "decided after the export": 1,
        "exported, then rejected, un-accepted or marked after the export": -1,
    }
    for difference in gen.differences():
        assert difference["explained"]
        assert sum(difference["reasons"].values()) == difference["difference"]

    human = next(b for b in report.batches if b.batch == "human")
    assert [s.count for s in human.steps] == [6, 6, 6, 6, 6, 6]
    assert human.requested_basis == "samples (no request record)"
    row = gen.row()
    assert (
        row["→ generated: why fewer"]
        == "2 failed generation: timeout, 2 not generated yet (pending), 1 failed generation: http_429, 1 skipped"
    )


def test_an_unexplained_difference_is_a_problem(sqlite_engine):
    batch_id, _ = add_batch(sqlite_engine, "gen", synthetic_rows(3))
    with session_scope(sqlite_engine) as session:
        session.execute(
            insert(GenerationRequest),
            [{"batch_id": batch_id, "item_index": i, "candidate_index": 0, "status": "ok"} for i in range(5)],
        )
    report = reconcile(sqlite_engine)
    assert report.batches[0].step("generated").reasons == {UNEXPLAINED: 2}
    assert report.problems() and "2 unexplained" in report.problems()[0]
    assert report.batches[0].step("exported").reasons == {"no export yet": 3}


def test_real_rows_dropped_by_an_export_are_explained(sqlite_engine, tmp_path):
    add_batch(sqlite_engine, "syn", synthetic_rows(10))
    rows = real_rows(20)
    rows[0]["decision"] = "reject"
    add_batch(sqlite_engine, "human", rows, origin="real")
    run_export(
        sqlite_engine, ADMIN, ExportConfig(out=str(tmp_path / "e"), synthetic_share=0.5, allow_dropping_real=True)
    )
    report = reconcile(sqlite_engine, batch="human")
    human = report.batches[0]
    assert human.step("reviewed").reasons == {"rejected": 1}
    assert human.step("exported").count == 10
    assert human.step("exported").reasons == {
        "real row dropped to reach the synthetic share (allowed by the export)": 9
    }
    assert report.problems() == []


def test_batches_outside_the_export_are_explained(sqlite_engine, tmp_path):
    add_batch(sqlite_engine, "a", synthetic_rows(3, tag="a"))
    add_batch(sqlite_engine, "b", synthetic_rows(2, tag="b"))
    run_export(sqlite_engine, ADMIN, ExportConfig(out=str(tmp_path / "e"), batches=["a"]))
    add_batch(sqlite_engine, "c", synthetic_rows(2, tag="c"))
    report = reconcile(sqlite_engine)
    reasons = {b.batch: b.step("exported").reasons for b in report.batches}
    assert reasons == {"a": {}, "b": {"batch not in the export": 2}, "c": {"batch not in the export": 2}}
    assert report.problems() == []


def test_cost_per_accepted_sample_by_batch_teacher_and_template(sqlite_engine):
    generated_batch(sqlite_engine)
    add_batch(sqlite_engine, "imported", synthetic_rows(3, tag="i"), config={"imported_from": "x.jsonl"})
    costs = cost_table(sqlite_engine)
    assert [row["batch"] for row in costs["by_batch"]] == ["gen"]
    row = costs["by_batch"][0]
    assert (row["accepted"], row["cost"], row["cost_per_accepted"]) == (8, 1.6, pytest.approx(0.2))
    assert costs["by_teacher"] == [
        {
            "teacher": "simulated/sim-1",
            "batches": 1,
            "cost": 1.6,
            "generated": 14,
            "accepted": 8,
            "cost_per_accepted": pytest.approx(0.2),
        }
    ]
    assert (
        costs["by_template"][0]["template"]
        == row["template"]
        == template_label(
            {
                "family": "math",
                "mode": "solve",
                "template": {"system": "You are {persona}.", "user": "Solve: {problem}"},
            }
        )
    )
    assert row["template"].startswith("math/solve: Solve: {problem} [")


def test_cli_reconcile_prints_a_table_and_json(store_url, tmp_path):
    from curation.store import open_store
    from tests.helpers import cli

    engine = open_store(store_url)
    generated_batch(engine)
    run_export(engine, ADMIN, ExportConfig(out=str(tmp_path / "e")))
    text = cli("reconcile", db=store_url)
    assert text.returncode == 0, text.stderr
    assert "failed generation: timeout" in text.stdout and "cost per accepted sample" in text.stdout
    data = json.loads(cli("reconcile", "--batch", "gen", "--json", db=store_url).stdout)
    steps = {s["name"]: s["count"] for s in data["reconciliation"]["batches"][0]["steps"]}
    assert steps["requested"] == 20 and steps["exported"] == 7
    assert data["cost"]["by_batch"][0]["accepted"] == 8
