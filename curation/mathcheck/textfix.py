"""Text-level helpers around math-verify: safe rewrites before it parses, and
detection of extractions it parsed lossily.

Nothing here parses or evaluates model text; these are plain string operations.
"""

from __future__ import annotations

import re

# latex2sympy2_extended turns \mathrm{..} into \text{..} and then strips a trailing
# \text{..} as a unit, so "1 - \frac{1}{\mathrm{e}}" becomes "1 - \frac{1}{" (parsed as 1)
# and "1 + \frac{1}{\mathrm{e}}" likewise: a false positive (math-verify issue #14).
# Upright e and i are the constants, never units, so they are rewritten to plain letters.
_UPRIGHT_CONSTANT = re.compile(r"\\(?:mathrm|mathit|operatorname|rm)\s*\{\s*([ei])\s*\}|\{\\rm\s+([ei])\}")

# "\sqrt(2)" is not LaTeX; math-verify's fix-up rewrites it to "\\sqrt{2}" (a line break
# followed by sqrt), so "4\sqrt(2)" parses as 4 (math-verify issue #41).
_SQRT_PAREN = re.compile(r"\\sqrt\s*\(([^()]*)\)")

_ELLIPSIS = re.compile(r"\\[lcv]?dots|\.\.\.|…")
_EMPTY_ITEM = re.compile(r"(?:^|,)\s*(?:,|$)")
_RATIO_OR_TIME = re.compile(r"\d\s*:\s*\d")
_LINE_BREAK = re.compile(r"\\\\")
_MATRIX_ENV = re.compile(r"\\begin\{(?:[pbBvV]?matrix|array|cases|aligned|align\*?|gathered|smallmatrix)\}")


def prepare_text(text: str) -> str:
    """Rewrite the few constructs that make math-verify's normaliser lose part of an answer."""
    if "\\" not in text:
        return text
    text = _UPRIGHT_CONSTANT.sub(lambda m: m.group(1) or m.group(2), text)
    return _SQRT_PAREN.sub(r"\\sqrt{\1}", text)


def lossy_reason(extracted: str) -> str | None:
    """Why the extracted answer string cannot have been parsed faithfully, or None.

    math-verify turns sequences ("1, 2, \\ldots, n"), ratios and clock times
    ("1:2:3", "12:00"), strings cut at an unbalanced brace and strings with a
    LaTeX line break into some unrelated number, which then compares equal to
    the other side's unrelated number (issue #14). Such answers are compared as
    normalised strings instead.
    """
    if extracted.count("{") != extracted.count("}"):
        return "unbalanced braces"
    if _ELLIPSIS.search(extracted):
        return "ellipsis"
    if "," in extracted and _EMPTY_ITEM.search(extracted):
        return "empty list item"
    if _RATIO_OR_TIME.search(extracted):
        return "ratio or time"
    if _LINE_BREAK.search(extracted) and not _MATRIX_ENV.search(extracted):
        return "line break"
    return None


_STRIP_COMMANDS = re.compile(r"\\(?:left|right|displaystyle|[,;:! ])|\s+|\$")
_FRAC_VARIANT = re.compile(r"\\[dt]frac\b")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}")


def normalize_answer_string(text: str) -> str:
    """A comparison key for answers compared as strings: spacing and sizing commands
    dropped, text wrappers unwrapped, a trailing full stop removed, case kept."""
    text = _TEXT_WRAPPER.sub(r"\1", text)
    text = _FRAC_VARIANT.sub(r"\\frac", text)
    text = _STRIP_COMMANDS.sub("", text)
    return text.rstrip(".")
