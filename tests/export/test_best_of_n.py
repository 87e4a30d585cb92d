"""Best-of-n export rules (first / all / best by judge score) and preference pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from curation.export import ExportConfig, plan_export, run_export
from curation.generation.run import run_generation
from curation.store import session_scope
from curation.store.models import Sample
from curation.verification.runner import run_verification
from tests.helpers import ADMIN, add_batch, candidate_rows, cli


def config(tmp_path: Path, **overrides: Any) -> ExportConfig:
    return ExportConfig(**{"out": str(tmp_path / "out"), "reference_sets": [], "eval_sets": [], **overrides})


def slots(engine, ids) -> set[tuple[int, int]]:
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.item_index, Sample.candidate_index).where(Sample.id.in_([int(i) for i in ids]))
        )
        return {tuple(row) for row in rows}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # problem p: candidates with (p + c) odd pass; the judge ranks higher indexes higher
        ("first", {(0, 1), (1, 0), (2, 1)}),
        ("all", {(0, 1), (0, 3), (1, 0), (1, 2), (2, 1), (2, 3)}),
        ("best", {(0, 3), (1, 2), (2, 3)}),
    ],
)
def test_candidate_rules_keep_the_right_candidates(engine, tmp_path, rule, expected):
    add_batch(engine, "bon", candidate_rows(3, 4))
    plan = plan_export(engine, config(tmp_path, candidates=rule))
    assert plan.ok, plan.errors
    assert slots(engine, plan.ids) == expected
    assert plan.dropped["candidate_failed"] == {"synthetic": 6}
    assert plan.dropped.get("candidate_not_chosen", {}).get("synthetic", 0) == 6 - len(expected)


def test_without_a_rule_every_accepted_candidate_is_kept(engine, tmp_path):
    add_batch(engine, "bon", candidate_rows(3, 4))
    plan = plan_export(engine, config(tmp_path))
    assert plan.rows == 12 and "candidate_failed" not in plan.dropped


def test_the_manifest_names_the_candidate_rule(engine, tmp_path):
    add_batch(engine, "bon", candidate_rows(2, 4))
    result = run_export(engine, ADMIN, config(tmp_path, candidates="best"))
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["candidate_rule"]["rule"] == "best"
    assert "judge score" in manifest["candidate_rule"]["meaning"]
    assert manifest["config"]["candidates"] == "best"


def test_an_unknown_rule_is_refused(tmp_path):
    with pytest.raises(ValueError, match="known: first, all, best"):
        config(tmp_path, candidates="random")


def load_pairs(path: Path) -> Any:
    from datasets import load_dataset  # heavy: only the tests that load an export back

    return load_dataset("json", data_files=str(path), split="train")


def stored(engine, sample_id: int) -> Sample:
    with session_scope(engine, write=False) as session:
        sample = session.get(Sample, sample_id)
        session.expunge(sample)
        return sample


def assert_verifier_pair(engine, row: dict[str, Any]) -> None:
    """A verifier-based pair: chosen passed, rejected failed, both stored candidates of one problem."""
    provenance = row["provenance"]
    chosen = stored(engine, provenance["chosen_sample_id"])
    rejected = stored(engine, provenance["rejected_sample_id"])
    assert provenance["evidence"]["kind"] == "verifier"
    assert (chosen.passed, rejected.passed) == (True, False)
    assert (chosen.batch_id, chosen.item_index) == (rejected.batch_id, rejected.item_index)
    assert chosen.candidate_index != rejected.candidate_index
    assert (row["prompt"], row["chosen"], row["rejected"]) == (
        chosen.prompt,
        chosen.response,
        rejected.response,
    )
    assert (provenance["chosen_content_hash"], provenance["rejected_content_hash"]) == (
        chosen.content_hash,
        rejected.content_hash,
    )


def test_preference_pairs_put_a_passing_candidate_against_a_failing_one(engine, tmp_path):
    rows = candidate_rows(3, 4, decision=None)
    for row in rows:
        row["verdicts"] = row["verdicts"][:1]  # no judge: verifier evidence only
    add_batch(engine, "bon", rows)
    result = run_export(engine, ADMIN, config(tmp_path, format="preference", out=str(tmp_path / "pairs.jsonl")))
    dataset = load_pairs(tmp_path / "pairs.jsonl")
    assert dataset.num_rows == result.rows == 6  # two failing candidates per problem, each paired once
    assert {"prompt", "chosen", "rejected", "provenance"} <= set(dataset.column_names)
    for row in dataset:
        assert_verifier_pair(engine, row)
        assert row["provenance"]["evidence"]["rejected"]["failed_verdicts"]
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["counts"]["pairs_by_evidence"] == {"human": 0, "verifier": 6, "judge": 0}


def test_human_decisions_come_first_and_are_never_contradicted(engine, tmp_path):
    rows = candidate_rows(1, 4, decision=None)
    # candidate 1 passed but a reviewer rejected it; candidate 2 failed but a reviewer accepted it
    rows[1]["decision"], rows[2]["decision"] = "reject", "accept"
    add_batch(engine, "bon", rows)
    run_export(engine, ADMIN, config(tmp_path, format="preference"))
    pairs = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    kinds = [
        (
            p["provenance"]["evidence"]["kind"],
            p["provenance"]["evidence"]["chosen"]["candidate_index"],
            p["provenance"]["evidence"]["rejected"]["candidate_index"],
        )
        for p in pairs
    ]
    assert kinds[0] == ("human", 2, 1)
    assert pairs[0]["provenance"]["evidence"]["chosen"]["reviewer"] == "ada"
    for _, chosen, rejected in kinds:
        assert chosen != 1 and rejected != 2  # never chosen when rejected by a human, nor the reverse


def test_judge_scores_make_pairs_when_nothing_else_differs(engine, tmp_path):
    rows = candidate_rows(1, 3, decision=None)
    for row in rows:
        row["passed"] = None
        row["verdicts"] = [row["verdicts"][1]]
    add_batch(engine, "judged", rows)
    result = run_export(engine, ADMIN, config(tmp_path, format="preference"))
    pairs = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert result.rows == 2
    for pair in pairs:
        evidence = pair["provenance"]["evidence"]
        assert evidence["kind"] == "judge"
        assert evidence["chosen"]["judge_score"] > evidence["rejected"]["judge_score"]


def test_no_pairs_is_an_error(engine, tmp_path):
    rows = candidate_rows(1, 2, decision=None)
    for row in rows:
        row["passed"], row["verdicts"] = True, []
    add_batch(engine, "same", rows)
    with pytest.raises(ValueError, match="no preference pairs"):
        run_export(engine, ADMIN, config(tmp_path, format="preference"))


def test_judge_pairs_never_prefer_a_failing_candidate_to_a_passing_one(engine, tmp_path):
    rows = candidate_rows(1, 4, decision=None)  # candidates 1 and 3 pass; the judge ranks 3 > 2 > 1 > 0
    add_batch(engine, "bon", rows)
    run_export(engine, ADMIN, config(tmp_path, format="preference"))
    pairs = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert pairs
    for pair in pairs:
        evidence = pair["provenance"]["evidence"]
        assert not (evidence["chosen"]["passed"] is False and evidence["rejected"]["passed"] is True)


def test_preference_export_of_a_generated_and_verified_best_of_4_batch(engine, tmp_path):
    """The issue's check: 4 candidates per problem from the simulated teacher, verified;
    every pair's chosen side passed and its rejected side failed, both resolve to stored
    samples of the same problem, and `datasets` loads the rows."""
    run_generation(
        engine,
        {
            "batch": "best-of-4",
            "family": "math",
            "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 8}},
            "n": 4,
            "teacher": {"kind": "simulated", "fault_rate": 0.4},
        },
    )
    run_verification(engine, {"batches": ["best-of-4"], "verifiers": ["math_answer"], "jobs": 1})
    out = tmp_path / "pairs.jsonl"
    result = run_export(engine, ADMIN, config(tmp_path, format="preference", out=str(out)))
    dataset = load_pairs(out)
    assert dataset.num_rows == result.rows > 0
    for row in dataset:
        assert_verifier_pair(engine, row)


def test_the_cli_writes_preference_pairs_and_names_the_candidate_rule(sqlite_engine, tmp_path):
    add_batch(sqlite_engine, "bon", candidate_rows(2, 4))
    url = str(sqlite_engine.url)
    pairs = cli("export", "--format", "preference", "--out", str(tmp_path / "pairs.jsonl"), db=url)
    assert pairs.returncode == 0, pairs.stderr
    assert "preference pairs" in pairs.stdout and (tmp_path / "pairs.jsonl").read_text().count("\n") > 0
    best = cli(
        "export",
        "--candidates",
        "best",
        "--no-reference",
        "--no-eval",
        "--out",
        str(tmp_path / "best"),
        db=url,
    )
    assert best.returncode == 0, best.stderr
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    assert manifest["candidate_rule"]["rule"] == "best" and manifest["counts"]["rows"] == 2


def test_candidates_accepted_alike_still_pair_by_verification(engine, tmp_path):
    add_batch(engine, "bon", [{**row, "verdicts": row["verdicts"][:1]} for row in candidate_rows(2, 4)])
    result = run_export(engine, ADMIN, config(tmp_path, format="preference"))
    assert result.counts["pairs_by_evidence"] == {"human": 0, "verifier": 4, "judge": 0}


def test_best_without_judge_scores_says_so(engine, tmp_path):
    add_batch(engine, "bon", [{**row, "verdicts": row["verdicts"][:1]} for row in candidate_rows(2, 4)])
    plan = plan_export(engine, config(tmp_path, candidates="best"))
    assert plan.rows == 0
    assert plan.dropped["candidate_not_judged"] == {"synthetic": 4}
    assert plan.dropped["candidate_failed"] == {"synthetic": 4}
