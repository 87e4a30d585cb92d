"""Templates, reading teacher output, parameters, sources, flow control (no network)."""

from __future__ import annotations

import asyncio

import pytest

from curation.generation.extract import (
    ParseError,
    consistency,
    extract,
    extract_answer,
    find_code,
    last_boxed,
    normalise_answer,
    parse_written,
)
from curation.generation.limiter import AdaptiveLimiter, ErrorWindow, backoff_delay
from curation.generation.params import GenerationParams
from curation.generation.plan import render_preview
from curation.generation.templates import (
    PromptTemplate,
    TemplateError,
    check_template,
    default_template,
    render,
)
from curation.sandbox.extract import extract_code
from curation.sources import SOURCES, ProblemSource, parse_source_spec
from curation.teachers.base import Scrubber, TeacherConfig


def test_render_substitutes_and_names_unknown_variables():
    assert render("Solve {problem} in \\boxed{} and {{literal}}", {"problem": "1+1"}) == (
        "Solve 1+1 in \\boxed{} and {literal}"
    )
    with pytest.raises(TemplateError, match=r"unknown template variable \{topc\} \(known: problem, topic\)"):
        render("About {topc}", {"problem": "", "topic": "x"})


def test_check_template_rejects_variables_the_mode_does_not_fill():
    check_template(default_template("math", "solve"), "solve")
    with pytest.raises(TemplateError, match=r"user template: unknown variable \{problem\}"):
        check_template(PromptTemplate(user="{problem}"), "write")
    with pytest.raises(ValueError, match="unknown variable"):
        GenerationParams.from_dict(
            {
                "batch": "b",
                "family": "math",
                "source": {"kind": "topics", "count": 1},
                "mode": "write",
                "template": {"user": "Write about {subject}"},
            }
        )


def test_render_preview_shows_the_exact_messages_of_an_item():
    params = {
        "batch": "b",
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 5}},
        "levers": {"personas": ["a pirate who loves numbers"]},
        "template": {"system": "You are {persona}.", "user": "Item {index}: {problem}"},
    }
    messages = render_preview(params, index=2)
    assert messages[0] == {"role": "system", "content": "You are a pirate who loves numbers."}
    assert messages[1]["content"].startswith("Item 2: Calculate ")


def test_teacher_system_prompt_replaces_the_templates():
    params = {
        "batch": "b",
        "family": "open",
        "source": {"kind": "open_prompts", "count": 2},
        "teacher": {"kind": "simulated", "system_prompt": "Be brief {not a variable}."},
    }
    assert render_preview(params)[0]["content"] == "Be brief {not a variable}."


@pytest.mark.parametrize(
    ("text", "answer", "how"),
    [
        ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}", "boxed"),
        ("first \\boxed{3} then \\boxed{ 4 }", "4", "boxed"),
        ("<think>\\boxed{9}</think>The final answer is 12.", "12", "answer_line"),
        ("Answer: $-7$", "-7", "answer_line"),
        ("no answer here", None, None),
        ("\\boxed{unbalanced", None, None),
    ],
)
def test_extract_answer(text, answer, how):
    assert extract_answer(text) == (answer, how)


def test_last_boxed_handles_nesting_and_fbox():
    assert last_boxed("\\boxed{\\sqrt{2}+1} and \\fbox{x^{2}}") == "x^{2}"


def test_find_code_prefers_the_block_defining_the_entry_point():
    text = "```python\nimport os\n```\nthen\n```python\ndef f(x):\n    return x\n```\n```\nprint(f(1))\n```"
    assert find_code(text, "f") == ("def f(x):\n    return x\n", "fenced block")
    # Python-tagged blocks come before untagged ones (an untagged block after the code is
    # usually its output or a usage line): the last tagged block, as the sandbox runs.
    assert find_code(text) == ("def f(x):\n    return x\n", "fenced block")
    assert find_code("def g():\n    return 1") == ("def g():\n    return 1\n", "raw response")
    assert find_code("no code") is None
    assert extract("code", text, {"entry_point": "f"}) == {"extracted_code": "def f(x):\n    return x\n"}


def test_parse_written_accepts_json_or_tags_and_never_evaluates():
    math = parse_written(
        "math", 'Sure!\n```json\n{"problem": "2+2?", "solution": "4. \\\\boxed{4}", "answer": 4}\n```'
    )
    assert math == {"prompt": "2+2?", "response": "4. \\boxed{4}", "reference": {"answer": "4"}}
    bare = parse_written("open", 'x {"question": "Why?", "answer": "Because."} y')
    assert bare["prompt"] == "Why?"
    code = parse_written(
        "code",
        '<prompt>def f(x):\n    """Double."""</prompt><solution>```python\ndef f(x):\n    return 2 * x\n```'
        "</solution><tests>def check(candidate):\n    assert candidate(2) == 4</tests>",
    )
    assert code["reference"]["entry_point"] == "f" and code["response"].startswith("```python\ndef f")
    hostile = '{"problem": "__import__(\'os\').system(\'rm -rf /\')", "solution": "\\\\boxed{1}"}'
    assert parse_written("math", hostile)["prompt"].startswith("__import__")


