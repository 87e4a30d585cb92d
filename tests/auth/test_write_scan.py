"""No module of `curation` writes to the store outside a declared write function.

A function "writes" when it opens a write transaction (`session_scope(engine)` without
`write=False`; every store write goes through one), or calls an undeclared writer of its
own module. A public writer must be declared with `@writes` (so it is in WRITE_FUNCTIONS
and the role test covers it), or be called only from declared ones, or be listed below
with the reason it needs no check of its own."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from curation.auth import WRITE_FUNCTIONS
from curation.config import PROJECT_ROOT
from tests.auth.test_roles import _import_every_module

_import_every_module()

#: Writers that take no acting user, each with the reason.
NOT_USER_ACTIONS = {
    "curation.auth.accounts.add_user": "checks itself: the first user needs no actor, later ones an admin",
    "curation.auth.accounts.set_password": "checks itself: anyone may set their own password, admins anyone's",
    "curation.jobs.runner.run_job": "the worker's body: runs a job whose submit_job was checked",
    "curation.jobs.runner.spawn_worker": "records the worker of a job start_job just submitted (checked)",
    "curation.jobs.liveness.reap_dead_jobs": "housekeeping every reader runs: marks jobs whose process died",
    "curation.jobs.registry.JobContext.progress": "a running job reports progress (checked at submit)",
    "curation.generation.persist.set_batch_state": "the generation job's body (checked at submit)",
    "curation.generation.persist.create_request_rows": "the generation job's body (checked at submit)",
    "curation.verification.runner.write_verdicts": "the verify job's body (checked at submit)",
    "curation.verification.runner.refresh_outcomes": "the verify job's body (checked at submit)",
    "curation.io.importer.discard_partial_import": "a job kind's cleanup after a failed import (runner-driven)",
    "curation.diversity.service.embed_selection": (
        "analysis job body: reached through start_diversity_job (checked), CLI commands that require "
        "ANALYSE first, and ensure_demo_workspace (checked)"
    ),
    "curation.diversity.service.minhash_signatures_for": "dedup job body (as embed_selection)",
    "curation.diversity.service.compute_diversity": (
        "diversity job body (as embed_selection); with save=False and embed_missing=False, as the "
        "Diversity page calls it, it writes nothing"
    ),
    "curation.diversity.service.vectors_for": "embeds only with embed_missing=True: analysis job bodies",
    "curation.diversity.service.run_dedup": "the dedup job's body, and ensure_demo_workspace's (both checked)",
    "curation.diversity.service.map_points": (
        "writes only with embed_missing=True; the Diversity page keeps the default False"
    ),
    "curation.diversity.service.collapse_for": (
        "writes only with compute_missing=True: the `collapse` command requires ANALYSE first; the "
        "Diversity page passes False"
    ),
    "curation.generation.run.run_generation": "the generation job's body, and the demo's (both checked)",
    "curation.generation.run.GenerationRun.execute": "the generation job's body (checked at submit)",
    "curation.verification.runner.run_verification": "the verify job's body, and the demo's (both checked)",
    "curation.jobs.liveness.refuse_if_busy": "reaps dead jobs first (housekeeping, as reap_dead_jobs)",
    "curation.testing.review_batches.insert_review_batch": "test and benchmark data builder, not app code",
}


def _name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _opens_write(call: ast.Call) -> bool:
    if _name(call) != "session_scope":
        return False
    write = [k.value for k in call.keywords if k.arg == "write"]
    return not (write and isinstance(write[0], ast.Constant) and write[0].value is False)


def _units(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level functions and methods by qualified name (nested functions belong to them)."""
    units: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            units[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    units[f"{node.name}.{item.name}"] = item
    return units


def _modules() -> dict[str, ast.Module]:
    root = PROJECT_ROOT / "curation"
    return {
        ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts): ast.parse(path.read_text())
        for path in sorted(root.rglob("*.py"))
        if "migrations" not in path.parts
    }


def scan() -> list[str]:
    """The public writers that are neither declared, nor called only from declared ones,
    nor listed with a reason."""
    modules = _modules()
    registered = set(WRITE_FUNCTIONS)
    callers: dict[str, set[str]] = defaultdict(set)  # bare name -> qualified callers, app-wide
    writers: set[str] = set()
    for module, tree in modules.items():
        units = _units(tree)
        calls = {q: {_name(c) for c in ast.walk(u) if isinstance(c, ast.Call)} for q, u in units.items()}
        for qualname, names in calls.items():
            for name in names:
                callers[name].add(f"{module}.{qualname}")
        local = {q for q, u in units.items() if any(isinstance(c, ast.Call) and _opens_write(c) for c in ast.walk(u))}
        grown = True
        while grown:  # a function calling an undeclared writer of its module writes too
            short = {q.rsplit(".", 1)[-1] for q in local if f"{module}.{q}" not in registered}
            new = {q for q, names in calls.items() if q not in local and names & short}
            local |= new
            grown = bool(new)
        writers |= {f"{module}.{q}" for q in local}
    for page in sorted((PROJECT_ROOT / "pages").glob("*.py")):
        for call in ast.walk(ast.parse(page.read_text())):
            if isinstance(call, ast.Call):
                callers[_name(call)].add(f"pages.{page.stem}")
    problems = []
    for writer in sorted(writers):
        short = writer.rsplit(".", 1)[-1]
        if short.startswith("_") or writer in registered or writer in NOT_USER_ACTIONS:
            continue
        outside = callers[short] - registered - {writer}
        if not callers[short] or outside:
            problems.append(f"{writer} (called from: {', '.join(sorted(outside)) or 'nowhere'})")
    return problems


def test_every_public_writer_is_declared_or_explained():
    problems = scan()
    assert not problems, (
        "these functions write to the store without taking the acting user; declare them with "
        "@writes(Action.X) or explain them in NOT_USER_ACTIONS:\n" + "\n".join(problems)
    )


def test_the_explanations_name_real_writers():
    """A stale entry would hide nothing, but would mislead the next reader."""
    modules = _modules()
    for qualname in NOT_USER_ACTIONS:
        module, _, name = qualname.rpartition(".")
        if module not in modules:
            module, _, cls = module.rpartition(".")
            name = f"{cls}.{name}"
        assert name in _units(modules[module]), qualname


def test_the_scan_finds_an_undeclared_writer(tmp_path: Path):
    """The scan is not blind: an undeclared public function opening a write is reported."""
    tree = ast.parse(
        "def sneaky(engine):\n    with session_scope(engine) as session:\n        session.add(1)\n"
        "def reader(engine):\n    with session_scope(engine, write=False) as session:\n        pass\n"
    )
    units = _units(tree)
    opening = [q for q, u in units.items() if any(isinstance(c, ast.Call) and _opens_write(c) for c in ast.walk(u))]
    assert opening == ["sneaky"]
