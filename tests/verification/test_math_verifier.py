"""The math_answer verifier, its worker pool and self-consistency.

Regression cases for math-verify's known false positives (issues #14, #41, #60,
and the 1 - 1/e vs 1 + 1/e case of its tests) run through real worker processes.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from curation.data import SampleRecord
from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.pool import MathVerifyPool
from curation.verification.base import VERIFIERS, Verdict
from curation.verification.consistency import self_consistency
from curation.verification.math import MathAnswerVerifier, verify_many


def math_sample(response: str, answer: str | None) -> SampleRecord:
    return SampleRecord("math", "Solve the problem.", response, {} if answer is None else {"answer": answer})


# Correctness tests must not depend on how busy the machine is: generous time limits.
# The issue reproductions compare bare `$...$` answers: extraction without an anchor.
PATIENT = {
    "parse_timeout": 60,
    "compare_timeout": 60,
    "guard_timeout": 60,
    "hard_timeout": 300.0,
    "require_anchor": False,
}


@pytest.fixture(scope="module")
def pool() -> Iterator[MathVerifyPool]:
    with MathVerifyPool(jobs=2, config=MathCheckConfig(**PATIENT)) as p:
        yield p


@pytest.fixture(scope="module")
def rounded_pool() -> Iterator[MathVerifyPool]:
    with MathVerifyPool(jobs=1, config=MathCheckConfig(decimal_policy="rounded", **PATIENT)) as p:
        yield p


def check(pool: MathVerifyPool, reference: str | None, response: str) -> Verdict:
    return pool.verify_many([math_sample(response, reference)])[0]


# (reference, response, expected passed)
ISSUE_14 = [
    ("\\frac{1}{2004!}", "$\\frac{1}{2006!}$", False),
    ("\\frac{1}{2004!}", "$\\frac{1}{2004!}$", True),
    ("\\frac{1}{2^{99}}", "$\\frac{1}{2^{98}}$", False),
    ("\\frac{1}{2^{99}}", "$2^{-99}$", True),
    ("n=2, 3, 4", "$n=1, 2, 3$", False),
    ("n=2, 3, 4", "$n=4, 3, 2$", True),
    ("D = (0, 1)", "$D = (0, 1.5)$", False),
    ("D = (0, 1)", "$D = (0, 1)$", True),
    ("F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", "$F_n = \\sum_{k=0}^{n-2} F_k F_{n-k-2}$", False),
    ("F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", "$F_n = \\sum_{k=0}^{n-1} F_{n-k-1} F_k$", True),
    ("19, 46, \\text{ and } 82", "$21, 36, and 82$", False),
    ("19, 46, and 82", "$19, 46, \\text{ and } 82$", True),
    ("\\frac{2^{2005}+1}{3 \\cdot 2^{2006}}", "$\\frac{1}{3 \\cdot 2^{2006}}$", False),
    ("1 - \\frac{1}{\\mathrm{e}}", "$1 + \\frac{1}{\\mathrm{e}}$", False),
    ("1 - \\frac{1}{\\mathrm{e}}", "$1 - \\frac{1}{\\mathrm{e}}$", True),
    ("\\pm 2021", "$2021$", False),
    ("\\pm 2021", "${-2021, 2021}$", True),
    ("12:00", "$1:00$", False),
    ("12:00", "$12:00$", True),
    ("1, 2, \\ldots, n", "$1, 3, 5, \\ldots, 2n-1$", False),
    ("1:2:3:\\ldots", "$1:4:9:\\ldots$", False),
]

ISSUE_41 = [
    ("4", "$4\\sqrt(2)$", False),
    ("4\\sqrt{2}", "$4\\sqrt(2)$", True),
]

ISSUE_60 = [
    ("3*x-1*y+13=0", "3x + 4y + 14=0", False),
    ("3x-y+13=0", "The line is $3x + 4y + 14 = 0$.", False),
    ("3*x-1*y+13=0", "The line is $\\boxed{3x - y + 13 = 0}$.", True),
]

ONE_MINUS_ONE_OVER_E = [
    ("1 - \\frac{1}{e}", "So the probability is $\\boxed{1 + \\frac{1}{e}}$.", False),
    ("1 - \\frac{1}{e}", "So the probability is $\\boxed{1 - \\frac{1}{e}}$.", True),
    ("1 - \\frac{1}{e}", "So the probability is $\\boxed{\\frac{e - 1}{e}}$.", True),
    ("1 - \\frac{1}{e}", "So the probability is $\\boxed{1 - e^{-1}}$.", True),
]

NUMERIC = [
    ("\\frac{1}{3}", "\\boxed{0.3333}", False),
    ("\\frac{1}{3}", "\\boxed{0.333333}", False),
    ("\\frac{1}{2}", "\\boxed{0.5}", True),
    ("0.33", "\\boxed{\\frac{1}{3}}", True),
    ("0.33", "\\boxed{0.330}", True),
    ("0.33", "\\boxed{0.333}", False),
    ("3.14", "\\boxed{\\pi}", True),
    ("\\pi", "\\boxed{3.14}", False),
    ("\\sqrt{2}", "\\boxed{1.41421356}", False),
    ("0", "\\boxed{10^{-7}}", False),
    ("0", "\\boxed{0.0000001}", False),
    ("123456789012345678", "\\boxed{123456789012345679}", False),
    ("10^{30} + 1", "\\boxed{10^{30}}", False),
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}", True),
    ("50\\%", "\\boxed{50}", True),
    ("0.5", "\\boxed{50\\%}", True),
    ("0.5", "\\boxed{50}", False),
    ("1000", "\\boxed{1,000}", True),
    ("\\{1, 2, 3\\}", "\\boxed{\\{3, 1, 2\\}}", True),
    ("[0, 1)", "\\boxed{[0, 1]}", False),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\boxed{\\begin{pmatrix}1\\\\3\\end{pmatrix}}", False),
    ("x + 10^{-20}", "\\boxed{x}", False),
    ("x^2 + 5x + 6", "\\boxed{(x+2)(x+3)}", True),
    ("x^2 + 5x + 6", "\\boxed{(x+2)(x-3)}", False),
    ("x = 5", "The answer is $\\boxed{5}$.", True),
]


@pytest.mark.parametrize("reference, response, expected", ISSUE_14)
def test_issue_14_cases(pool: MathVerifyPool, reference: str, response: str, expected: bool) -> None:
    verdict = check(pool, reference, response)
    assert verdict.passed is expected, verdict


@pytest.mark.parametrize("reference, response, expected", ISSUE_41)
def test_issue_41_sqrt_with_parentheses(
    pool: MathVerifyPool, reference: str, response: str, expected: bool
) -> None:
    verdict = check(pool, reference, response)
    assert verdict.passed is expected, verdict


@pytest.mark.parametrize("reference, response, expected", ISSUE_60)
def test_issue_60_plain_text_equations(
    pool: MathVerifyPool, reference: str, response: str, expected: bool
) -> None:
    verdict = check(pool, reference, response)
    assert verdict.passed is expected, verdict


@pytest.mark.parametrize("reference, response, expected", ONE_MINUS_ONE_OVER_E)
def test_one_minus_one_over_e(pool: MathVerifyPool, reference: str, response: str, expected: bool) -> None:
    verdict = check(pool, reference, response)
    assert verdict.passed is expected, verdict


@pytest.mark.parametrize("reference, response, expected", NUMERIC)
def test_numeric_guard(pool: MathVerifyPool, reference: str, response: str, expected: bool) -> None:
    verdict = check(pool, reference, response)
    assert verdict.passed is expected, verdict


@pytest.mark.parametrize(
    "reference, response, expected",
    [
        ("\\frac{1}{3}", "\\boxed{0.3333}", True),
        ("\\frac{1}{3}", "\\boxed{0.3334}", False),
        ("\\frac{1}{3}", "\\boxed{0.3}", False),
        ("\\pi", "\\boxed{3.14}", True),
    ],
)
def test_rounded_decimal_policy(
    rounded_pool: MathVerifyPool, reference: str, response: str, expected: bool
) -> None:
    verdict = check(rounded_pool, reference, response)
    assert verdict.passed is expected, verdict


def test_mathverify_rounding_is_overruled_and_reported(pool: MathVerifyPool) -> None:
    verdict = check(pool, "\\frac{1}{3}", "Thus $\\boxed{0.333333}$.")
    assert verdict.passed is False
    assert verdict.reason == "wrong answer"
    assert verdict.details["path"] == "numeric-exact"
    assert verdict.details["extracted"] == "0.333333"
    assert verdict.details["parsed_reference"] == "1/3"
    assert verdict.details["reference"] == "\\frac{1}{3}"


def test_correct_answer_details(pool: MathVerifyPool) -> None:
    verdict = check(pool, "\\frac{3}{4}", "We get $\\frac{6}{8}$, so the answer is $\\boxed{\\dfrac{6}{8}}$.")
    assert (verdict.passed, verdict.score, verdict.reason) == (True, 1.0, "correct")
    assert verdict.details["extracted"] == "\\frac{6}{8}"
    assert verdict.details["parsed_answer"] == "3/4"
    assert verdict.duration_ms is not None


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_no_reference_answer_cannot_be_judged(pool: MathVerifyPool, answer: str | None) -> None:
    verdict = check(pool, answer, "\\boxed{4}")
    assert verdict.passed is None
    assert verdict.reason == "no reference answer"


@pytest.mark.parametrize("response", ["", "I am not sure how to solve this problem.", "\\boxed{}"])
def test_missing_final_answer_fails(pool: MathVerifyPool, response: str) -> None:
    verdict = check(pool, "4", response)
    assert verdict.passed is False
    assert verdict.reason == "no final answer found"


def test_require_anchor_ignores_stray_numbers() -> None:
    config = MathCheckConfig(**{**PATIENT, "require_anchor": True})
    with MathVerifyPool(jobs=1, config=config) as strict:
        loose_text, boxed_text = "I think it is 4 or so", "I think it is $\\boxed{4}$"
        verdicts = strict.verify_many([math_sample(loose_text, "4"), math_sample(boxed_text, "4")])
    assert [v.passed for v in verdicts] == [False, True]


def test_pathological_inputs_are_contained_and_batch_completes() -> None:
    """A hang inside sympy (computing 9^(9^9) while building ``+1``) cannot be interrupted by
    a signal; the parent must kill the worker. Its neighbours still get verdicts."""
    config = MathCheckConfig(hard_timeout=4.0, parse_timeout=1, compare_timeout=1, guard_timeout=1)
    samples = [
        math_sample("$\\boxed{7}$", "7"),
        math_sample("$\\boxed{9^{9^{9^{9}}}+1}$", "5"),
        math_sample("$\\boxed{8}$", "7"),
        math_sample("$\\boxed{9^{9^{9^{9}}}}$", "5"),
        math_sample("$\\boxed{" + "(" * 60 + "1" + ")" * 60 + "}$", "1"),
        math_sample("$\\boxed{\\frac{1}{2}}$", "0.5"),
    ]
    samples += [math_sample(f"so $\\boxed{{{i}}}$", str(i)) for i in range(10)]
    with MathVerifyPool(jobs=2, config=config) as p:
        verdicts = p.verify_many(samples)
        assert p.stats["timeouts"] == 1
        assert p.stats["started"] == 3
    assert len(verdicts) == len(samples)
    assert (verdicts[1].passed, verdicts[1].reason) == (None, "timeout")
    assert verdicts[1].details["stage"] == "hard limit"
    assert verdicts[3].passed is None
    assert verdicts[4].passed is None
    assert [verdicts[i].passed for i in (0, 2, 5)] == [True, False, True]
    assert all(v.passed is True for v in verdicts[6:])


def test_dead_worker_is_replaced_before_the_next_batch() -> None:
    with MathVerifyPool(jobs=1) as p:
        first = p.verify_many([math_sample("$\\boxed{2}$", "2")])
        (pid,) = p.worker_pids()
        os.kill(pid, signal.SIGKILL)
        second = p.verify_many([math_sample("$\\boxed{3}$", "3"), math_sample("$\\boxed{4}$", "5")])
        assert p.worker_pids() != [pid]
        assert p.stats["started"] == 2
    assert [v.passed for v in first + second] == [True, True, False]


def test_verify_many_keeps_order_and_skips_workers_for_missing_references() -> None:
    samples = [math_sample(f"The answer is $\\boxed{{{i}}}$.", str(i if i % 3 else i + 1)) for i in range(12)]
    samples.insert(5, math_sample("\\boxed{3}", None))
    verdicts = verify_many(samples, jobs=2, config=MathCheckConfig(**PATIENT))
    assert len(verdicts) == 13
    assert verdicts[5].reason == "no reference answer"
    expected = [i % 3 != 0 for i in range(12)]
    assert [v.passed for v in verdicts[:5] + verdicts[6:]] == expected


def test_verify_is_safe_from_other_threads() -> None:
    verifier = MathAnswerVerifier(MathCheckConfig(**PATIENT))
    results: dict[int, Verdict] = {}

    def work(i: int) -> None:
        results[i] = verifier.verify(math_sample(f"$\\boxed{{\\frac{{{i}}}{{2}}}}$", f"{i / 2}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i].passed for i in range(1, 5)] == [True, True, True, True]


def test_registered_with_metadata() -> None:
    cls = VERIFIERS.get("math_answer")
    assert cls is MathAnswerVerifier
    assert (cls.name, cls.version, cls.families) == ("math_answer", "1", ("math",))
    assert MathAnswerVerifier().missing_dependencies() == []


def test_fast_parse_gives_the_same_trees_as_full_ll(monkeypatch: pytest.MonkeyPatch) -> None:
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy, latex2sympy
    from sympy import srepr

    from curation.mathcheck import speedups

    inputs = [
        "\\frac{1}{2004!}",
        "x^2 + 5x + 6",
        "2\\sqrt{3} + \\frac{\\pi}{4}",
        "\\{1, 2, 3\\}",
        "[0, 1) \\cup (2, \\infty)",
        "3x - y + 13 = 0",
        "\\sum_{k=0}^{n-1} F_k F_{n-k-1}",
        "\\begin{pmatrix}1 & 2\\\\3 & 4\\end{pmatrix}",
        "\\sin^2 x + \\cos^2 x",
        "a < b \\le c",
        "f(x) = e^{-x^2}",
        "\\binom{10}{3}",
        "0.125 + 007 - 1,000 + 3.14159265358979323846 + 12345678901234567890",
        "50\\%",
    ]
    before = [srepr(latex2sympy(s)) for s in inputs]
    original_parse = _Latex2Sympy.parse
    monkeypatch.setattr(_Latex2Sympy, "create_parser", _Latex2Sympy.create_parser)
    monkeypatch.setattr(_Latex2Sympy, "parse", original_parse)
    monkeypatch.setattr(_Latex2Sympy, "parse_number", _Latex2Sympy.parse_number)
    monkeypatch.setattr(speedups, "_INSTALLED", False)
    assert speedups.install()
    assert _Latex2Sympy.parse is not original_parse
    after = [srepr(latex2sympy(s)) for s in inputs]
    assert after == before


# self-consistency -------------------------------------------------------------


def test_self_consistency_groups_equivalent_answers() -> None:
    responses = [
        "Half of it: $\\boxed{\\frac{1}{2}}$.",
        "So the answer is $\\boxed{0.5}$.",
        "Reducing gives $\\boxed{\\frac{2}{4}}$.",
        "I get $\\boxed{3}$.",
        "I could not finish this one.",
    ]
    result = self_consistency(responses, "math", config=MathCheckConfig(**PATIENT))
    assert result.clusters[0] == [0, 1, 2]
    assert result.agreement == pytest.approx(0.6)
    assert result.majority_answer == "\\frac{1}{2}"
    assert [v.passed for v in result.verdicts] == [True, True, True, False, False]
    assert result.verdicts[3].reason == "disagrees with majority"
    assert result.verdicts[4].reason == "no final answer found"
    assert result.answers[3] == "3"


def test_self_consistency_keeps_close_decimals_apart() -> None:
    result = self_consistency(
        ["$\\boxed{0.3333}$", "$\\boxed{\\frac{1}{3}}$", "$\\boxed{\\frac{2}{6}}$"],
        config=MathCheckConfig(**PATIENT),
    )
    assert result.clusters == [[1, 2], [0]]
    assert [v.passed for v in result.verdicts] == [False, True, True]


def test_self_consistency_tie_has_no_majority() -> None:
    result = self_consistency(["$\\boxed{1}$", "$\\boxed{2}$"], config=MathCheckConfig(**PATIENT))
    assert result.tie is True
    assert result.majority_answer is None
    assert result.agreement == 0.0
    assert [v.passed for v in result.verdicts] == [None, None]


def test_self_consistency_for_text_families() -> None:
    result = self_consistency(["Paris.", "paris", "  Paris  ", "Lyon"], family="open")
    assert result.clusters == [[0, 1, 2], [3]]
    assert result.agreement == pytest.approx(0.75)
    assert [v.passed for v in result.verdicts] == [True, True, True, False]


def test_self_consistency_of_nothing() -> None:
    result = self_consistency([])
    assert (result.majority_answer, result.agreement, result.verdicts) == (None, 0.0, [])


@pytest.mark.parametrize(
    ("response", "passed"),
    [
        ("12 + 30 = 42, and then we add 0 to get 42.", False),
        ("12 + 30 = 42, so the answer is \\boxed{42}.", True),
        ("12 + 30 = 42.\n\nFinal answer: 42", True),
    ],
)
def test_by_default_a_final_answer_needs_an_anchor(response: str, passed: bool) -> None:
    """A response that never states its final answer fails, even when its last number is right."""
    verifier = MathAnswerVerifier(
        MathCheckConfig(parse_timeout=60, compare_timeout=60, guard_timeout=60, hard_timeout=300.0)
    )
    sample = SampleRecord(
        family="math", prompt="What is 12 + 30?", response=response, reference={"answer": "42"}
    )
    assert verifier.verify(sample).passed is passed