@pytest.mark.parametrize(
    ("family", "text", "message"),
    [
        ("math", '```json\n{"problem": "p"}\n```', "JSON answer lacks solution"),
        ("math", '{"problem": "p", "solution": "no answer"}', "no final answer"),
        ("code", "<prompt>def f(): pass</prompt>", "tagged answer lacks <solution>, <tests>"),
        (
            "instruction",
            '{"instruction": "i", "instruction_id_list": "x", "response": "r"}',
            "non-empty list",
        ),
        ("open", "just text", "no JSON object or tagged sections"),
    ],
)
def test_parse_written_errors_say_what_is_wrong(family, text, message):
    with pytest.raises(ParseError, match=message):
        parse_written(family, text)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("1,000", "1000"),
        ("$3.50$", "3.5"),
        ("\\text{7 apples}", "7apples"),
        ("\\frac{1}{2}", "1/2"),
        ("+4.", "4"),
    ],
)
def test_normalise_answer(raw, normal):
    assert normalise_answer(raw) == normal


def test_consistency_majority_and_agreement():
    result = consistency(["4", "4.0", "5", None])
    assert result["majority_answer"] == "4" and result["agreement"] == 0.5 and result["k"] == 4
    assert consistency([None, None])["majority_answer"] is None


@pytest.mark.parametrize(
    ("spec", "config"),
    [
        (
            "reasoning_gym:basic_arithmetic:50",
            {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 50}},
        ),
        (
            "reasoning_gym:chain_sum=3,gcd=4",
            {"kind": "reasoning_gym", "datasets": {"chain_sum": 3, "gcd": 4}},
        ),
        (
            "reasoning-gym:basic_arithmetic:50",
            {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 50}},
        ),
        (
            "reasoning-gym:chain_sum=3,gcd=4",
            {"kind": "reasoning_gym", "datasets": {"chain_sum": 3, "gcd": 4}},
        ),
        ("humaneval:40", {"kind": "humaneval", "limit": 40}),
        ("file:/tmp/p.jsonl", {"kind": "file", "path": "/tmp/p.jsonl"}),
        ("topics:7", {"kind": "topics", "count": 7}),
    ],
)
def test_source_specs(spec, config):
    assert parse_source_spec(spec) == config


def test_source_errors_are_clear(tmp_path):
    from curation.generation.plan import build_plan

    with pytest.raises(ValueError, match="unknown source 'gsm8k'") as unknown:
        parse_source_spec("gsm8k:10")
    for known in ("reasoning_gym", "reasoning-gym", "humaneval", "file", "ifeval", "open_prompts", "topics"):
        assert known in str(unknown.value)
    with pytest.raises(ValueError, match="not arithmetic-like: use family 'open'"):
        build_plan(
            GenerationParams.from_dict(
                {
                    "batch": "b",
                    "family": "math",
                    "source": {"kind": "reasoning_gym", "datasets": {"word_sorting": 2}},
                }
            )
        )
    with pytest.raises(ValueError, match="for mode write, not solve"):
        build_plan(
            GenerationParams.from_dict(
                {"batch": "b", "family": "math", "source": {"kind": "topics", "count": 2}}
            )
        )
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"family": "math", "prompt": "1+1?", "reference": {"answer": "2"}}\n{"family": "code", "prompt": "x"}\n'
    )
    with pytest.raises(ValueError, match="record 2 is family 'code'"):
        build_plan(
            GenerationParams.from_dict(
                {"batch": "b", "family": "math", "source": {"kind": "file", "path": str(path)}}
            )
        )


def test_file_source_reads_the_interchange_format(tmp_path):
    from curation.generation.plan import build_plan
    from curation.io.interchange import InterchangeError

    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": "q1", "family": "math", "prompt": "What is 2+3?", "reference": {"answer": "5"}}\n'
    )
    plan = build_plan(
        GenerationParams.from_dict(
            {"batch": "b", "family": "math", "source": {"kind": "file", "path": str(path)}}
        )
    )
    assert plan.items[0].problem.reference == {"answer": "5"} and plan.items[0].problem.id == "q1"
    path.write_text('{"family": "math", "prompt": 3}\n')
    with pytest.raises(InterchangeError, match="line 1, field 'prompt'"):
        build_plan(
            GenerationParams.from_dict(
                {"batch": "b", "family": "math", "source": {"kind": "file", "path": str(path)}}
            )
        )


def test_params_never_hold_a_key_and_fingerprint_ignores_runtime_settings():
    base = {"batch": "b", "family": "code", "source": {"kind": "humaneval", "limit": 2}}
    with pytest.raises(ValueError, match="API keys are never stored"):
        GenerationParams.from_dict({**base, "teacher": {"kind": "openai", "api_key": "sk-x"}})
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        TeacherConfig(api_key_env="sk-live-1234567890")
    one = GenerationParams.from_dict({**base, "teacher": {"concurrency": 4, "timeout": 5}})
    two = GenerationParams.from_dict({**base, "teacher": {"concurrency": 64, "timeout": 50}, "cache": False})
    three = GenerationParams.from_dict({**base, "teacher": {"temperature": 0.1}})
    assert one.fingerprint() == two.fingerprint() != three.fingerprint()
    assert GenerationParams.from_dict(one.to_dict()) == one


