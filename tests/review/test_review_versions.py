"""Review reads current verdicts only (SQLite and PostgreSQL): a verifier's old verdicts
are kept when its version changes, but bulk actions, queues, statistics, the sample
detail, the failure reasons and the export never count them."""

from __future__ import annotations

from operator import itemgetter

import pytest

from curation.export.rows import iter_records
from curation.review.bulk import (
    bulk_accept_passed,
    bulk_reject_failures,
    preview_reject_failures,
    rejectable_reasons,
)
from curation.review.decisions import record_decision
from curation.review.queues import Queue, draw_spot_check, next_sample, pool_samples
from curation.review.stats import verifier_scores
from curation.store import session_scope
from curation.store.models import Verdict
from curation.store.queries import get_sample
from curation.verification.report import failure_reasons
from curation.verification.versions import current_only, current_versions
from tests.helpers import ADMIN, add_batch, as_user

QUALITY = current_versions()["quality"]
MATH = current_versions()["math_answer"]
OLD = f"{QUALITY}-old"


def add_verdicts(engine, sample_id, *verdicts):
    """(verifier, version, passed, reason) rows for one sample, written in this order."""
    for verifier, version, passed, reason in verdicts:
        with session_scope(engine) as session:
            session.add(
                Verdict(sample_id=sample_id, verifier=verifier, version=version, passed=passed, reason=reason)
            )


def versioned_batch(engine, passing=0):
    """A batch whose samples' verdicts changed with the quality check's new version.

    * `fixed`: quality failed it in the old version, passes it in the current one.
    * `failing`: the current quality version fails it with the same reason.
    * `stale`: only the old version passed it; its stored outcome predates the new one.
    * `disagree`: the current versions disagree (quality passes, math_answer fails);
      the old quality version failed it too.
    * then `passing` samples every current verifier passed."""
    rows = [
        {"prompt": "fixed", "passed": True},
        {"prompt": "failing", "passed": False},
        {"prompt": "stale", "passed": True},
        {"prompt": "disagree", "passed": False},
        *({"prompt": f"fine {i}", "passed": True} for i in range(passing)),
    ]
    batch_id, ids = add_batch(engine, "versions", rows)
    fixed, failing, stale, disagree, *fine = ids
    add_verdicts(engine, fixed, ("quality", OLD, False, "too short"), ("quality", QUALITY, True, "ok"))
    add_verdicts(engine, failing, ("quality", QUALITY, False, "too short"))
    add_verdicts(engine, stale, ("quality", OLD, True, "ok"))
    add_verdicts(
        engine,
        disagree,
        ("quality", OLD, False, "too short"),
        ("quality", QUALITY, True, "ok"),
        ("math_answer", MATH, False, "wrong answer"),
    )
    for sample_id in fine:
        add_verdicts(engine, sample_id, ("quality", QUALITY, True, "ok"))
    return batch_id, {"fixed": fixed, "failing": failing, "stale": stale, "disagree": disagree, "fine": fine}


def test_bulk_reject_by_reason_leaves_samples_the_current_version_passes(engine):
    batch_id, ids = versioned_batch(engine)
    assert ("quality", "too short", 1) in rejectable_reasons(engine, batch_id)
    assert preview_reject_failures(engine, batch_id, "quality", "too short") == 1
    result = bulk_reject_failures(engine, as_user("ada"), batch_id, "quality", "too short")
    assert result.count == 1
    assert get_sample(engine, ids["failing"]).decision == "reject"
    assert get_sample(engine, ids["fixed"]).decision is None


def test_bulk_accept_follows_the_outcome_of_the_current_versions(engine):
    """Accept-passed reads the stored outcome, which verification computes from current
    verdicts: an old failing verdict does not hold back a sample the current version
    passes, and an old passing one does not let through a sample it fails."""
    batch_id, ids = versioned_batch(engine, passing=8)
    pool = draw_spot_check(engine, ADMIN, batch_id, 3, seed=1)
    with session_scope(engine, write=False) as session:
        drawn = set(session.scalars(pool_samples(batch_id)))
    assert pool.size == 3 and not drawn & {ids["stale"], ids["fixed"]}, (
        "precondition: the pool is fine samples"
    )
    for _ in range(3):
        record_decision(engine, as_user("ada"), next_sample(engine, as_user("ada"), Queue("spot-check", batch_id)), "accept")
    result = bulk_accept_passed(engine, as_user("bob"), batch_id, max_error=0.5, confidence=0.8)
    assert result.count == 2 + 8 - 3
    assert get_sample(engine, ids["fixed"]).decision == "accept"
    assert get_sample(engine, ids["failing"]).decision is None
    assert get_sample(engine, ids["disagree"]).decision is None


