"""Multi-turn conversations: K turns stored as messages (the last assistant turn is the
response), follow-ups written by the teacher as the user or read from a file, IFEval on
the last turn, chat export that `datasets` loads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from curation.data import SampleRecord
from curation.export import ExportConfig, run_export
from curation.generation.run import run_generation
from curation.store import session_scope
from curation.store.models import Sample
from curation.testing.openai_server import OpenAICompatServer
from curation.verification.instruction import InstructionVerifier
from tests.helpers import ADMIN

KEY_ENV = "ASSAY_TEST_TEACHER_KEY"


def conversation_params(**overrides: Any) -> dict[str, Any]:
    return {
        "batch": "talk",
        "family": "open",
        "source": {"kind": "open_prompts", "count": 4},
        "turns": 3,
        "teacher": {"kind": "simulated", "fault_rate": 0.0},
        **overrides,
    }


def samples(engine) -> list[Sample]:
    with session_scope(engine, write=False) as session:
        rows = list(session.scalars(select(Sample).order_by(Sample.item_index, Sample.candidate_index)))
        session.expunge_all()
        return rows


def assert_conversation(sample: Sample, turns: int) -> list[dict[str, str]]:
    messages = sample.meta["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * turns
    assert messages[1]["content"] == sample.prompt  # the first user message is the problem
    assert messages[-1]["content"] == sample.response  # the last assistant turn is the response
    return messages


def test_a_three_turn_batch_stores_each_turn_in_order(sqlite_engine):
    run_generation(sqlite_engine, conversation_params(n=2))
    rows = samples(sqlite_engine)
    assert len(rows) == 8
    for sample in rows:
        messages = assert_conversation(sample, 3)
        assert messages[3]["content"].startswith("(turn 2) ") and messages[5]["content"].startswith(
            "(turn 3) "
        )
        assert len({m["content"] for m in messages}) == len(messages)


def test_follow_ups_can_come_from_a_file(sqlite_engine):
    followups = ["Can you shorten that?", "Now say it as a list."]
    run_generation(sqlite_engine, conversation_params(followups=followups, turns=2))
    for sample in samples(sqlite_engine):
        messages = assert_conversation(sample, 2)
        assert messages[3]["content"] in followups


def test_against_the_http_server_each_turn_is_a_request(sqlite_engine, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "unused")
    with OpenAICompatServer() as server:
        teacher = {
            "kind": "openai",
            "base_url": server.base_url,
            "model": "test-model",
            "api_key_env": KEY_ENV,
        }
        run_generation(sqlite_engine, conversation_params(teacher=teacher))
        # per conversation: the first answer, then a written follow-up and an answer for turns 2 and 3
        assert server.stats.chat_requests == 4 * 5
    for sample in samples(sqlite_engine):
        assert_conversation(sample, 3)


def test_ifeval_constraints_are_checked_on_the_last_turn(sqlite_engine):
    run_generation(
        sqlite_engine,
        conversation_params(
            family="instruction",
            source={"kind": "ifeval", "count": 12},
            teacher={"kind": "simulated", "fault_rate": 0.5},
        ),
    )
    verifier = InstructionVerifier()
    outcomes = set()
    for sample in samples(sqlite_engine):
        assert_conversation(sample, 3)
        verdict = verifier.verify(
            SampleRecord(
                family="instruction",
                prompt=sample.prompt,
                response=sample.response,
                reference=sample.reference,
                metadata=sample.meta,
            )
        )
        # the simulated fault recorded is the last turn's: it violates a constraint there
        violated = str(sample.meta.get("simulated_fault") or "").startswith("violated_constraint")
        if verdict.passed is not None:
            assert verdict.passed is not violated
            outcomes.add(verdict.passed)
    assert outcomes == {True, False}


def test_chat_export_writes_the_conversation_and_datasets_loads_it(engine, tmp_path):
    from datasets import load_dataset  # heavy: only the tests that load an export back

    run_generation(engine, conversation_params())
    with session_scope(engine) as session:
        for sample in session.scalars(select(Sample)):
            sample.decision = "accept"
    out = tmp_path / "chat.jsonl"
    run_export(engine, ADMIN, ExportConfig(out=str(out), format="chat", reference_sets=[], eval_sets=[]))
    dataset = load_dataset("json", data_files=str(out), split="train")
    assert dataset.num_rows == 4
    stored = {s.id: s.meta["messages"] for s in samples(engine)}
    for row in dataset:
        assert row["messages"] == stored[row["provenance"]["sample_id"]]
    assert json.loads(out.read_text().splitlines()[0])["messages"][-1]["role"] == "assistant"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"family": "math", "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 2}}},
            "open and instruction",
        ),
        ({"turns": 0}, "between 1 and 16"),
        ({"followups": ["", "  "]}, "no messages"),
        (
            {"template": {"user": "{problem}", "schema": {"type": "object", "properties": {}}}},
            "do not combine",
        ),
        (
            {
                "batch_api": True,
                "teacher": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            },
            "need online requests",
        ),
    ],
)
def test_bad_conversation_settings_are_refused(sqlite_engine, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_generation(sqlite_engine, conversation_params(**overrides))
