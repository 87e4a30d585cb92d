"""Best-of-n export rules (first / all / best by judge score) and preference pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from curation.export import ExportConfig, plan_export, run_export
from curation.store import session_scope
from curation.store.models import Sample
from tests.helpers import add_batch, candidate_rows


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
    result = run_export(engine, config(tmp_path, candidates="best"))
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["candidate_rule"]["rule"] == "best"
    assert "judge score" in manifest["candidate_rule"]["meaning"]
    assert manifest["config"]["candidates"] == "best"


def test_an_unknown_rule_is_refused(tmp_path):
    with pytest.raises(ValueError, match="known: first, all, best"):
        config(tmp_path, candidates="random")
