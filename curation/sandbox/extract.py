"""Get the program to run out of a model response (text only: nothing is executed)."""

from __future__ import annotations

import ast
import re

_PYTHON_TAGS = ("python", "py", "python3", "py3")
_LAST_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.M)


def defines(code: str, name: str) -> bool:
    """Does `code` define a function `name` (at any indentation)?"""
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.M) is not None


def _fence(line: str) -> tuple[str, str] | None:
    """(fence marker, language) if `line` opens or closes a fenced block."""
    stripped = line.strip()
    char = stripped[:1]
    if char not in ("`", "~"):
        return None
    marker = stripped[: len(stripped) - len(stripped.lstrip(char))]
    if len(marker) < 3:
        return None
    info = stripped[len(marker) :].split()
    return marker, (info[0].lower() if info else "")


def fenced_blocks(text: str) -> list[str]:
    """Python fenced blocks of a markdown text; untagged blocks if none is tagged; the
    rest of the text after an unclosed ```python fence (a truncated answer) if none.

    One pass over the lines (no backtracking regex over model output)."""
    tagged: list[str] = []
    untagged: list[str] = []
    lines = text.splitlines(keepends=True)
    opened: tuple[str, str, int] | None = None
    for i, line in enumerate(lines):
        fence = _fence(line)
        if fence is None:
            continue
        marker, lang = fence
        if opened is None:
            opened = (marker, lang, i + 1)
        elif marker[0] == opened[0][0] and len(marker) >= len(opened[0]) and not lang:
            block = "".join(lines[opened[2] : i])
            if opened[1] in _PYTHON_TAGS:
                tagged.append(block)
            elif not opened[1]:
                untagged.append(block)
            opened = None
    if tagged or untagged:
        return tagged or untagged
    if opened is not None and opened[1] in _PYTHON_TAGS:
        return ["".join(lines[opened[2] :])]
    return []


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
