"""Builders shared by the tests: files, records, batches in a store, the CLI in a subprocess.

(Fixtures live in `conftest.py`; plain functions live here and are imported.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from curation.auth import Actor, Role
from curation.config import PROJECT_ROOT
from curation.data import content_hash
from curation.store import session_scope
from curation.store.models import Batch, Decision, Sample, Verdict

#: The acting user of tests that are not about roles.
ADMIN = Actor("admin", Role.ADMIN)


def as_user(name: str, role: Role = Role.ADMIN) -> Actor:
    """An acting user named `name` (the name decisions are stored under)."""
    return Actor(name, role)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False))
            handle.write("\n")
    return path


def sample_records(n: int, family: str = "math") -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "family": family,
            "prompt": f"What is {i} + {i + 1}?",
            "response": f"{i} + {i + 1} = {2 * i + 1}. \\boxed{{{2 * i + 1}}}",
            "reference": {"answer": str(2 * i + 1)},
            "metadata": {"n": i},
        }
        for i in range(n)
    ]


def cli(*args: str, db: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "curation", "--db", db, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )


EVAL_SENTENCE = (
    "a farmer has seventeen sheep and all but nine run away so how many sheep does the farmer still have left"
)


def add_batch(
    engine: Engine,
    name: str,
    rows: list[dict[str, Any]],
    *,
    origin: str = "synthetic",
    config: dict[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> tuple[int, list[int]]:
    """A batch with samples; a row's `decision` becomes a Decision event, `verdicts` Verdict rows
    ((verifier, version, passed) or (verifier, version, passed, score)); a row may set its
    `item_index` and `candidate_index` (default: its position, 0)."""
    if config is None and origin == "synthetic":
        config = {
            "teacher": "simulated",
            "model": "sim-1",
            "family": "math",
            "mode": "solve",
            "n": 1,
            "seed": 3,
            "template": {"system": "You are {persona}.", "user": "Solve: {problem}"},
            "teacher_config": {"temperature": 0.7, "max_tokens": 512, "api_key_env": "OPENAI_API_KEY"},
        }
    with session_scope(engine) as session:
        batch = Batch(
            name=name, origin=origin, source=f"test:{name}", generation_config=config or {}, stats=stats or {}
        )
        session.add(batch)
        session.flush()
        ids = []
        for index, row in enumerate(rows):
            family = row.get("family", "math")
            sample = Sample(
                batch_id=batch.id,
                item_index=row.get("item_index", index),
                candidate_index=row.get("candidate_index", 0),
                family=family,
                prompt=row["prompt"],
                response=row.get("response", ""),
                reference=row.get("reference", {}),
                meta=row.get("metadata", {}),
                content_hash=content_hash(family, row["prompt"], row.get("response", "")),
                passed=row.get("passed"),
                decision=row.get("decision"),
            )
            session.add(sample)
            session.flush()
            ids.append(sample.id)
            if row.get("decision"):
                session.add(
                    Decision(sample_id=sample.id, reviewer="ada", action=row["decision"], reason_tags=["ok"])
                )
            for verifier, version, passed, *score in row.get("verdicts", []):
                session.add(
                    Verdict(
                        sample_id=sample.id,
                        verifier=verifier,
                        version=version,
                        passed=passed,
                        score=score[0] if score else 1.0 if passed else 0.0,
                    )
                )
        return batch.id, ids


def synthetic_rows(
    n: int, family: str = "math", tag: str = "s", decision: str | None = "accept"
) -> list[dict[str, Any]]:
    return [
        {
            "family": family,
            "prompt": f"[{tag}] Question {i} about {family}: what is {i} times {i + 3}?",
            "response": f"{i} times {i + 3} is {i * (i + 3)}.",
            "decision": decision,
            "passed": i % 3 != 0,
            "verdicts": [("math", "1.2", i % 3 != 0), ("heuristics", "0.4", True)],
            "metadata": {"i": i},
            "reference": {"answer": str(i * (i + 3))},
        }
        for i in range(n)
    ]


def candidate_rows(
    problems: int, n: int, *, decision: str | None = "accept", judge_version: str = "2"
) -> list[dict[str, Any]]:
    """`n` candidates per problem (best-of-n): candidate c of problem p passes when (p + c) is
    odd, and its judge score is (c + 1) / n, so passing candidates rank by index."""
    rows = []
    for p in range(problems):
        for c in range(n):
            passed = (p + c) % 2 == 1
            rows.append(
                {
                    "family": "math",
                    "item_index": p,
                    "candidate_index": c,
                    "prompt": f"Problem {p}: what is {p} + {p}?",
                    "response": f"Candidate {c}: {p} + {p} = {2 * p if passed else 2 * p + 1}.",
                    "decision": decision,
                    "passed": passed,
                    "verdicts": [("math", "1.2", passed), ("judge", judge_version, passed, (c + 1) / n)],
                    "reference": {"answer": str(2 * p)},
                }
            )
    return rows


def real_rows(n: int, family: str = "math", tag: str = "r") -> list[dict[str, Any]]:
    return [
        {
            "family": family,
            "prompt": f"[{tag}] Human question {i} on {family}?",
            "response": f"Human answer {i}.",
        }
        for i in range(n)
    ]


def signed_in(actor: Actor) -> dict[str, Any]:
    """Session state of a browser session signed in as `actor` just now (the keys
    `pages.common` keeps: the acting user and when the session began)."""
    return {"actor": actor, "signed_in_at": time.time()}


def run_app_page(page: str, *, timeout: float = 90, **state: Any) -> Any:
    """The app under `AppTest`, switched to `page` after one run, with `state` in its
    session (an `actor` given there is signed in just now); asserts the page raised nothing."""
    from streamlit.testing.v1 import AppTest  # loaded by the page tests only

    if "actor" in state:
        state = {**state, **signed_in(state["actor"])}
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=timeout)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app