def test_scrubber_removes_keys_and_masked_echoes():
    key = "sk-proj-abcdef1234567890ghijkl"
    scrub = Scrubber([key])
    text = f"Incorrect API key provided: sk-proj-***************ghijkl. Bearer {key}; raw {key[:14]}"
    cleaned = scrub(text)
    assert key not in cleaned and key[:14] not in cleaned and "ghijkl" not in cleaned
    assert "Incorrect API key provided: [redacted]" in cleaned


def test_limiter_halves_once_per_epoch_and_recovers_additively():
    async def scenario() -> None:
        limiter = AdaptiveLimiter(16)
        epochs = [await limiter.acquire() for _ in range(16)]
        for epoch in epochs[:5]:
            limiter.release()
            limiter.on_rate_limit(epoch, retry_after=None)
        assert limiter.current == 8 and limiter.decreases == 1
        for _ in range(11):
            limiter.release()
        for _ in range(9):  # about one round of successes at the halved limit
            limiter.on_success()
        assert limiter.current == 9
        while limiter.current < 16:
            limiter.on_success()
        assert limiter.limit == 16.0

    asyncio.run(scenario())


def test_limiter_pauses_for_retry_after_and_bounds_concurrency():
    async def scenario() -> tuple[int, float]:
        limiter = AdaptiveLimiter(4)
        peak = 0
        loop = asyncio.get_running_loop()
        epoch = await limiter.acquire()
        limiter.release()
        limiter.on_rate_limit(epoch, retry_after=0.2)
        started = loop.time()

        async def one() -> float:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_flight)
            waited = loop.time() - started
            await asyncio.sleep(0.01)
            limiter.release()
            return waited

        waits = await asyncio.gather(*(one() for _ in range(12)))
        return peak, min(waits)

    peak, first_wait = asyncio.run(scenario())
    assert peak <= 2
    assert first_wait >= 0.19


def test_error_window_trips_on_rate_not_count():
    window = ErrorWindow(size=20, threshold=0.5)
    for i in range(200):
        assert not window.record("server_error" if i % 3 == 0 else None)
    window = ErrorWindow(size=20, threshold=0.5)
    tripped = [window.record("auth", "401") for _ in range(10)]
    assert tripped == [False] * 9 + [True]
    assert "check the API key (environment variable $OPENAI_API_KEY)" in window.reason(
        env="OPENAI_API_KEY", model="m", base_url="u", timeout=1
    )


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    import random

    rng = random.Random(0)
    delays = [backoff_delay(attempt, base=1.0, cap=10.0, rng=rng) for attempt in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.5 and 4 <= delays[3] <= 12
    assert all(d <= 15 for d in delays)


DRAFT = "\n```python\ndef f(x):\n    return 0\n```\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Where generation and the sandbox used to disagree; both now read the answer alike.
        ("~~~python\ndef f(x):\n    return 1\n~~~", ("def f(x):\n    return 1\n", "fenced block")),
        ("```py3\ndef f(x):\n    return 1\n```", ("def f(x):\n    return 1\n", "fenced block")),
        ("Sure:\n```python\ndef f(x):\n    return 1\n", ("def f(x):\n    return 1\n", "fenced block")),
        ("```python\ndef f(x):\n    return '```'\n```", ("def f(x):\n    return '```'\n", "fenced block")),
        (f"<think>{DRAFT}</think>I cannot solve this.", None),
        (f"<think>{DRAFT}and then", None),
        (
            "```python\ndef f(x):\n    return 1\n```\nOutput:\n```\n1\n```",
            ("def f(x):\n    return 1\n", "fenced block"),
        ),
        (
            "\n\nimport math\ndef f(x):\n    return math.pi\n",
            ("import math\ndef f(x):\n    return math.pi\n", "raw response"),
        ),
    ],
)
def test_generation_and_the_sandbox_find_the_same_code(text, expected):
    assert find_code(text, "f") == expected
    program, how = extract_code(text, "", "f")
    if expected is None:
        assert (how, "return 0" in program) == ("raw response", False)
    else:
        assert (program, how) == expected


class _NeedsAnAbsentPackage(ProblemSource):
    """Unnamed, so not registered."""

    requires = ("assay_no_such_package", "no-such-package")

    def problems(self, family: str, seed: int, limit: int | None = None) -> list:
        return []


def test_a_source_names_the_optional_package_it_lacks():
    assert _NeedsAnAbsentPackage({"kind": "absent"}).missing_dependencies() == [
        "the no-such-package package is not installed"
    ]
    assert "absent" not in SOURCES
