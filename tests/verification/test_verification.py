"""Verification of stored batches: chains and outcomes, the verify job (worker
processes, kill and resume), versions and flips, verify-file, the CLI and the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select

from curation.config import PROJECT_ROOT
from curation.data import SampleRecord
from curation.io.importer import import_file
from curation.jobs import get_job, resume_job, start_job, wait_for_job
from curation.review.decisions import record_decision
from curation.sandbox import resolve_mode
from curation.store.db import session_scope
from curation.store.models import Job, Sample, Verdict
from curation.store.queries import batch_id_by_name
from curation.verification import VERIFIERS
from curation.verification.base import Verdict as VerdictResult
from curation.verification.base import Verifier
from curation.verification.chains import default_chain, overall_outcome
from curation.verification.jobs import start_verification
from curation.verification.report import (
    VerdictFilter,
    failure_reasons,
    verdict_flips,
    verdict_table,
    verifier_summary,
    verifier_versions,
)
from curation.verification.runner import refresh_outcomes, run_verification
from curation.verification.verify_file import verify_file
from tests.helpers import ADMIN, as_user, sample_records, write_jsonl

SANDBOX = resolve_mode()[0] is not None
ADD_PROMPT = 'def add(a, b):\n    """Return a + b."""\n'


def mixed_records() -> list[dict[str, Any]]:
    """One record per outcome the default chains can reach; `expect` is the overall outcome."""
    records = [
        {
            "id": "m_ok",
            "family": "math",
            "prompt": "What is 17 + 25?",
            "response": "17 + 25 = 42, so the final answer is \\boxed{42}.",
            "reference": {"answer": "42"},
            "expect": True,
        },
        {
            "id": "m_wrong",
            "family": "math",
            "prompt": "What is 17 + 26?",
            "response": "17 + 26 = 42, so the final answer is \\boxed{42}.",
            "reference": {"answer": "43"},
            "expect": False,
        },
        {
            "id": "m_noref",
            "family": "math",
            "prompt": "What is 2 + 2 in base 10?",
            "response": "Adding two and two gives \\boxed{4} in base ten.",
            "expect": None,
        },
        {
            "id": "i_ok",
            "family": "instruction",
            "prompt": "Describe the sea without commas.",
            "response": "The sea is wide and blue and calm at dawn.",
            "reference": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
            "expect": True,
        },
        {
            "id": "i_fail",
            "family": "instruction",
            "prompt": "Describe the sea without commas.",
            "response": "The sea is wide, blue, and calm at dawn.",
            "reference": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
            "expect": False,
        },
        {
            "id": "o_ok",
            "family": "open",
            "prompt": "How do I keep basil alive?",
            "response": "Give it sun for six hours a day and water when the top of the soil is dry.",
            "expect": True,
        },
        {
            "id": "o_refusal",
            "family": "open",
            "prompt": "How do I keep basil alive?",
            "response": "I'm sorry, but I can't help with that request.",
            "expect": False,
        },
    ]
    if SANDBOX:
        records += [
            {
                "id": "c_ok",
                "family": "code",
                "prompt": ADD_PROMPT,
                "response": "```python\ndef add(a, b):\n    return a + b\n```",
                "reference": {"tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0"},
                "expect": True,
            },
            {
                "id": "c_fail",
                "family": "code",
                "prompt": ADD_PROMPT,
                "response": "```python\ndef add(a, b):\n    return a - b\n```",
                "reference": {"tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0"},
                "expect": False,
            },
        ]
    return records


def import_records(engine, tmp_path: Path, records: list[dict[str, Any]], batch: str) -> int:
    clean = [{k: v for k, v in r.items() if k != "expect"} for r in records]
    import_file(engine, ADMIN, write_jsonl(tmp_path / f"{batch}.jsonl", clean), batch)
    return batch_id_by_name(engine, batch)


def outcomes(engine) -> dict[str, bool | None]:
    with session_scope(engine, write=False) as session:
        return dict(session.execute(select(Sample.external_id, Sample.passed)).all())


def verdict_keys(engine) -> Counter:
    with session_scope(engine, write=False) as session:
        return Counter(session.execute(select(Verdict.sample_id, Verdict.verifier, Verdict.version)).all())


def count(engine, model) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# -- chains and the outcome rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    "family, verdicts, expected",
    [
        ("math", {}, None),
        ("math", {"quality": True, "math_answer": True}, True),
        ("math", {"quality": False, "math_answer": True}, False),
        ("math", {"quality": True, "math_answer": False}, False),
        ("math", {"quality": True, "math_answer": None}, None),
        ("math", {"quality": False, "math_answer": None}, False),
        ("math", {"quality": True}, None),
        ("code", {"quality": None, "code_tests": True}, True),
        ("instruction", {"quality": True, "ifeval": None}, None),
        ("open", {"quality": True}, True),
        ("open", {"quality": True, "judge": True}, True),
        ("open", {"quality": True, "judge": None}, None),
        ("open", {"quality": True, "judge": False}, False),
        ("open", {"quality": None}, None),
    ],
)
def test_overall_outcome(family, verdicts, expected):
    assert overall_outcome(family, verdicts) is expected


def test_default_chains():
    assert default_chain("math") == ("quality", "math_answer")
    assert default_chain("code") == ("quality", "code_tests")
    assert default_chain("instruction") == ("quality", "ifeval")
    assert default_chain("open") == ("quality",)
    assert default_chain("open", judge_configured=True) == ("quality", "judge")


def test_registry_holds_every_verifier():
    assert {"quality", "math_answer", "code_tests", "ifeval", "judge"} <= set(VERIFIERS.names())


# -- the job -------------------------------------------------------------------------------------


def test_verify_job_writes_verdicts_and_outcomes(engine, tmp_path):
    records = mixed_records()
    batch_id = import_records(engine, tmp_path, records, "mixed")
    job_id = start_verification(engine, ADMIN, ["mixed"], jobs=2)
    job = wait_for_job(engine, job_id, timeout=600)
    assert job.state == "succeeded", job.error
    assert job.title == "Verify mixed"
    expected = {r["id"]: r["expect"] for r in records}
    assert outcomes(engine) == expected
    tally = Counter(expected.values())
    assert job.result["outcomes"] == {"passed": tally[True], "failed": tally[False], "unknown": tally[None]}
    assert {k: job.counters[k] for k in ("passed", "failed", "unknown")} == job.result["outcomes"]
    assert job.result["samples"] == len(records)
    assert job.result["skipped_verifiers"].keys() == {"judge"}

    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.external_id, Sample.family, Verdict.verifier, Verdict.version).join(
                Verdict, Verdict.sample_id == Sample.id
            )
        ).all()
    chains: dict[str, set[str]] = {}
    for external_id, _family, name, version in rows:
        assert version == VERIFIERS.get(name).version
        chains.setdefault(external_id, set()).add(name)
    assert chains == {r["id"]: set(default_chain(r["family"])) for r in records}

    stats = {(s.verifier, s.passed, s.failed, s.unknown) for s in verifier_summary(engine, [batch_id])}
    assert ("math_answer", 1, 1, 1) in stats
    assert ("ifeval", 1, 1, 0) in stats
    reasons = {(r.verifier, r.reason) for r in failure_reasons(engine, [batch_id])}
    assert ("math_answer", "wrong answer") in reasons
    assert ("quality", "failed: refusal") in reasons
    rows_, total = verdict_table(engine, VerdictFilter(batch_ids=[batch_id], failed_by="ifeval"))
    assert total == 1 and rows_[0].verdicts == {"quality": True, "ifeval": False}

    again = wait_for_job(engine, start_verification(engine, ADMIN, ["mixed"]), timeout=600)
    assert again.state == "succeeded", again.error
    assert again.result["samples"] == 0, "only what is missing is verified"
    assert max(verdict_keys(engine).values()) == 1


def test_reverify_replaces_verdicts_of_the_same_version(engine, tmp_path):
    import_records(engine, tmp_path, sample_records(40), "math")
    first = run_verification(engine, {"batches": ["math"], "jobs": 1})
    assert first["samples"] == 40
    with session_scope(engine, write=False) as session:
        before = session.scalar(select(func.max(Verdict.created_at)))
    again = run_verification(engine, {"batches": ["math"], "jobs": 1, "reverify": True})
    assert again["samples"] == 40
    assert count(engine, Verdict) == 80
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.min(Verdict.created_at))) >= before


KILL_N = 3000


def test_killed_job_is_reaped_and_resumed_without_duplicates(engine, tmp_path):
    import_records(engine, tmp_path, sample_records(KILL_N), "big")
    job_id = start_job(engine, ADMIN, "verify", {"batches": ["big"], "jobs": 2, "chunk_size": 64})
    deadline = time.monotonic() + 300
    while get_job(engine, job_id).progress_done < 128:
        assert time.monotonic() < deadline, "the job made no progress"
        assert get_job(engine, job_id).active, get_job(engine, job_id).error
        time.sleep(0.02)
    with session_scope(engine, write=False) as session:
        pid = session.get(Job, job_id).pid
    os.kill(pid, signal.SIGSTOP)
    done_before = count(engine, Verdict)
    assert 0 < done_before < 2 * KILL_N, "killed half way"
    os.kill(pid, signal.SIGKILL)
    job = wait_for_job(engine, job_id, timeout=120)
    assert job.state == "failed"
    assert "exited without finishing" in job.error
    assert count(engine, Verdict) == done_before, "committed verdicts are kept"
    assert done_before % 2 == 0, "a sample's verdicts are committed together"

    resumed = wait_for_job(engine, resume_job(engine, ADMIN, job_id), timeout=600)
    assert resumed.state == "succeeded", resumed.error
    assert resumed.resumed_from == job_id
    assert resumed.result["samples"] == KILL_N - done_before // 2
    keys = verdict_keys(engine)
    assert len(keys) == 2 * KILL_N and max(keys.values()) == 1
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count()).where(Sample.passed.is_(None))) == 0


# -- versions and flips --------------------------------------------------------------------------


class ToyVerifier(Verifier):
    """Version 1 passes responses under 24 characters; version 2 those without a digit 7."""

    name: ClassVar[str] = "toy"
    version: ClassVar[str] = "1"
    families: ClassVar[tuple[str, ...]] = ("math",)

    def verify(self, sample: SampleRecord) -> VerdictResult:
        if self.version == "1":
            return VerdictResult(len(sample.response) < 24, reason="v1")
        return VerdictResult("7" not in sample.response, reason="v2")


@pytest.fixture
def toy():
    VERIFIERS.register("toy")(ToyVerifier)
    try:
        yield ToyVerifier
    finally:
        VERIFIERS._items.pop("toy", None)
        ToyVerifier.version = "1"


def test_new_version_keeps_old_verdicts_and_lists_flips(engine, tmp_path, toy):
    batch_id = import_records(engine, tmp_path, sample_records(30), "toys")
    params = {"batches": ["toys"], "verifiers": ["toy"], "jobs": 1}
    assert run_verification(engine, params)["samples"] == 30
    v1 = {
        r.sample_id: r.verdicts["toy"] for r in verdict_table(engine, VerdictFilter(batch_ids=[batch_id]))[0]
    }
    with session_scope(engine, write=False) as session:
        ids = dict(session.execute(select(Sample.external_id, Sample.id)).all())
    record_decision(engine, as_user("ada"), ids["r3"], "accept")
    record_decision(engine, as_user("ada"), ids["r20"], "reject")

    toy.version = "2"
    assert run_verification(engine, params)["samples"] == 30, "a new version verifies everything again"
    assert count(engine, Verdict) == 60
    assert verifier_versions(engine, [batch_id]) == {"toy": [("1", 30), ("2", 30)]}

    v2 = {
        r.sample_id: r.verdicts["toy"] for r in verdict_table(engine, VerdictFilter(batch_ids=[batch_id]))[0]
    }
    expected = {sid for sid in v1 if v1[sid] != v2[sid]}
    flips = verdict_flips(engine, "toy", "1", "2", batch_ids=[batch_id])
    assert {f.sample_id for f in flips} == expected and expected
    by_id = {f.sample_id: f for f in flips}
    responses = dict(
        zip([f"r{i}" for i in range(30)], [r["response"] for r in sample_records(30)], strict=True)
    )
    assert "7" in responses["r3"] and len(responses["r3"]) < 24
    assert "7" not in responses["r20"] and len(responses["r20"]) >= 24
    assert by_id[ids["r3"]].change == "pass → fail"
    assert by_id[ids["r3"]].human_disagrees
    assert by_id[ids["r20"]].change == "fail → pass"
    assert by_id[ids["r20"]].human_disagrees
    assert not any(f.human_disagrees for f in flips if f.sample_id not in (ids["r3"], ids["r20"]))

    toy.version = "1"
    assert refresh_outcomes(engine, [batch_id]) > 0, "outcomes follow the current version"


# -- verify-file ---------------------------------------------------------------------------------


def test_verify_file_round_trip(tmp_path):
    records = mixed_records()
    clean = [{k: v for k, v in r.items() if k != "expect"} for r in records]
    src = write_jsonl(tmp_path / "in.jsonl", clean)
    result = verify_file(src, tmp_path / "out.jsonl", jobs=2)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert [r["passed"] for r in rows] == [r["expect"] for r in records]
    for row, record in zip(rows, records, strict=True):
        assert [v["verifier"] for v in row["verdicts"]] == list(default_chain(record["family"]))
        assert set(row["verdicts"][0]) == {"verifier", "version", "passed", "score", "reason"}
        assert {k: row[k] for k in ("family", "prompt", "response")} == {
            k: record[k] for k in ("family", "prompt", "response")
        }
    assert result["records"] == len(records)

    again = verify_file(tmp_path / "out.jsonl", tmp_path / "again.jsonl", jobs=1)
    assert again["records"] == len(records), "the output is valid input"


def test_verify_file_streams_thousands_of_lines_in_order(tmp_path):
    """The input is a pipe whose writer stops half way until output has appeared:
    a reader that needed the whole input first would never see the second half."""
    total, first_part = 3000, 2000
    records = sample_records(total)
    for record in records[::7]:
        record["reference"] = {"answer": "-1"}
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "out.jsonl"
    saw_output_early = threading.Event()

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as pipe:
            for record in records[:first_part]:
                pipe.write(json.dumps(record) + "\n")
            pipe.flush()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                parts = list(tmp_path.glob(".out.jsonl.*.part"))
                if parts and parts[0].stat().st_size > 0:
                    saw_output_early.set()
                    break
                time.sleep(0.05)
            for record in records[first_part:]:
                pipe.write(json.dumps(record) + "\n")

    writer = threading.Thread(target=feed)
    writer.start()
    result = verify_file(fifo, out, jobs=2, chunk_size=100)
    writer.join()
    assert saw_output_early.is_set()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(total)]
    assert [r["passed"] for r in rows] == [i % 7 != 0 for i in range(total)]
    assert result["failed"] == len(records[::7])
    assert not list(tmp_path.glob("*.part"))


def test_verify_file_leaves_nothing_on_a_bad_line(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl", [*sample_records(300), {"family": "math", "prompt": 3, "response": ""}]
    )
    with pytest.raises(ValueError, match="line 301, field 'prompt'"):
        verify_file(src, tmp_path / "out.jsonl", jobs=1, chunk_size=50)
    assert list(tmp_path.iterdir()) == [src]


# -- command line --------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "curation", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=600,
    )


def test_cli_verify_and_verify_file(make_store_url, tmp_path):
    url = make_store_url("sqlite")
    records = mixed_records()
    src = write_jsonl(tmp_path / "in.jsonl", [{k: v for k, v in r.items() if k != "expect"} for r in records])
    assert run_cli("--db", url, "import", str(src), "--batch", "cli").returncode == 0
    done = run_cli("--db", url, "verify", "--batch", "cli", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.split()}
    assert lines["ifeval"][:4] == ["v1", "1", "1", "0"]
    tally = Counter(r["expect"] for r in records)
    assert lines["overall"][:3] == [str(tally[True]), str(tally[False]), str(tally[None])]

    missing = run_cli("--db", url, "verify", "--batch", "nope")
    assert missing.returncode == 1 and "no batch named 'nope'" in missing.stderr

    out = tmp_path / "out.jsonl"
    done = run_cli("verify-file", str(src), "--out", str(out), "--verifier", "quality")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["verifier"] for r in rows for v in r["verdicts"]] == ["quality"] * len(records)
    assert [r["passed"] for r in rows] == [
        False if r["id"] == "o_refusal" else (True if r["family"] == "open" else None) for r in records
    ]


# -- the demo ------------------------------------------------------------------------------------

DEMO_SOURCES = {
    "math": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 24, "chain_sum": 12}},
    "code": {"kind": "humaneval", "limit": 20},
    "instruction": {"kind": "ifeval", "count": 40},
    "open": {"kind": "open_prompts", "count": 40},
}


def _last_number(text: str) -> str | None:
    import re

    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    return numbers[-1] if numbers else None


def test_demo_verdicts_match_the_injected_faults(sqlite_engine):
    """The simulated teacher at a high fault rate, one small batch per family, verified
    with the default chains: fault injected vs verdict failed. Kinds no verifier can see
    by design are asserted as exactly that (see each branch)."""
    from curation.generation.run import run_generation
    from curation.verification.demo import fault_confusion, verify_demo_batches
    from curation.verification.math import MathAnswerVerifier

    names = []
    for family, source in DEMO_SOURCES.items():
        if family == "code" and not SANDBOX:
            continue
        name = f"sim {family}"
        teacher = {"kind": "simulated", "fault_rate": 0.5, "seed": 11, "api_key_env": None}
        run_generation(
            sqlite_engine,
            {
                "batch": name,
                "family": family,
                "mode": "solve",
                "source": source,
                "teacher": teacher,
                "n": 1,
                "seed": 11,
            },
        )
        names.append(name)
    result = verify_demo_batches(sqlite_engine, batches=names, jobs=2)
    assert result["samples"] > 100

    confusion = {name: fault_confusion(sqlite_engine, [name]) for name in names}
    print(json.dumps(confusion, indent=1))
    anchored = MathAnswerVerifier().config.require_anchor
    with session_scope(sqlite_engine, write=False) as session:
        rows = session.execute(
            select(Sample.family, Sample.meta, Sample.passed, Sample.response, Sample.reference)
        ).all()
    kinds = Counter()
    for family, meta, passed, response, reference in rows:
        fault = (meta or {}).get("simulated_fault")
        kinds[(family, fault.split(":")[0] if fault else None)] += 1
        if fault is None:
            assert passed is True, f"clean {family} sample failed: {response[:200]!r}"
        elif fault == "missing_final_answer" and not anchored:
            # math_answer's default extraction falls back to the last number in the text:
            # without an explicit final answer the response passes exactly when its last
            # worked step already shows the reference answer (MathCheckConfig.require_anchor
            # = True catches every one).
            assert passed is (_last_number(response) == str(reference["answer"]))
        elif fault == "off_topic":
            # Without a judge nothing knows what the prompt was about: not detectable by design.
            assert passed is True
        else:
            assert passed is False, f"{family} fault {fault} not detected: {response[:300]!r}"
    expected_kinds = {
        ("math", "arithmetic_slip"),
        ("math", "wrong_final_answer"),
        ("math", "missing_final_answer"),
        ("instruction", "violated_constraint"),
        ("open", "refusal"),
        ("open", "off_topic"),
        ("open", "repetition"),
    }
    if SANDBOX:
        expected_kinds |= {("code", "wrong_return")}
    assert expected_kinds <= set(kinds), "the sample covers the fault kinds"
