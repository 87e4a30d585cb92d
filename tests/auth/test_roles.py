"""Every write function of the library refuses a role that does not allow its action,
before anything changes, and lets the role that does through (issue 13)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import curation
from curation.auth import ALLOWED, WRITE_FUNCTIONS, Action, Actor, PermissionDenied, Role, add_user
from curation.export.config import ExportConfig
from curation.jobs import submit_job
from curation.review.decisions import record_decision
from curation.review.queues import draw_spot_check
from curation.store import session_scope
from curation.store.models import Base
from tests.helpers import ADMIN, add_batch, sample_records, write_jsonl


def _import_every_module() -> None:
    """`@writes` registers a function when its module is imported: import them all."""
    for module in pkgutil.walk_packages(curation.__path__, "curation."):
        if ".migrations." not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)


_import_every_module()

ROLES = {role: Actor(f"a {role.value}", role) for role in Role}


def row_counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine, write=False) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def build_world(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    """A store with a verified batch, a decision by each role's user, a queued job and a
    user to manage."""
    rows = [
        {"prompt": f"p{i}", "response": f"r{i}", "passed": i % 3 != 0, "verdicts": [("checker", "1", i % 3 != 0)]}
        for i in range(12)
    ]
    batch_id, ids = add_batch(engine, "b", rows)
    for actor in ROLES.values():
        if actor.can(Action.DECIDE):
            record_decision(engine, actor, ids[1], "accept")
    add_user(engine, None, "root", Role.ADMIN, password="root-password")
    add_user(engine, ADMIN, "someone", Role.REVIEWER, password="someone-password")
    job_id = submit_job(engine, ADMIN, "import", {"path": "nowhere.jsonl", "batch": "queued"})
    return {
        "batch_id": batch_id,
        "ids": ids,
        "job_id": job_id,
        "file": write_jsonl(tmp_path / "new.jsonl", sample_records(3)),
        "out": str(tmp_path / "export"),
    }


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    return build_world(engine, tmp_path)


@pytest.fixture
def sqlite_world(sqlite_engine: Engine, tmp_path: Path) -> dict[str, Any]:
    """The matrix below runs on SQLite only: a refusal comes before any store access, and
    the allowed calls are covered on both backends by each feature's own tests."""
    return build_world(sqlite_engine, tmp_path)


