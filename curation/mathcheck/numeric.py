"""Exact judgement of numeric answers, on the expression objects math-verify parsed.

math-verify compares numbers by rounding to ``float_rounding`` (6) decimals, or
by ``(a - b).evalf(chop=True) == 0``, which makes ``1/2004!`` equal ``1/2006!``,
``1/2^99`` equal ``1/2^98`` and ``0.333333`` equal ``1/3`` (issue #14). Here,
when both sides are numbers (or sets, tuples, intervals or assignments of
numbers), the decision is made again:

* decimals in the parsed trees are replaced by the exact rationals they spell;
* if both sides evaluate to rationals, they are compared exactly
  (path ``numeric-exact``);
* otherwise both are evaluated to ``eval_digits`` significant digits and must
  agree to a relative ``rel_tol`` (path ``numeric-evalf``);
* the decimal policy of `MathCheckConfig` may widen equality to a rounding
  interval (path suffix ``+rounded``).

Numbers whose size makes exact evaluation unsafe (``2^{10^9}``) are compared
approximately; numbers too large even for that (``9^{9^{9^9}}``) are not judged.
Nothing here parses text: inputs are sympy objects produced by math-verify.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from curation.mathcheck.config import MathCheckConfig


@dataclass(frozen=True)
class Judgement:
    """equal: True/False, or None = cannot judge. path None = not applicable (defer)."""

    equal: bool | None
    path: str | None
    note: str = ""


NOT_APPLICABLE = Judgement(None, None)


def judge(gold: Any, pred: Any, config: MathCheckConfig) -> Judgement:
    """Compare two parsed answers when both are numeric structures; otherwise NOT_APPLICABLE."""
    gold, pred = unwrap_relations(gold, pred)
    if gold is None:
        return NOT_APPLICABLE
    return _judge_structure(gold, pred, config)


def unwrap_relations(gold: Any, pred: Any) -> tuple[Any, Any]:
    """Reduce assignments the way math-verify does (``x = 5`` vs ``5``); (None, None) when
    the pair is a relation this module leaves to math-verify."""
    # heavy: sympy and friends load only in math worker processes
    from sympy import Eq
    from sympy.core.relational import Relational

    g_assign = _is_assignment(gold)
    p_assign = _is_assignment(pred)
    if g_assign and p_assign:
        if gold.lhs != pred.lhs:
            return None, None
        return gold.rhs, pred.rhs
    if isinstance(pred, Eq) and not isinstance(gold, Relational):
        return gold, pred.rhs
    if g_assign and not isinstance(pred, Relational):
        return gold.rhs, pred
    if isinstance(gold, Relational) or isinstance(pred, Relational):
        return None, None
    return gold, pred


def _is_assignment(expr: Any) -> bool:
    # heavy: sympy and friends load only in math worker processes
    from latex2sympy2_extended import is_expr_of_only_symbols
    from sympy import Eq

    return isinstance(expr, Eq) and bool(is_expr_of_only_symbols(expr.lhs))


def _judge_structure(gold: Any, pred: Any, config: MathCheckConfig) -> Judgement:
    # heavy: sympy and friends load only in math worker processes
    from sympy import Expr, FiniteSet, Interval, MatrixBase, Tuple

    if isinstance(gold, MatrixBase) and isinstance(pred, MatrixBase):
        if gold.shape != pred.shape:
            return Judgement(False, "matrix", "shapes differ")
        return _all_equal(list(zip(gold, pred, strict=True)), config, "matrix")
    if isinstance(gold, Interval) and isinstance(pred, Interval):
        if (gold.left_open, gold.right_open) != (pred.left_open, pred.right_open):
            return Judgement(False, "interval", "open/closed ends differ")
        return _all_equal([(gold.start, pred.start), (gold.end, pred.end)], config, "interval")
    if isinstance(gold, Tuple) and isinstance(pred, Tuple):
        if len(gold) != len(pred):
            return Judgement(False, "tuple", "lengths differ")
        return _all_equal(list(zip(gold.args, pred.args, strict=True)), config, "tuple")
    if isinstance(gold, FiniteSet) or isinstance(pred, FiniteSet):
        g_items = list(gold.args) if isinstance(gold, FiniteSet) else [gold]
        p_items = list(pred.args) if isinstance(pred, FiniteSet) else [pred]
        return _match_sets(g_items, p_items, config)
    if isinstance(gold, Expr) and isinstance(pred, Expr) and gold.is_number and pred.is_number:
        return compare_numbers(gold, pred, config)
    return NOT_APPLICABLE


def _is_numeric(expr: Any) -> bool:
    # heavy: sympy and friends load only in math worker processes
    from sympy import Expr

    return isinstance(expr, Expr) and bool(expr.is_number)


def _all_equal(pairs: list[tuple[Any, Any]], config: MathCheckConfig, path: str) -> Judgement:
    if not all(_is_numeric(g) and _is_numeric(p) for g, p in pairs):
        return NOT_APPLICABLE
    for g, p in pairs:
        j = compare_numbers(g, p, config)
        if j.path is None:
            return NOT_APPLICABLE
        if j.equal is not True:
            return Judgement(j.equal, f"{path}/{j.path}", j.note)
    return Judgement(True, f"{path}/numeric")


def _match_sets(g_items: list[Any], p_items: list[Any], config: MathCheckConfig) -> Judgement:
    """Unordered one-to-one matching of two sets of numbers."""
    if not all(_is_numeric(x) for x in g_items + p_items):
        return NOT_APPLICABLE
    if len(g_items) != len(p_items):
        return Judgement(False, "set", "sizes differ")
    unused = list(range(len(p_items)))
    for g in g_items:
        for slot, k in enumerate(unused):
            j = compare_numbers(g, p_items[k], config)
            if j.path is None:
                return NOT_APPLICABLE
            if j.equal is None:
                return Judgement(None, f"set/{j.path}", j.note)
            if j.equal:
                del unused[slot]
                break
        else:
            return Judgement(False, "set/numeric", "an element has no equal")
    return Judgement(True, "set/numeric")


def compare_numbers(gold: Any, pred: Any, config: MathCheckConfig) -> Judgement:
    """Judge two numeric sympy expressions; percentages may be read either way (50% = 50 = 0.5)."""
    if gold == pred:
        return Judgement(True, "structural")
    results = [
        _compare_scalar(g, gp, p, pp, config) for g, gp in _readings(gold) for p, pp in _readings(pred)
    ]
    for wanted in (True, None):
        for j in results:
            if j.equal is wanted:
                return j
    return results[0]


def _readings(expr: Any) -> list[tuple[Any, int | None]]:
    """(value, decimal places if it is a bare decimal) for each reading of the number.

    latex2sympy2_extended parses "X%" as ``X * UnevaluatedExpr(1/100)``; like math-verify,
    a percentage may match either X/100 or X."""
    # heavy: sympy and friends load only in math worker processes
    from sympy import Mul, Rational, UnevaluatedExpr

    if isinstance(expr, Mul) and len(expr.args) == 2 and expr.args[1] == UnevaluatedExpr(Rational(1, 100)):
        base = expr.args[0]
        return [(base * Rational(1, 100), None), (base, _decimal_places(base))]
    return [(expr, _decimal_places(expr))]


def _decimal_places(expr: Any) -> int | None:
    # heavy: sympy and friends load only in math worker processes
    from sympy import Float

    if not isinstance(expr, Float):
        return None
    exponent = _float_decimal(expr).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else None


def _float_decimal(value: Any) -> Any:
    """The decimal a sympy Float spells (math-verify builds Floats from decimal text)."""
    return Decimal(str(value))


def exactify(expr: Any) -> Any:
    """Replace every Float by the exact rational its decimal digits spell."""
    # heavy: sympy and friends load only in math worker processes
    from sympy import Float, Rational

    floats = expr.atoms(Float)
    if not floats:
        return expr
    mapping = {}
    for f in floats:
        frac = Fraction(_float_decimal(f))
        mapping[f] = Rational(frac.numerator, frac.denominator)
    return expr.xreplace(mapping)


def _compare_scalar(
    gold: Any, g_places: int | None, pred: Any, p_places: int | None, config: MathCheckConfig
) -> Judgement:
    # heavy: sympy and friends load only in math worker processes
    from sympy import Rational

    g, p = exactify(gold), exactify(pred)
    size = max(digit_estimate(g, config.max_eval_digits), digit_estimate(p, config.max_eval_digits))
    if size > config.max_eval_digits:
        return Judgement(None, "too-large", "number too large to compare")

    bound, suffix = None, ""
    if g_places and p_places is None:
        bound, suffix = Rational(1, 2 * 10**g_places), "+rounded-reference"
    elif (
        config.decimal_policy == "rounded" and p_places is not None and p_places >= config.min_decimal_places
    ):
        places = p_places if g_places is None else min(p_places, g_places)
        bound, suffix = Rational(1, 2 * 10**places), "+rounded"

    if size <= config.max_exact_digits:
        gv, pv = _exact_value(g), _exact_value(p)
        if gv is not None and pv is not None:
            diff = abs(gv - pv)
            equal = diff == 0 or (bound is not None and diff <= bound)
            return Judgement(bool(equal), "numeric-exact" + (suffix if diff and equal else ""))

    gv, pv = g.evalf(config.eval_digits), p.evalf(config.eval_digits)
    if not (_finite(gv) and _finite(pv)):
        return Judgement(bool(gv == pv), "numeric-special")
    if not (gv.is_number and pv.is_number):
        return NOT_APPLICABLE
    diff = abs(gv - pv)
    scale = max(abs(gv), abs(pv))
    equal = bool(diff <= config.rel_tol * scale)
    if not equal and bound is not None:
        equal = bool(diff <= bound * (1 + Rational(1, 10**9)))
        return Judgement(equal, "numeric-evalf" + (suffix if equal else ""))
    return Judgement(equal, "numeric-evalf")


def _exact_value(expr: Any) -> Any:
    """The expression as a sympy Rational if it evaluates to one, else None."""
    value = expr if expr.is_Rational else expr.doit()
    return value if value.is_Rational else None


def _finite(value: Any) -> bool:
    # heavy: sympy and friends load only in math worker processes
    from sympy import nan, oo, zoo

    return not value.has(oo, -oo, zoo, nan)


def digit_estimate(expr: Any, cap: float) -> float:
    """An estimate of the largest number of decimal digits (of the integer part or of the
    reciprocal) any power, factorial or exponential in the tree produces. Stops, returning
    inf, as soon as one exceeds ``cap``; the innermost nodes are measured first so that no
    node is evaluated before its arguments are known to be of a safe size."""
    # heavy: sympy and friends load only in math worker processes
    from sympy import Pow, exp, factorial, factorial2, gamma, postorder_traversal

    worst = 0.0
    for node in postorder_traversal(expr):
        if not getattr(node, "args", None) or not getattr(node, "is_number", False):
            continue
        if isinstance(node, Pow):
            base, power = _log10_abs(node.base), _log10_abs(node.exp)
            if base is None or power is None:
                return math.inf
            digits = _times_pow10(abs(base), power)
        elif isinstance(node, (factorial, factorial2, gamma)):
            n = _log10_abs(node.args[0])
            if n is None:
                return math.inf
            digits = _times_pow10(max(n, 0.0) + 0.5, n)
        elif isinstance(node, exp):
            x = _log10_abs(node.args[0])
            if x is None:
                return math.inf
            digits = _times_pow10(1 / math.log(10), x)
        else:
            continue
        if not math.isfinite(digits) or digits > cap:
            return math.inf
        worst = max(worst, digits)
    return worst


def _times_pow10(factor: float, log10_value: float) -> float:
    """factor * 10**log10_value without overflow (inf when huge)."""
    if factor == 0 or log10_value == -math.inf:
        return 0.0
    exponent = log10_value + math.log10(factor)
    return math.inf if exponent > 300 else 10**exponent


def _log10_abs(expr: Any) -> float | None:
    """log10 |expr| (-inf for zero), or None when it cannot be evaluated to a number.
    Works through mpmath, so values far beyond float range are fine."""
    # heavy: sympy and friends load only in math worker processes
    from mpmath import log10

    try:
        value = abs(expr.evalf(15))
        if not value.is_Number:
            return None
        if value == 0:
            return -math.inf
        return float(log10(value._to_mpmath(53)))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def symbolic_shortcut(gold: Any, pred: Any, config: MathCheckConfig) -> Judgement:
    """Decide plain expressions in the same variables without math-verify's ``simplify``:
    ``expand(gold - pred) == 0`` proves them equal, a differing value at a rational point
    (`spot_check`) proves them unequal; anything else is left to math-verify."""
    # heavy: sympy and friends load only in math worker processes
    from sympy import Expr, Integer, Pow, expand

    g, p = unwrap_relations(gold, pred)
    if (
        not (isinstance(g, Expr) and isinstance(p, Expr))
        or not g.free_symbols
        or g.free_symbols != p.free_symbols
    ):
        return NOT_APPLICABLE
    for e in (g, p):
        for node in e.atoms(Pow):
            if isinstance(node.exp, Integer) and abs(node.exp) > 64:
                return NOT_APPLICABLE
    if expand(exactify(g) - exactify(p)) == 0:
        return Judgement(True, "symbolic-expand")
    spot = spot_check(g, p, config)
    return spot if spot.equal is False else NOT_APPLICABLE


def spot_check(gold: Any, pred: Any, config: MathCheckConfig) -> Judgement:
    """Evaluate two symbolic expressions at a few rational points; a difference at any
    point proves them unequal (catches ``x + 10^{-20}`` vs ``x``, which math-verify's
    chopped evalf calls equal). NOT_APPLICABLE unless both are expressions in the same
    free symbols."""
    # heavy: sympy and friends load only in math worker processes
    from sympy import Expr, Rational

    gold, pred = unwrap_relations(gold, pred)
    if not (isinstance(gold, Expr) and isinstance(pred, Expr)):
        return NOT_APPLICABLE
    symbols = sorted(gold.free_symbols, key=str)
    if not symbols or set(symbols) != pred.free_symbols:
        return NOT_APPLICABLE
    g, p = exactify(gold), exactify(pred)
    primes = (7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)
    checked = 0
    for trial in range(2):
        point = {s: Rational(primes[(i + 3 * trial) % len(primes)], 5 + trial) for i, s in enumerate(symbols)}
        try:
            gv, pv = g.xreplace(point), p.xreplace(point)
        except Exception:  # noqa: BLE001 - an expression that cannot take the point proves nothing
            continue
        if not (_is_numeric(gv) and _is_numeric(pv)):
            continue
        j = compare_numbers(gv, pv, config)
        if j.equal is False:
            return Judgement(False, "spot-check", f"differ at {point}")
        if j.equal:
            checked += 1
    return Judgement(True, "spot-check") if checked else NOT_APPLICABLE
