"""Throughput of the ``math_answer`` verifier: ``verify_many`` over worker processes.

Generates realistic math samples (a few lines of worked solution ending in a
boxed answer or "The final answer is ..."): integers, fractions, decimals,
radicals and pi, polynomials, sets and intervals, percentages; about a fifth
are wrong and a few have no final answer. Run ``python benchmarks/verify_math.py
[n] [jobs]``; another benchmark can import `run`.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.data import SampleRecord
from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.pool import MathVerifyPool

STEPS = [
    "First, we rewrite the condition as ${a} + {b} = {c}$.",
    "Multiplying both sides by ${b}$ gives ${a}b = {c}$.",
    "Substituting $x = {a}$ into $f(x) = x^2 - {b}$ yields $f({a}) = {d}$.",
    "The discriminant is $\\Delta = {b}^2 - 4 \\cdot {a} \\cdot {c}$.",
    "By the AM-GM inequality, $\\frac{{{a} + {b}}}{{2}} \\ge \\sqrt{{{a} \\cdot {b}}}$.",
    "There are $\\binom{{{c}}}{{2}} = {e}$ ways to choose the pair.",
    "So the area is ${a} \\times {b} = {f}$ square units.",
]


def _solution(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(3, 40)
    values = {"a": a, "b": b, "c": c, "d": a * a - b, "e": c * (c - 1) // 2, "f": a * b}
    return " ".join(rng.sample(STEPS, rng.randint(2, 4))).format(**values)


def _answer_pair(rng: random.Random) -> tuple[str, str, str, bool]:
    """(reference, correct answer as written by a model, wrong answer, correct?)."""
    kind = rng.random()
    if kind < 0.40:
        n = rng.randint(-50, 2000)
        return str(n), str(n), str(n + rng.choice([-1, 1, 10])), True
    if kind < 0.60:
        p, q = rng.randint(1, 40), rng.randint(2, 40)
        k = rng.choice([1, 1, 2])
        return f"\\frac{{{p}}}{{{q}}}", f"\\frac{{{p * k}}}{{{q * k}}}", f"\\frac{{{q}}}{{{p + q}}}", True
    if kind < 0.68:
        q = rng.choice([2, 4, 5, 8, 10, 20, 25])
        p = rng.randint(1, q - 1)
        return f"{p}/{q}", str(p / q), f"{p / q + 0.1:.2f}", True
    if kind < 0.78:
        r = rng.choice([2, 3, 5, 6, 7])
        m = rng.choice([k for k in range(2, 10) if k != r])
        forms = [
            (f"{m}\\sqrt{{{r}}}", f"\\sqrt{{{m * m * r}}}", f"{m + 1}\\sqrt{{{r}}}"),
            (f"\\frac{{{m}\\pi}}{{{r}}}", f"\\frac{{{m}}}{{{r}}}\\pi", f"\\frac{{{r}\\pi}}{{{m}}}"),
            (f"1 - \\frac{{1}}{{e^{{{m}}}}}", f"1 - e^{{-{m}}}", f"1 + e^{{-{m}}}"),
        ]
        ref, good, bad = rng.choice(forms)
        return ref, good, bad, True
    if kind < 0.86:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return f"x^2 + {a + b}x + {a * b}", f"(x+{a})(x+{b})", f"(x+{a})(x-{b})", True
    if kind < 0.93:
        a, b = sorted(rng.sample(range(-20, 20), 2))
        forms = [
            (f"\\{{{a}, {b}\\}}", f"\\{{{b}, {a}\\}}", f"\\{{{a}, {b + 1}\\}}"),
            (f"[{a}, {b})", f"[{a}, {b})", f"({a}, {b})"),
            (f"({a}, {b})", f"({a}, {b})", f"({b}, {a})"),
        ]
        ref, good, bad = rng.choice(forms)
        return ref, good, bad, True
    pct = rng.randint(1, 99)
    return f"{pct}\\%", f"{pct}\\%", f"{pct + 5}\\%", True


def make_samples(n: int, seed: int = 0) -> tuple[list[SampleRecord], list[bool | None]]:
    """n samples and the label each should get (True, False; None never: every sample has a reference)."""
    rng = random.Random(seed)
    samples, expected = [], []
    for i in range(n):
        reference, good, bad, _ = _answer_pair(rng)
        right = rng.random() >= 0.2
        answer = good if right else bad
        style = rng.random()
        body = _solution(rng)
        if style < 0.04:
            response, label = body + " I am not sure how to finish this.", False
        elif style < 0.12:
            response, label = f"{body}\nThe final answer is ${answer}$. I hope it is correct.", right
        else:
            response, label = f"{body}\nTherefore, the answer is $\\boxed{{{answer}}}$.", right
        samples.append(SampleRecord("math", f"Problem {i}", response, {"answer": reference}))
        expected.append(label)
    return samples, expected


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(n: int = 3000, jobs: int = 2, seed: int = 0) -> dict[str, Any]:
    """Verify n generated samples over `jobs` worker processes; returns the figures.

    Besides wall-clock throughput (which depends on what else the machine runs),
    it reports the workers' CPU time for the verification itself (CPU of the run
    minus that of starting and stopping an idle pool) and the throughput that CPU
    time allows on `jobs` otherwise idle cores.
    """
    samples, expected = make_samples(n, seed)
    cpu0 = _children_cpu()
    with MathVerifyPool(jobs=jobs, config=MathCheckConfig()):
        pass
    cpu1 = _children_cpu()
    t0 = time.perf_counter()
    with MathVerifyPool(jobs=jobs, config=MathCheckConfig()) as pool:
        t1 = time.perf_counter()
        verdicts = pool.verify_many(samples)
        t2 = time.perf_counter()
    cpu2 = _children_cpu()
    work_cpu = max(1e-9, (cpu2 - cpu1) - (cpu1 - cpu0))
    outcomes = Counter(str(v.passed) for v in verdicts)
    paths = Counter(str(v.details.get("path", v.reason)) for v in verdicts)
    disagreements = sum(1 for v, e in zip(verdicts, expected, strict=True) if v.passed is not e)
    return {
        "samples": n,
        "jobs": jobs,
        "startup_s": round(t1 - t0, 2),
        "verify_s": round(t2 - t1, 2),
        "samples_per_s": round(n / (t2 - t1), 1),
        "samples_per_s_with_startup": round(n / (t2 - t0), 1),
        "worker_cpu_ms_per_sample": round(work_cpu / n * 1000, 3),
        "cpu_bound_samples_per_s": round(n / (work_cpu / jobs), 1),
        "load_average": round(os.getloadavg()[0], 2),
        "outcomes": dict(outcomes),
        "timeouts": sum(1 for v in verdicts if v.reason == "timeout"),
        "disagreements_with_labels": disagreements,
        "paths": dict(paths.most_common()),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    result = run(n, jobs)
    print(f"math_answer: {result['samples']} samples, {result['jobs']} worker processes")
    print(f"  startup      {result['startup_s']:.2f} s")
    print(f"  verify       {result['verify_s']:.2f} s  ->  {result['samples_per_s']:.1f} samples/s")
    print(f"  with startup {result['samples_per_s_with_startup']:.1f} samples/s")
    print(
        f"  worker CPU   {result['worker_cpu_ms_per_sample']:.3f} ms/sample  ->  "
        f"{result['cpu_bound_samples_per_s']:.1f} samples/s on {result['jobs']} idle cores"
        f"  (load average during run: {result['load_average']})"
    )
    print(f"  outcomes     {result['outcomes']}  timeouts={result['timeouts']}")
    print(f"  disagreements with generator labels: {result['disagreements_with_labels']}")
    print(f"  paths        {result['paths']}")


if __name__ == "__main__":
    main()