@pytest.mark.parametrize(
    ("kind", "verifier", "expected"),
    [
        ("disagreement", None, ["disagree"]),
        ("failures", "quality", ["failing"]),
        ("failures", None, ["failing", "disagree"]),
    ],
)
def test_queues_serve_what_the_current_versions_say(engine, kind, verifier, expected):
    batch_id, ids = versioned_batch(engine)
    queue = Queue(kind, batch_id, verifier=verifier)
    served = []
    while (sample_id := next_sample(engine, as_user("ada"), queue)) is not None:
        served.append(sample_id)
        record_decision(engine, as_user("ada"), sample_id, "skip")
    assert served == [ids[name] for name in expected]


def test_an_old_null_verdict_does_not_make_a_sample_uncertain(engine):
    batch_id, (sample_id,) = add_batch(engine, "versions", [{"prompt": "p", "passed": True}])
    add_verdicts(engine, sample_id, ("quality", OLD, None, "error"), ("quality", QUALITY, True, "ok"))
    assert next_sample(engine, as_user("ada"), Queue("uncertain", batch_id)) is None


def test_sample_detail_and_failure_reasons_show_current_verdicts(engine):
    batch_id, ids = versioned_batch(engine)
    detail = get_sample(engine, ids["fixed"])
    assert [(v["verifier"], v["version"], v["passed"]) for v in detail.verdicts] == [
        ("quality", QUALITY, True)
    ]
    assert failure_reasons(engine, [batch_id]) == [
        ("math_answer", "wrong answer", 1),
        ("quality", "too short", 1),
    ]


def test_export_rows_carry_current_verdicts(engine):
    _, ids = versioned_batch(engine)
    (record,) = iter_records(engine, [ids["fixed"]])
    assert record.verdicts == [("quality", QUALITY, True)]
    assert [(v["version"], v["passed"]) for v in record.provenance["verdicts"]] == [(QUALITY, True)]


def test_verifier_scores_count_current_versions(engine):
    batch_id, ids = versioned_batch(engine)
    for name in ("fixed", "failing"):
        record_decision(engine, as_user("ada"), ids[name], "reject")
    names = {score.verifier: score for score in verifier_scores(engine, batch_id)}
    assert f"quality v{OLD}" not in names
    assert (names[f"quality v{QUALITY}"].fp, names[f"quality v{QUALITY}"].tn) == (1, 1)


def test_an_unregistered_verifier_counts_its_newest_verdict_on_each_sample(engine):
    batch_id, (first, second) = add_batch(engine, "retired", [{"prompt": "a"}, {"prompt": "b"}])
    add_verdicts(engine, first, ("retired", "1", False, "bad"), ("retired", "2", True, "good"))
    add_verdicts(engine, second, ("retired", "1", False, "bad"))
    assert failure_reasons(engine, [batch_id]) == [("retired", "bad", 1)]
    assert [(v["version"], v["passed"]) for v in get_sample(engine, first).verdicts] == [("2", True)]


def test_current_only_keeps_order_and_each_samples_newest_unregistered_verdict():
    rows = [
        (1, "quality", OLD),
        (1, "retired", "1"),
        (1, "quality", QUALITY),
        (2, "retired", "1"),
        (1, "retired", "2"),
    ]
    kept = current_only(rows, sample=itemgetter(0), verifier=itemgetter(1), version=itemgetter(2))
    assert kept == [(1, "retired", "2"), (1, "quality", QUALITY), (2, "retired", "1")]


def test_one_failure_reasons_rule_grouped_for_reports_exact_for_bulk(engine):
    batch_id, ids = add_batch(engine, "reasons", [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}])
    for sample_id, words in zip(ids, (812, 900, 640), strict=True):
        add_verdicts(
            engine,
            sample_id,
            ("quality", OLD, True, "ok"),
            ("quality", QUALITY, False, f"too long ({words} words)"),
        )
    record_decision(engine, as_user("ada"), ids[0], "reject")
    assert failure_reasons(engine, [batch_id]) == [("quality", "too long (# words)", 3)]
    assert failure_reasons(engine, [batch_id], decisions=["undecided"]) == [
        ("quality", "too long (# words)", 2)
    ]
    assert rejectable_reasons(engine, batch_id) == [
        ("quality", "too long (640 words)", 1),
        ("quality", "too long (900 words)", 1),
    ]
