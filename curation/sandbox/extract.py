"""Get the program to run out of a model response (text only: nothing is executed)."""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.S | re.M)
_PYTHON_TAGS = ("python", "py", "python3", "py3")
_LAST_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.M)


def defines(code: str, name: str) -> bool:
    """Does `code` define a function `name` (at any indentation)?"""
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.M) is not None


_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*(?:python3?|py3?)[ \t]*\n", re.M | re.I)


def fenced_blocks(text: str) -> list[str]:
    """Python fenced blocks of a markdown text; untagged blocks if none is tagged; the
    rest of the text after an unclosed ```python fence (a truncated answer) if none."""
    tagged, untagged = [], []
    for match in _FENCE.finditer(text):
        lang = match.group(2).lower()
        if lang in _PYTHON_TAGS:
            tagged.append(match.group(3))
        elif not lang:
            untagged.append(match.group(3))
    if tagged or untagged:
        return tagged or untagged
    opened = list(_OPEN_FENCE.finditer(text))
    return [text[opened[-1].end() :]] if opened else []


def guess_entry_point(prompt: str) -> str | None:
    """The last top-level function the prompt defines (HumanEval's convention)."""
    names = _LAST_DEF.findall(prompt)
    return names[-1] if names else None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def prompt_prelude(prompt: str, entry_point: str | None) -> str | None:
    """The prompt as trusted code for the tests' namespace, if it is Python that
    defines the entry point (HumanEval); else None."""
    if entry_point and prompt and defines(prompt, entry_point) and _parses(prompt):
        return prompt
    return None


def extract_code(response: str, prompt: str = "", entry_point: str | None = None) -> tuple[str, str]:
    """(program, how it was obtained).

    Fenced ``python`` blocks: the last one defining `entry_point`, else the last one;
    otherwise the raw response. If the prompt defines `entry_point` and the code does
    not, the code is the completion of the prompt's function (HumanEval): prompt +
    code. If both define it and the prompt is Python, the prompt goes first anyway so
    its imports and helpers exist; the response's definition, coming later, wins."""
    blocks = fenced_blocks(response)
    if blocks:
        chosen = [b for b in blocks if entry_point and defines(b, entry_point)]
        code = (chosen or blocks)[-1]
        how = "fenced block"
    else:
        code = response
        how = "raw response"
    if entry_point and prompt and defines(prompt, entry_point):
        joiner = "" if prompt.endswith("\n") else "\n"
        if not defines(code, entry_point):
            return prompt + joiner + code, f"{how}, completing the prompt"
        if _parses(prompt):
            return prompt + joiner + "\n" + code, f"{how}, after the prompt"
    return code, how
