"""The answer check itself: extraction, parsing and comparison of one response.

Runs inside a worker process (see `curation.mathcheck.pool`), in its main thread,
so math-verify's ``signal.alarm`` timeouts work; the same alarm bounds this
package's own exact-arithmetic guard. Model text is parsed only by math-verify's
`parse`; everything after that works on the sympy objects it returned.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.numeric import Judgement, judge, spot_check, symbolic_shortcut
from curation.mathcheck.textfix import lossy_reason, normalize_answer_string, prepare_text

MAX_SHOWN = 300


class CheckTimeout(Exception):
    """A soft (in-process) time limit expired."""


@dataclass
class Parsed:
    """What math-verify extracted from a text: the sympy object (if it parsed) and the
    extracted answer string (its normalised LaTeX, or the matched text)."""

    expr: Any = None
    text: str | None = None
    timed_out: bool = False
    error: str | None = None

    @property
    def found(self) -> bool:
        return self.expr is not None or bool(self.text)


@dataclass
class Comparison:
    equal: bool | None
    path: str
    note: str = ""
    mathverify: bool | None = None
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout after `seconds` (only in the main thread; elsewhere a no-op,
    which is why the pool runs checks in worker processes)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CheckTimeout(f"exceeded {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _extraction_config(require_anchor: bool) -> list[Any]:
    # heavy: math-verify and sympy load only in math worker processes
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    if not require_anchor:
        return [LatexExtractionConfig(), ExprExtractionConfig()]
    return [
        LatexExtractionConfig(try_extract_without_anchor=False, boxed_match_priority=0),
        ExprExtractionConfig(try_extract_without_anchor=False),
    ]


def _mv_parse(text: str, config: MathCheckConfig, require_anchor: bool) -> Parsed:
    # heavy: math-verify and sympy load only in math worker processes
    from math_verify import parse
    from math_verify.errors import TimeoutException

    in_main = threading.current_thread() is threading.main_thread()
    try:
        items = parse(
            prepare_text(text),
            extraction_config=_extraction_config(require_anchor),
            parsing_timeout=config.parse_timeout if in_main else None,
            raise_on_error=True,
        )
    except TimeoutException:
        return Parsed(timed_out=True)
    except Exception as exc:  # noqa: BLE001 - a parser failure means "nothing extracted"
        return Parsed(error=type(exc).__name__)
    out = Parsed()
    for item in items:
        if isinstance(item, str):
            if out.text is None:
                out.text = item
        elif out.expr is None:
            out.expr = item
    return out


def extract_answer(response: str, config: MathCheckConfig) -> Parsed:
    """The final answer of a model response, as math-verify extracts and parses it."""
    return _mv_parse(response, config, config.require_anchor)


_REFERENCE_CACHE: OrderedDict[tuple[str, MathCheckConfig], Parsed] = OrderedDict()
_REFERENCE_CACHE_SIZE = 4096


def parse_reference_uncached(reference: str, config: MathCheckConfig) -> Parsed:
    """A bare reference answer ("3x-y+13=0", "\\frac{1}{3}") is parsed as LaTeX; without the
    $...$ math-verify's plain-text extraction would keep only a trailing number ("0")."""
    text = reference.strip()
    if not any(marker in text for marker in ("$", "\\boxed", "\\(", "\\[")):
        wrapped = _mv_parse(f"$${text}$$" if "\n" in text else f"${text}$", config, require_anchor=False)
        if wrapped.expr is not None or wrapped.timed_out:
            return wrapped
    return _mv_parse(text, config, require_anchor=False)


def parse_reference(reference: str, config: MathCheckConfig) -> Parsed:
    """`parse_reference_uncached`, memoised (candidates for one problem share a reference);
    a timed-out parse is not remembered."""
    key = (reference, config)
    parsed = _REFERENCE_CACHE.get(key)
    if parsed is not None:
        _REFERENCE_CACHE.move_to_end(key)
        return parsed
    parsed = parse_reference_uncached(reference, config)
    if not parsed.timed_out:
        _REFERENCE_CACHE[key] = parsed
        if len(_REFERENCE_CACHE) > _REFERENCE_CACHE_SIZE:
            _REFERENCE_CACHE.popitem(last=False)
    return parsed


def _mv_verify(gold: Parsed, pred: Parsed, config: MathCheckConfig) -> tuple[bool, bool]:
    """math-verify's verdict over the (expression, string) candidates: (equal, timed_out)."""
    # heavy: math-verify and sympy load only in math worker processes
    from math_verify import verify
    from math_verify.errors import TimeoutException

    in_main = threading.current_thread() is threading.main_thread()
    golds = [x for x in (gold.expr, gold.text) if x is not None]
    preds = [x for x in (pred.expr, pred.text) if x is not None]
    timed_out = False
    for g in golds:
        for p in preds:
            if isinstance(g, str) != isinstance(p, str):
                continue
            try:
                if verify(
                    g,
                    p,
                    timeout_seconds=config.compare_timeout if in_main else None,
                    raise_on_error=True,
                ):
                    return True, False
            except TimeoutException:
                timed_out = True
            except Exception:  # noqa: BLE001, S112 - math-verify's own policy: an error is "not equal"
                continue
    return False, timed_out


def _undefined(expr: Any) -> bool:
    # heavy: math-verify and sympy load only in math worker processes
    from sympy import Basic, nan, zoo

    return isinstance(expr, Basic) and expr.has(zoo, nan)