#: Minimal real arguments after (engine, actor), by function; a function not listed here
#: is called with (engine, actor) only, which still proves the refusal comes first.
CALLS: dict[str, Callable[[dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "curation.auth.accounts.set_role": lambda w: (("someone", "viewer"), {}),
    "curation.auth.accounts.set_disabled": lambda w: (("someone", True), {}),
    "curation.jobs.runner.submit_job": lambda w: (("import", {"path": str(w["file"]), "batch": "new"}), {}),
    "curation.jobs.runner.start_job": lambda w: (("no such kind", {}), {}),
    "curation.jobs.runner.cancel_job": lambda w: ((w["job_id"],), {}),
    "curation.jobs.runner.resume_job": lambda w: ((w["job_id"],), {}),
    "curation.diversity.service.override_mark": lambda w: ((10**9,), {}),
    "curation.diversity.service.start_diversity_job": lambda w: (("no such kind", {}), {}),
    "curation.io.importer.import_file": lambda w: ((w["file"], "imported"), {}),
    "curation.demo.workspace.ensure_demo_workspace": lambda w: ((), {}),
    "curation.review.decisions.record_decision": lambda w: ((w["ids"][2], "reject"), {"note": "role test"}),
    "curation.review.decisions.undo_last": lambda w: ((), {}),
    "curation.review.decisions.undo_last_decision": lambda w: ((), {}),
    "curation.review.queues.draw_spot_check": lambda w: ((w["batch_id"], 3), {}),
    "curation.review.queues.claim_spot_check": lambda w: ((w["batch_id"],), {}),
    "curation.review.queues.assign_round_robin": lambda w: ((w["batch_id"], ["ada"], 2), {}),
    "curation.export.run.run_export": lambda w: ((ExportConfig(out=w["out"], batches=["b"]),), {}),
    "curation.generation.launch.start_generation": lambda w: (({},), {}),
    "curation.generation.launch.resume_generation": lambda w: ((10**9,), {}),
    "curation.review.bulk.resume_bulk": lambda w: ((10**9,), {}),
    "curation.review.bulk.bulk_accept_passed": lambda w: ((w["batch_id"],), {}),
    "curation.review.bulk.bulk_reject_failures": lambda w: ((w["batch_id"], "checker", "none"), {}),
    "curation.review.bulk.undo_bulk": lambda w: ((10**9,), {}),
    "curation.verification.jobs.start_verification": lambda w: ((["no such batch"],), {}),
}


def test_the_registry_holds_the_write_functions_named_by_the_issue():
    expected = {
        "curation.review.decisions.record_decision",
        "curation.review.decisions.undo_last",
        "curation.review.bulk.bulk_accept_passed",
        "curation.review.bulk.bulk_reject_failures",
        "curation.review.bulk.undo_bulk",
        "curation.review.bulk.resume_bulk",
        "curation.review.queues.draw_spot_check",
        "curation.review.queues.claim_spot_check",
        "curation.review.queues.assign_round_robin",
        "curation.generation.launch.start_generation",
        "curation.io.importer.import_file",
        "curation.verification.jobs.start_verification",
        "curation.diversity.service.start_diversity_job",
        "curation.export.run.run_export",
        "curation.jobs.runner.cancel_job",
        "curation.jobs.runner.resume_job",
        "curation.auth.accounts.set_role",
    }
    assert expected <= set(WRITE_FUNCTIONS)


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
@pytest.mark.parametrize("name", sorted(WRITE_FUNCTIONS))
def test_each_write_function_enforces_each_role(sqlite_engine, sqlite_world, name, role):
    engine, world = sqlite_engine, sqlite_world
    function, action = WRITE_FUNCTIONS[name]
    args, kwargs = CALLS.get(name, lambda w: ((), {}))(world)
    actor = ROLES[role]
    before = row_counts(engine)
    if action not in ALLOWED[role]:
        with pytest.raises(PermissionDenied, match=f"may not {action.value}"):
            function(engine, actor, *args, **kwargs)
        assert row_counts(engine) == before
        return
    try:
        function(engine, actor, *args, **kwargs)
    except PermissionDenied as exc:
        pytest.fail(f"{name} refused {role.value}, whose role allows {action.value}: {exc}")
    except Exception:  # noqa: BLE001 - refused later for its arguments, not for the role
        pass


def test_a_refused_caller_gets_a_clear_message(engine, world):
    with pytest.raises(PermissionDenied) as refused:
        draw_spot_check(engine, ROLES[Role.VIEWER], world["batch_id"], 3)
    assert str(refused.value) == "viewer 'a viewer' may not decide samples: that needs the admin or reviewer role"


def test_a_reviewer_grows_the_spot_check_pool_but_does_not_configure_it(engine, world):
    reviewer = ROLES[Role.REVIEWER]
    assert draw_spot_check(engine, reviewer, world["batch_id"], 2).size == 2
    before = row_counts(engine)
    for settings in ({"seed": 9}, {"overlap": 2}):
        with pytest.raises(PermissionDenied, match="change a batch's review settings"):
            draw_spot_check(engine, reviewer, world["batch_id"], 4, **settings)
    assert row_counts(engine) == before
    assert draw_spot_check(engine, ADMIN, world["batch_id"], 4, overlap=2).overlap == 2


def test_decisions_are_stored_under_the_acting_users_name(engine, world):
    from curation.review.decisions import live_labels, undo_last

    reviewer = ROLES[Role.REVIEWER]
    record_decision(engine, reviewer, world["ids"][4], "reject")
    assert live_labels(engine, world["batch_id"])[world["ids"][4]] == {"a reviewer": "reject"}
    undo_last(engine, ADMIN)  # an admin's undo does not reach the reviewer's decision
    assert live_labels(engine, world["batch_id"])[world["ids"][4]] == {"a reviewer": "reject"}
    assert undo_last(engine, reviewer) is not None
    assert world["ids"][4] not in live_labels(engine, world["batch_id"])


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER])
def test_a_job_kind_needs_its_own_action(engine, world, role):
    """`submit_job` checks the kind's action, not only the right to manage jobs."""
    before = row_counts(engine)
    with pytest.raises(PermissionDenied):
        submit_job(engine, ROLES[role], "import", {"path": str(world["file"]), "batch": "x"})
    assert row_counts(engine) == before


def test_a_non_actor_is_refused(engine, world):
    with pytest.raises(TypeError, match="acting user"):
        record_decision(engine, "a reviewer", world["ids"][2], "accept")


def test_a_viewer_reads_the_spot_check_queue_without_claiming(engine, world):
    from curation.review.queues import Queue, next_sample

    draw_spot_check(engine, ADMIN, world["batch_id"], 3)
    queue = Queue("spot-check", world["batch_id"])
    before = row_counts(engine)
    shown = next_sample(engine, ROLES[Role.VIEWER], queue)
    assert shown is not None
    assert row_counts(engine) == before
    assert next_sample(engine, ROLES[Role.REVIEWER], queue) == shown  # the reviewer claims it
    assert row_counts(engine)["assignments"] == before["assignments"] + 1
