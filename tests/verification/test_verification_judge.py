"""The LLM judge against the real local OpenAI-compatible HTTP server
(`curation.testing.openai_server`), whose `responder` plays the judge model."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from curation.data import SampleRecord
from curation.testing.openai_server import OpenAICompatServer
from curation.verification import VERIFIERS
from curation.verification.judge import (
    DEFAULT_RUBRIC,
    JudgeConfig,
    JudgeReplyError,
    JudgeVerifier,
    compare_pair,
    judge_config_from_env,
    parse_pair_reply,
    parse_rubric_reply,
    prescreen,
)

KEY_ENV = "ASSAY_TEST_JUDGE_KEY"
SECRET = "sk-judge-test-0123456789abcdef"
MODEL = "judge-model"
GOOD = "Plants turn light, water and carbon dioxide into sugar and oxygen; this is photosynthesis."
WEAK = "Plants are green and they grow in many different places around the world."


def _answer_of(messages: list[dict]) -> str:
    """The graded answer, between the markers of the rubric prompt."""
    text = messages[-1]["content"]
    match = re.search(r"<<<BEGIN-(\w+)>>> ANSWER\n(.*?)\n<<<END-\1>>>", text, re.DOTALL)
    return match.group(2) if match else ""


def rubric_json(verdicts: dict[str, str], score: int) -> str:
    criteria = {
        name: {"verdict": verdict, "reason": f"{name} is {verdict}"} for name, verdict in verdicts.items()
    }
    return json.dumps({"criteria": criteria, "score": score})


def fake_judge(messages: list[dict], index: int) -> str:
    """A judge model: likes answers that mention photosynthesis, replies in assorted valid shapes."""
    answer = _answer_of(messages)
    if "photosynthesis" in answer:
        return "```json\n" + rubric_json({c.name: "yes" for c in DEFAULT_RUBRIC}, 9) + "\n```"
    if "MALFORMED" in answer:
        return "The answer seems fine to me, I would give it a good grade."
    verdicts = {c.name: "yes" for c in DEFAULT_RUBRIC}
    verdicts["correct"] = "no"
    verdicts["complete"] = "no"
    return "<think>weak answer</think> Here is my grading: " + rubric_json(verdicts, 3)


def pair_judge(messages: list[dict], index: int) -> str:
    """Prefers the response that mentions photosynthesis, wherever it is shown."""
    text = messages[-1]["content"]
    first = text.split("RESPONSE 1", 1)[1].split("RESPONSE 2", 1)[0]
    second = text.split("RESPONSE 2", 1)[1]
    if ("photosynthesis" in first) == ("photosynthesis" in second):
        return json.dumps({"winner": "tie", "reason": "equal"})
    return json.dumps({"winner": "1" if "photosynthesis" in first else "2", "reason": "mentions the process"})


def first_always(messages: list[dict], index: int) -> str:
    """A judge with pure position bias."""
    return '{"winner": "1", "reason": "the first one"}'


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with OpenAICompatServer(api_key=SECRET, models=(MODEL,), responder=fake_judge) as running:
        yield running


@pytest.fixture
def config(server) -> JudgeConfig:
    return JudgeConfig(base_url=server.base_url, model=MODEL, api_key_env=KEY_ENV, timeout=10, max_attempts=3)


def sample(response: str, prompt: str = "Explain how plants make their food.") -> SampleRecord:
    return SampleRecord(family="open", prompt=prompt, response=response)


def test_judge_is_registered_and_needs_a_configuration(monkeypatch):
    monkeypatch.delenv("ASSAY_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("ASSAY_JUDGE_MODEL", raising=False)
    assert VERIFIERS.get("judge") is JudgeVerifier
    assert any("no judge endpoint configured" in p for p in JudgeVerifier().missing_dependencies())
    monkeypatch.setenv("ASSAY_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ASSAY_JUDGE_MODEL", "m")
    monkeypatch.setenv("ASSAY_JUDGE_API_KEY_ENV", KEY_ENV)
    assert judge_config_from_env() == JudgeConfig(
        base_url="http://127.0.0.1:9/v1", model="m", api_key_env=KEY_ENV
    )
    assert JudgeVerifier().missing_dependencies() == []


def test_a_key_is_never_accepted_as_configuration():
    with pytest.raises(ValueError, match="never stored"):
        JudgeConfig.from_dict({"base_url": "http://x/v1", "model": "m", "api_key": SECRET})
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        JudgeConfig(base_url="http://x/v1", model="m", api_key_env=SECRET)


def test_rubric_verdicts_from_the_server(server, config):
    verdicts = JudgeVerifier(config).verify_many([sample(GOOD), sample(WEAK)])
    good, weak = verdicts
    assert good.passed is True
    assert good.score == 0.9
    assert good.reason == "all 4 criteria met, score 9/10"
    assert all(c["passed"] for c in good.details["criteria"].values())
    assert good.details["judge"]["model"] == MODEL
    assert good.details["judge"]["endpoint"] == server.base_url
    assert "strict, impartial grader" in good.details["judge"]["system_prompt"]
    assert weak.passed is False
    assert weak.reason == "not met: correct, complete; score 3/10"
    assert weak.details["criteria"]["correct"] == {"passed": False, "reason": "correct is no"}
    assert server.stats.chat_requests == 2
    for verdict in verdicts:
        assert SECRET not in json.dumps(verdict.to_dict())


def test_malformed_reply_gives_unknown_with_the_reason(server, config):
    verdict = JudgeVerifier(config).verify(sample("MALFORMED answer that the judge cannot grade properly."))
    assert verdict.passed is None
    assert verdict.reason == "malformed judge reply: no JSON object with 'criteria' in the reply"
    assert "good grade" in verdict.details["reply_excerpt"]
    assert "transient" not in verdict.details


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("", "empty answer"),
        ("   \n ", "empty answer"),
        ("Yes.", "trivially short answer (4 characters, 1 words)"),
        ("ok ok", "trivially short answer (5 characters, 2 words)"),
        ("Explain how plants make their food.", "answer only repeats the prompt"),
    ],
)
def test_empty_or_trivial_answers_fail_without_a_request(server, config, answer, reason):
    verdict = JudgeVerifier(config).verify(sample(answer))
    assert (verdict.passed, verdict.reason) == (False, reason)
    assert server.stats.chat_requests == 0


def test_a_broken_http_answer_is_retried(server, config):
    server.configure(schedule={0: "malformed", 1: "server_error"})
    verdict = JudgeVerifier(config).verify(sample(GOOD))
    assert verdict.passed is True
    assert server.stats.chat_requests == 3


def test_a_wrong_key_fails_once_without_leaking_it(server, config, monkeypatch):
    wrong = "sk-wrong-key-abcdefghijklmnop"
    monkeypatch.setenv(KEY_ENV, wrong)
    one_at_a_time = dataclasses.replace(config, concurrency=1)
    verdicts = JudgeVerifier(one_at_a_time).verify_many(
        [sample(GOOD), sample(WEAK), sample(GOOD + " Really.")]
    )
    for verdict in verdicts:
        assert verdict.passed is None
        assert verdict.reason.startswith("judge request failed: auth (401)")
        assert verdict.details["transient"] is True
        assert wrong not in json.dumps(verdict.to_dict()) and SECRET not in verdict.reason
    assert server.stats.chat_requests == 1, "a rejected key stops further requests"


def test_pairwise_needs_both_orders_to_agree(server, config):
    server.configure(responder=pair_judge)
    result = compare_pair("Explain how plants make their food.", WEAK, GOOD, config)
    assert result.winner == "B"
    assert [o["order"] for o in result.orders] == ["AB", "BA"]
    assert [o["said"] for o in result.orders] == ["2", "1"]
    assert result.consistent
    assert server.stats.chat_requests == 2

    server.configure(responder=first_always)
    biased = compare_pair("Explain how plants make their food.", WEAK, GOOD, config)
    assert biased.winner == "tie"
    assert biased.reason == "orders disagree (A first: A, B first: B)"
    assert not biased.consistent
    assert server.stats.chat_requests == 4


def test_pairwise_rules_decide_without_a_request(server, config):
    assert compare_pair("Explain photosynthesis.", "", GOOD, config).winner == "B"
    assert compare_pair("Explain photosynthesis.", GOOD, "no", config).winner == "A"
    assert compare_pair("Explain photosynthesis.", "", "no", config).winner == "tie"
    assert server.stats.chat_requests == 0


VALID = {c.name: "yes" for c in DEFAULT_RUBRIC}


@pytest.mark.parametrize(
    "reply, score",
    [
        (rubric_json(VALID, 8), 8.0),
        ("```json\n" + rubric_json(VALID, 7) + "\n```", 7.0),
        ('<think>{"criteria": "draft"}</think>' + rubric_json(VALID, 10), 10.0),
        (json.dumps({"criteria": [{"name": n, "verdict": True} for n in VALID], "score": "6/10"}), 6.0),
        (json.dumps({"Criteria": {n.upper(): "Yes." for n in VALID}, "score": 9.5}), 9.5),
    ],
)
def test_rubric_replies_are_parsed_robustly(reply, score):
    criteria, parsed = parse_rubric_reply(reply, DEFAULT_RUBRIC)
    assert parsed == score
    assert all(c["passed"] for c in criteria.values())


@pytest.mark.parametrize(
    "reply, message",
    [
        ("", "no JSON object"),
        ("{not json", "no JSON object"),
        (json.dumps({"criteria": {"on_topic": "yes"}, "score": 8}), "no verdict for criterion 'correct'"),
        (json.dumps({"criteria": {n: "maybe" for n in VALID}, "score": 8}), "expected yes or no"),
        (json.dumps({"criteria": VALID, "score": 11}), "outside 1-10"),
        (json.dumps({"criteria": VALID}), "score is missing"),
        (json.dumps({"criteria": VALID, "score": "high"}), "not a number"),
    ],
)
def test_malformed_rubric_replies_are_rejected(reply, message):
    with pytest.raises(JudgeReplyError, match=message):
        parse_rubric_reply(reply, DEFAULT_RUBRIC)


@pytest.mark.parametrize(
    "reply, winner",
    [('{"winner": "1"}', "1"), ('x {"winner": 2, "reason": "r"}', "2"), ('{"winner": "Tie"}', "tie")],
)
def test_pair_replies(reply, winner):
    assert parse_pair_reply(reply) == winner


def test_prescreen_passes_real_answers():
    config = JudgeConfig(base_url="http://127.0.0.1:9/v1", model="m")
    assert prescreen("Explain photosynthesis.", GOOD, config) is None


# -- reasoning and cut-off replies never give a verdict (bug 2 of issue 10) ----------------------

DRAFT = '<think>First impression: {"criteria": ' + json.dumps(VALID) + ', "score": 9} but let me check'
TAIL = " Notes on each criterion follow." + " The answer was read with care." * 40


@pytest.mark.parametrize(
    "reply",
    [DRAFT, DRAFT + " again, the second paragraph is wrong", "Grading. " + DRAFT],
)
def test_a_draft_in_an_unclosed_think_block_is_not_a_verdict(reply):
    with pytest.raises(JudgeReplyError, match="no JSON object with 'criteria'"):
        parse_rubric_reply(reply, DEFAULT_RUBRIC)


def test_a_pair_draft_in_an_unclosed_think_block_is_not_a_winner():
    with pytest.raises(JudgeReplyError, match="no JSON object with 'winner'"):
        parse_pair_reply('<think>maybe {"winner": "1"} though the second one')


def test_a_judge_reply_stopping_inside_its_reasoning_gives_unknown(server, config):
    server.configure(responder=lambda messages, index: DRAFT)
    verdict = JudgeVerifier(config).verify(sample(GOOD))
    assert verdict.passed is None
    assert verdict.reason == "malformed judge reply: no JSON object with 'criteria' in the reply"


def test_a_judge_reply_cut_off_by_the_length_limit_gives_unknown(server, config):
    """The cut-off reply still holds a complete, passing rubric: it must not count."""
    server.configure(responder=lambda messages, index: rubric_json(VALID, 9) + TAIL)
    short = dataclasses.replace(config, max_tokens=100)
    verdict = JudgeVerifier(short).verify(sample(GOOD))
    assert verdict.passed is None
    assert verdict.score is None
    assert verdict.reason == "judge reply cut off by the length limit (max_tokens 100): no verdict"
    assert verdict.details["finish_reason"] == "length"
    assert '"criteria"' in verdict.details["reply_excerpt"]
    assert "transient" not in verdict.details
    assert JudgeVerifier(config).verify(sample(GOOD)).passed is True, "the same reply, not cut off"


def test_a_pair_reply_cut_off_by_the_length_limit_declares_no_winner(server, config):
    def prefers_photosynthesis(messages: list[dict], index: int) -> str:
        return pair_judge(messages, index) + TAIL

    server.configure(responder=prefers_photosynthesis)
    result = compare_pair(
        "Explain how plants make their food.", WEAK, GOOD, dataclasses.replace(config, max_tokens=60)
    )
    assert result.winner == "tie"
    assert [o["pick"] for o in result.orders] == [None, None]
    assert result.reason == "; ".join(
        ["judge reply cut off by the length limit (max_tokens 60): no verdict"] * 2
    )
    assert compare_pair("Explain how plants make their food.", WEAK, GOOD, config).winner == "B"


@pytest.mark.parametrize("structured", [False, True])
def test_the_rubric_can_be_asked_for_as_structured_output(server, config, structured):
    """A judge model that only answers in JSON when asked through response_format (the test
    server fills the rubric's schema): the rubric is readable only with structured output."""
    server.configure(responder=lambda messages, index: "I think the answer is decent overall.")
    verdict = JudgeVerifier(dataclasses.replace(config, structured_output=structured)).verify(sample(GOOD))
    if structured:
        assert set(verdict.details["criteria"]) == {c.name for c in DEFAULT_RUBRIC}
        assert verdict.details["judge"]["structured_output"] is True and verdict.score is not None
    else:
        assert verdict.passed is None and "no JSON object" in verdict.reason