def compare_parsed(gold: Parsed, pred: Parsed, config: MathCheckConfig) -> Comparison:
    """Decide whether `pred` answers `gold`. Paths: "string" (lossy parse, compared as
    normalised strings), "numeric-*"/"set/*"/"interval/*"/"tuple/*" (exact guard),
    "symbolic-expand"/"spot-check" (polynomial identity or a differing value, decided
    without math-verify's slow ``simplify``), "symbolic" (math-verify),
    "symbolic+spot-check" (math-verify's True overruled by a differing value)."""
    lossy = next(
        (
            f"{side}: {why}"
            for side, text in (("reference", gold.text), ("answer", pred.text))
            if text and (why := lossy_reason(text))
        ),
        None,
    )
    if lossy is None and (_undefined(gold.expr) or _undefined(pred.expr)):
        lossy = "undefined value"
    if lossy is not None or gold.expr is None or pred.expr is None:
        g_key = normalize_answer_string(gold.text or "")
        p_key = normalize_answer_string(pred.text or "")
        if lossy is not None:
            return Comparison(bool(g_key) and g_key == p_key, "string", note=lossy)
        equal, timed_out = _mv_verify(gold, pred, config)
        return Comparison(equal or (bool(g_key) and g_key == p_key), "string", timed_out=timed_out)

    try:
        with time_limit(config.guard_timeout):
            j = judge(gold.expr, pred.expr, config)
            if j.path is None:
                j = symbolic_shortcut(gold.expr, pred.expr, config)
    except CheckTimeout:
        j = Judgement(None, "guard-timeout")
    if j.path is not None and j.path != "guard-timeout":
        return Comparison(j.equal, j.path, note=j.note)

    equal, timed_out = _mv_verify(gold, pred, config)
    if j.path == "guard-timeout" and not equal:
        return Comparison(None, "guard-timeout", timed_out=True)
    if not equal:
        return Comparison(False if not timed_out else None, "symbolic", mathverify=False, timed_out=timed_out)
    try:
        with time_limit(config.guard_timeout):
            spot = spot_check(gold.expr, pred.expr, config)
    except CheckTimeout:
        spot = Judgement(None, None)
    if spot.equal is False:
        return Comparison(False, "symbolic+spot-check", note=spot.note, mathverify=True)
    return Comparison(True, "symbolic", mathverify=True)


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = str(value)
    except (ValueError, RecursionError):
        return "<unprintable>"
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def check_answer(response: str, reference: str | None, config: MathCheckConfig) -> dict[str, Any]:
    """Verdict fields (passed, score, reason, details) for one response and reference."""
    start = time.perf_counter()
    details: dict[str, Any] = {"reference": reference}
    if reference is None or not str(reference).strip():
        return _verdict(None, "no reference answer", details, start)
    reference = str(reference)
    gold = parse_reference(reference, config)
    details["parsed_reference"] = _shown(gold.expr)
    if gold.timed_out:
        return _verdict(None, "timeout", {**details, "stage": "parse reference"}, start)
    if not gold.found:
        return _verdict(None, "reference answer could not be parsed", details, start)

    pred = extract_answer(response, config)
    details["extracted"] = _shown(pred.text)
    details["parsed_answer"] = _shown(pred.expr)
    if pred.timed_out:
        return _verdict(None, "timeout", {**details, "stage": "parse answer"}, start)
    if not pred.found:
        return _verdict(False, "no final answer found", details, start)

    cmp = compare_parsed(gold, pred, config)
    details["path"] = cmp.path
    if cmp.note:
        details["note"] = cmp.note
    if cmp.mathverify is not None:
        details["mathverify"] = cmp.mathverify
    if cmp.equal is None:
        reason = "timeout" if cmp.timed_out else (cmp.note or "cannot judge")
        return _verdict(None, reason, {**details, "stage": "compare"} if cmp.timed_out else details, start)
    return _verdict(cmp.equal, "correct" if cmp.equal else "wrong answer", details, start)


def _verdict(passed: bool | None, reason: str, details: dict[str, Any], start: float) -> dict[str, Any]:
    return {
        "passed": passed,
        "score": None if passed is None else float(passed),
        "reason": reason,
        "details": details,
        "duration_ms": round((time.perf_counter() - start) * 1000, 3),
    }


def cluster_answers(responses: list[str], config: MathCheckConfig) -> dict[str, Any]:
    """Group responses whose extracted answers are equivalent. Each cluster's first
    member is its representative; a response joins a cluster when it matches the
    representative in both directions (candidates are peers, so the leniency for a
    decimal *reference* must not merge 0.3333 with 1/3)."""
    parsed = [extract_answer(r, config) for r in responses]
    clusters: list[list[int]] = []
    for i, p in enumerate(parsed):
        if not p.found:
            continue
        key = normalize_answer_string(p.text or "")
        for members in clusters:
            rep = parsed[members[0]]
            if key and key == normalize_answer_string(rep.text or ""):
                members.append(i)
                break
            if compare_parsed(rep, p, config).equal and compare_parsed(p, rep, config).equal:
                members.append(i)
                break
        else:
            clusters.append([i])
    return {
        "answers": [p.text if p.found else None for p in parsed],
        "parsed": [_shown(p.expr) for p in parsed],
        "timed_out": [p.timed_out for p in parsed],
        "clusters": clusters,
    }
