"""The test server speaks the OpenAI protocol, and the teacher client maps each of its
faults to the right failure kind (through the real openai client and transport)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from curation.teachers.base import ChatRequest, TeacherConfig, TeacherError
from curation.teachers.openai_teacher import OpenAITeacher
from curation.testing.openai_server import OpenAICompatServer, default_answer

KEY = "sk-server-test-0123456789abcdef"


def ask(server: OpenAICompatServer, requests: list[ChatRequest], **config) -> list:
    """Send requests one after another; each result is a Completion or a TeacherError."""
    settings = {
        "kind": "openai",
        "base_url": server.base_url,
        "model": "test-model",
        "timeout": 1.0,
        **config,
    }

    async def go() -> list:
        teacher = OpenAITeacher(TeacherConfig(**settings), api_key=KEY)
        out = []
        try:
            for request in requests:
                try:
                    out.append(await teacher.complete(request))
                except TeacherError as exc:
                    out.append(exc)
        finally:
            await teacher.aclose()
        return out

    return asyncio.run(go())


def chat(text: str = "Calculate 2 + 3 * 4.", n: int = 1, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], n=n, max_tokens=max_tokens)


@pytest.fixture
def server():
    with OpenAICompatServer(api_key=KEY, hang_seconds=3.0, retry_after=0.25) as running:
        yield running


def test_chat_completions_with_n_usage_and_keep_alive(server):
    results = ask(server, [chat(n=3)] + [chat(f"Calculate {i} + 1.") for i in range(20)])
    first = results[0]
    assert [c.text for c in first.choices] == [
        default_answer([{"role": "user", "content": "Calculate 2 + 3 * 4."}], i) for i in range(3)
    ]
    assert "\\boxed{14}" in first.choices[0].text
    assert {c.finish_reason for c in first.choices} == {"stop"}
    assert first.prompt_tokens == 6 and first.completion_tokens > 0
    assert "\\boxed{20}" in results[-1].choices[0].text
    assert server.stats.chat_requests == server.stats.completions_ok == 21
    assert server.stats.connections_opened == 1


@pytest.mark.parametrize(
    ("fault", "kind", "retryable"),
    [
        ("rate_limit", "rate_limit", True),
        ("server_error", "server_error", True),
        ("hang", "timeout", True),
        ("malformed", "malformed", True),
        ("drop", "connection", True),
    ],
)
def test_each_fault_maps_to_its_failure_kind(server, fault, kind, retryable):
    server.configure(schedule={0: fault})
    error, after = ask(server, [chat(), chat()])
    assert isinstance(error, TeacherError) and error.kind == kind and error.retryable is retryable
    if fault == "rate_limit":
        assert error.retry_after == pytest.approx(0.25)
    assert after.choices[0].finish_reason == "stop"
    assert server.stats.outcomes[fault] == 1 and server.stats.completions_ok == 1


def test_truncation_and_the_length_limit(server):
    server.configure(schedule={0: "truncated"})
    truncated, limited = ask(
        server, [chat("Tell me a story about a lighthouse."), chat("Tell me a story.", max_tokens=3)]
    )
    assert truncated.choices[0].finish_reason == "length"
    assert limited.choices[0].finish_reason == "length" and len(limited.choices[0].text.split()) == 3


def test_wrong_key_and_unknown_model_are_fatal_and_scrubbed(server):
    wrong = "sk-wrong-key-fedcba9876543210"

    async def go() -> list[TeacherError]:
        errors = []
        for key, model in ((wrong, "test-model"), (KEY, "gpt-nope")):
            teacher = OpenAITeacher(
                TeacherConfig(kind="openai", base_url=server.base_url, model=model), api_key=key
            )
            try:
                await teacher.complete(chat())
            except TeacherError as exc:
                errors.append(exc)
            finally:
                await teacher.aclose()
        return errors

    auth, missing = asyncio.run(go())
    assert (auth.kind, auth.status, auth.retryable) == ("auth", 401, False)
    assert wrong not in str(auth) and "fedcba98" not in str(auth)
    assert (missing.kind, missing.status, missing.retryable) == ("not_found", 404, False)
    assert "gpt-nope" in str(missing)


def test_connection_refused_is_a_retryable_connection_error():
    with OpenAICompatServer() as running:
        url = running.base_url
    (error,) = asyncio.run(_one(url))
    assert error.kind == "connection" and error.retryable


async def _one(url: str) -> list:
    teacher = OpenAITeacher(TeacherConfig(kind="openai", base_url=url, model="m", timeout=2), api_key="k")
    try:
        await teacher.complete(chat())
    except TeacherError as exc:
        return [exc]
    finally:
        await teacher.aclose()
    return []


def test_server_runs_as_a_subprocess_and_prints_its_port():
    process = subprocess.Popen(
        [sys.executable, "-m", "curation.testing.openai_server", "--port", "0", "--model", "m1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("PORT ")
        port = int(line.split()[1])
        server = OpenAICompatServer.__new__(OpenAICompatServer)
        server.host, server.port = "127.0.0.1", port

        async def models() -> list[str]:
            teacher = OpenAITeacher(
                TeacherConfig(kind="openai", base_url=server.base_url, model="m1"), api_key="x"
            )
            try:
                return await teacher.list_models()
            finally:
                await teacher.aclose()

        assert asyncio.run(models()) == ["m1"]
    finally:
        process.kill()
        process.wait()
