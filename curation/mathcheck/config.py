"""Settings of the math answer check, shared by the parent and its worker processes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

DecimalPolicy = Literal["exact", "rounded"]


@dataclass(frozen=True)
class MathCheckConfig:
    """How answers are extracted, compared and time-limited.

    Decimals (``decimal_policy``):

    * ``"exact"`` (default): a decimal is taken at face value. ``0.5`` equals
      ``1/2``, but ``0.3333`` does not equal ``1/3`` and ``3.1416`` does not equal
      ``\\pi``: a rounded answer to an exact problem counts as wrong. The one
      leniency: when the *reference* is a bare decimal with d places (``0.33``) and
      the answer is not a decimal (``\\frac{1}{3}``), the answer is accepted if it
      rounds to the reference at d places, because the reference was evidently
      rounded and the exact value is at least as good. Two decimals must be
      equal as numbers (``0.330`` equals ``0.33``; ``0.333`` does not).
    * ``"rounded"``: additionally, a decimal answer with k >= ``min_decimal_places``
      places is accepted when it is the exact value rounded to k places
      (|answer - exact| <= 0.5 * 10^-k); with a decimal reference of d places the
      coarser of k and d is used. Lenient by design: ``2.46`` then matches a
      reference of ``2.5``.

    Time limits: ``parse_timeout`` and ``compare_timeout`` are handed to
    math-verify (its ``signal.alarm`` timeouts, valid in a worker's main thread);
    ``guard_timeout`` bounds this package's own exact-arithmetic check the same way.
    ``hard_timeout`` is the wall-clock limit per sample enforced by the parent: a
    worker still busy after it is killed and replaced, since a signal cannot
    interrupt a long C-level computation (a huge integer power, say).
    ``worker_memory_mb`` caps each worker's address space (0 = no cap).

    ``fast_parse`` makes workers parse LaTeX in ANTLR's SLL mode first, falling back
    to full LL on a syntax error, and build integer literals directly instead of via
    sympy's string parser (`curation.mathcheck.speedups`): identical results (checked
    on 6,000 texts), about a third of the parsing time.
    """

    decimal_policy: DecimalPolicy = "exact"
    min_decimal_places: int = 2
    #: Relative tolerance for comparing two numbers evaluated to ``eval_digits`` digits.
    #: It only absorbs evaluation round-off; imprecise answers are the decimal policy's business.
    rel_tol: float = 1e-30
    eval_digits: int = 50
    #: Above this many decimal digits an intermediate integer is not computed exactly.
    max_exact_digits: int = 100_000
    #: Above this many digits (of the exponent of 10) a number is not evaluated at all.
    max_eval_digits: float = 1e15
    #: Only accept answers introduced by an anchor (\boxed, "final answer is", "answer:").
    require_anchor: bool = True
    parse_timeout: int = 5
    compare_timeout: int = 5
    guard_timeout: int = 5
    hard_timeout: float = 30.0
    worker_memory_mb: int = 3072
    fast_parse: bool = True

    def __post_init__(self) -> None:
        if self.decimal_policy not in ("exact", "rounded"):
            raise ValueError(f"decimal_policy must be 'exact' or 'rounded', not {self.decimal_policy!r}")
        if self.hard_timeout <= 0:
            raise ValueError("hard_timeout must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MathCheckConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
