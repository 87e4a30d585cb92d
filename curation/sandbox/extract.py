"""Get the program to run out of a model response (text only: nothing is executed)."""

from __future__ import annotations

import ast
import re

from curation.generation.extract import defines, find_code, strip_reasoning

_LAST_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.M)


def guess_entry_point(prompt: str) -> str | None:
    """The last top-level function the prompt defines (HumanEval's convention)."""
    names = _LAST_DEF.findall(prompt)
    return names[-1] if names else None


def entry_function(
    tree: ast.Module, entry_point: str | None
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The definition of `entry_point` that Python binds: the last one at module level (a
    later definition replaces an earlier one, such as a prompt's stub), else the last one
    anywhere (inside a class or an `if`); None if nothing defines it."""
    if not entry_point:
        return None
    found = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point
    ]
    top_level = [node for node in found if any(node is statement for statement in tree.body)]
    candidates = top_level or found
    return max(candidates, key=lambda node: (node.lineno, node.col_offset)) if candidates else None


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

    The code is what `find_code` finds in the answer (the rule shared with generation),
    else the whole answer without its reasoning: "raw response". If the prompt defines
    `entry_point` and the code does not, the code is the completion of the prompt's function (HumanEval): prompt +
    code. If both define it and the prompt is Python, the prompt goes first anyway so
    its imports and helpers exist; the response's definition, coming later, wins."""
    found = find_code(response, entry_point)
    code, how = found if found is not None else (strip_reasoning(response), "raw response")
    if entry_point and prompt and defines(prompt, entry_point):
        joiner = "" if prompt.endswith("\n") else "\n"
        if not defines(code, entry_point):
            return prompt + joiner + code, f"{how}, completing the prompt"
        if _parses(prompt):
            return prompt + joiner + "\n" + code, f"{how}, after the prompt"
    return code, how
