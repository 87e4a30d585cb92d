"""Reading teacher output. Model output is hostile: only string processing and
`json.loads` here, nothing is ever evaluated."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_ANSWER_LINE = re.compile(
    r"(?:final answer|the answer is|answer:)\s*(?:is\s*)?[:=]?\s*\$?([^\n$]+?)\$?\s*\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def strip_reasoning(text: str) -> str:
    """Drop <think>...</think> sections (and an unclosed trailing one) of reasoning models."""
    text = _THINK.sub("", text)
    start = text.lower().find("<think>")
    return text[:start] if start >= 0 else text


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces balanced."""
    best = None
    for marker in ("\\boxed", "\\fbox"):
        position = text.rfind(marker)
        if position > (best[0] if best else -1):
            best = (position, marker)
    if best is None:
        return None
    index = best[0] + len(best[1])
    while index < len(text) and text[index] == " ":
        index += 1
    if index >= len(text) or text[index] != "{":
        return None
    depth = 0
    for end in range(index, len(text)):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1 : end].strip()
    return None


def extract_answer(text: str) -> tuple[str | None, str | None]:
    """(answer, how): the last boxed answer, else an "answer is X" line."""
    body = strip_reasoning(text)
    boxed = last_boxed(body)
    if boxed is not None:
        return boxed, "boxed"
    matches = _ANSWER_LINE.findall(body)
    if matches:
        return matches[-1].strip(), "answer_line"
    return None, None


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block."""
    return [(lang.lower(), code) for lang, code in _FENCE.findall(text)]


_PYTHON_TAGS = ("python", "py", "python3", "py3")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\r?\n)+")
_LOOKS_LIKE_CODE = re.compile(r"^(?:from\s+\S+\s+import|import\s|def\s|class\s)")


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


def find_code(text: str, entry_point: str | None = None) -> tuple[str, str] | None:
    """(code, how) of a model's answer, or None if it holds no code; the one rule for
    generation's metadata and for the program the sandbox runs.

    Reasoning (<think>) is dropped first: a draft there is not the answer. Then, of the
    fenced Python blocks (``python``-tagged ones, else untagged ones, else the rest of a
    truncated ```python block), the last one defining `entry_point`, else the last one:
    "fenced block". With no block, an answer that starts like Python (import, def,
    class) is taken whole: "raw response"."""
    body = strip_reasoning(text)
    blocks = fenced_blocks(body)
    if blocks:
        defining = [block for block in blocks if entry_point and defines(block, entry_point)]
        return (defining or blocks)[-1].rstrip() + "\n", "fenced block"
    if _LOOKS_LIKE_CODE.match(body.lstrip()):
        return _LEADING_BLANK_LINES.sub("", body).rstrip() + "\n", "raw response"
    return None


def extract(family: str, text: str, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata fields extracted from a raw completion, by family."""
    if family == "math":
        answer, how = extract_answer(text)
        return {"extracted_answer": answer, "answer_format": how}
    if family == "code":
        found = find_code(text, (reference or {}).get("entry_point"))
        return {"extracted_code": found[0] if found else None}
    return {"extracted_response": strip_reasoning(text).strip()}


# -- structured output (write mode) ----------------------------------------------------


class ParseError(ValueError):
    pass


def _json_objects(text: str) -> list[dict[str, Any]]:
    """JSON objects in fenced ```json blocks, else any top-level {...} that decodes."""
    found: list[dict[str, Any]] = []
    for lang, code in code_blocks(text):
        if lang in ("json", ""):
            try:
                value = json.loads(code)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found or embedded_json_objects(text)


def embedded_json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in `text` (outermost ones, in order)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = text.find("{")
    while index >= 0:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = text.find("{", end)
    return found


def _tagged(text: str, name: str) -> str | None:
    match = re.search(rf"<{name}>\s*(.*?)\s*</{name}>", text, re.DOTALL | re.IGNORECASE)
    return match.group(1) if match else None


def _unfence(text: str) -> str:
    blocks = code_blocks(text)
    if blocks:
        return blocks[-1][1].rstrip() + "\n"
    return text.strip() + "\n"


def parse_structured(text: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a structured answer: a JSON object (fenced or bare) with `required`
    keys, else tagged sections <key>...</key>. Raises ParseError naming what is missing."""
    body = strip_reasoning(text)
    objects = _json_objects(body)
    for value in reversed(objects):
        if all(key in value for key in required):
            return {key: value[key] for key in (*required, *optional) if key in value}
    tagged = {key: _tagged(body, key) for key in (*required, *optional)}
    if all(tagged[key] is not None for key in required):
        return {key: value for key, value in tagged.items() if value is not None}
    if objects:
        missing = [key for key in required if key not in objects[-1]]
        raise ParseError(f"JSON answer lacks {', '.join(missing)}")
    present = [key for key in required if tagged[key] is not None]
    if present:
        missing = [key for key in required if tagged[key] is None]
        raise ParseError(f"tagged answer lacks <{'>, <'.join(missing)}>")
    raise ParseError(f"no JSON object or tagged sections with {', '.join(required)} found")


def _need_text(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f"'{key}' is empty or not text")
    return value.strip()


def parse_written(family: str, text: str) -> dict[str, Any]:
    """A written task as {prompt, response, reference, extra}: the teacher wrote the problem
    and its solution. Raises ParseError."""
    if family == "math":
        fields = parse_structured(text, ("problem", "solution"), ("answer",))
        problem, solution = _need_text(fields, "problem"), _need_text(fields, "solution")
        answer = fields.get("answer")
        answer = str(answer).strip() if answer not in (None, "") else extract_answer(solution)[0]
        if not answer:
            raise ParseError("no final answer (neither 'answer' nor \\boxed{} in the solution)")
        return {"prompt": problem, "response": solution, "reference": {"answer": answer}}
    if family == "code":
        fields = parse_structured(text, ("prompt", "solution", "tests"), ("entry_point",))
        prompt = _unfence(_need_text(fields, "prompt")).rstrip("\n")
        solution = _unfence(_need_text(fields, "solution"))
        tests = _unfence(_need_text(fields, "tests"))
        entry_point = str(fields.get("entry_point") or "").strip()
        if not entry_point:
            names = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", prompt, re.MULTILINE)
            if not names:
                raise ParseError("no entry_point and no function defined in 'prompt'")
            entry_point = names[-1]
        if not re.fullmatch(r"[A-Za-z_]\w*", entry_point):
            raise ParseError(f"entry_point {entry_point[:40]!r} is not a Python name")
        return {
            "prompt": prompt,
            "response": f"```python\n{solution}```",
            "reference": {"tests": tests, "entry_point": entry_point},
        }
    if family == "instruction":
        fields = parse_structured(text, ("instruction", "instruction_id_list", "response"), ("kwargs",))
        instruction, response = _need_text(fields, "instruction"), _need_text(fields, "response")
        ids = fields["instruction_id_list"]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ParseError("'instruction_id_list' must be a non-empty list of strings")
        kwargs = fields.get("kwargs") or [{} for _ in ids]
        if (
            not isinstance(kwargs, list)
            or len(kwargs) != len(ids)
            or not all(isinstance(k, dict) for k in kwargs)
        ):
            raise ParseError("'kwargs' must be a list with one object per instruction id")
        return {
            "prompt": instruction,
            "response": response,
            "reference": {"instruction_id_list": ids, "kwargs": kwargs},
        }
    fields = parse_structured(text, ("question", "answer"))
    return {
        "prompt": _need_text(fields, "question"),
        "response": _need_text(fields, "answer"),
        "reference": {},
    }


# -- self-consistency ------------------------------------------------------------------

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def normalise_answer(answer: str | None) -> str | None:
    """A simple canonical form for comparing final answers: whitespace, $, \\text{},
    thousands separators, trailing zeros and trailing units of punctuation removed."""
    if answer is None:
        return None
    text = _TEXT_WRAPPERS.sub(r"\1", str(answer)).strip()
    text = (
        text.replace("$", "")
        .replace("\\!", "")
        .replace("\\,", "")
        .replace("\\left", "")
        .replace("\\right", "")
    )
    text = text.strip().rstrip(".").strip()
    text = re.sub(r"\\d?frac\{([^{}]+)\}\{([^{}]+)\}", r"\1/\2", text)
    text = re.sub(r"\s+", "", text).lower()
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    if re.fullmatch(r"[-+]?\d+\.\d+", text):
        text = text.rstrip("0").rstrip(".")
    if text.startswith("+"):
        text = text[1:]
    if text in ("-0", ""):
        text = "0" if text == "-0" else text
    return text or None


def consistency(answers: list[str | None]) -> dict[str, Any]:
    """Majority answer and agreement over the candidates of one item (None = no answer)."""
    normalised = [normalise_answer(a) for a in answers]
    votes = Counter(a for a in normalised if a is not None)
    if not votes:
        return {"majority_answer": None, "agreement": 0.0, "k": len(answers), "votes": {}}
    majority, count = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return {
        "majority_answer": majority,
        "agreement": round(count / len(answers), 4),
        "k": len(answers),
        "votes": dict(votes.most_common(10)),
    }
