"""The offline simulated teacher: for the demo workspace and the tests, never a model.

It answers problems whose solution it is told (through `ChatRequest.context`,
which real teachers ignore) and injects realistic faults at `fault_rate`,
recording each in the candidate's metadata (`simulated_fault`) so that
verifier failures can be checked against what was injected:

    math         arithmetic_slip, wrong_final_answer, missing_final_answer
    code         off_by_one, flipped_comparison, wrong_return, syntax_error, endless_loop
                 (mutants of the known solution, applied at AST positions)
    instruction  violated_constraint:<instruction id>
    open         refusal, off_topic, repetition
    write mode   additionally malformed_output (the structured answer cannot be parsed)
    a template schema (structured output): invalid_json, or the family's fault inside the fields

Everything is a pure function of (seed, messages, candidate index, fault rate,
context), so it is deterministic and cacheable like a real endpoint. Usage
tokens are word counts. It goes through the same engine, store, cache and
accounting as a real teacher.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import random
import re
from fractions import Fraction
from typing import Any

from curation.generation.constraints import END_PHRASES, SUPPORTED, describe, draw_constraints
from curation.generation.extract import ParseError, parse_written
from curation.generation.structured import example_instance
from curation.sandbox.extract import entry_function
from curation.teachers.base import ChatRequest, Choice, Completion, Teacher

VERSION = "1"
LABEL = "Simulated teacher — offline, for demos and tests"

MATH_FAULTS = ("arithmetic_slip", "wrong_final_answer", "missing_final_answer")
CODE_FAULTS = ("off_by_one", "flipped_comparison", "wrong_return", "syntax_error", "endless_loop")
OPEN_FAULTS = ("refusal", "off_topic", "repetition")


def _words(text: str) -> int:
    return len(text.split())


def _digest(*parts: Any) -> int:
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


class SimulatedTeacher(Teacher, name="simulated"):
    label = LABEL
    simulated = True

    def endpoint(self) -> str:
        return "simulated://offline"

    def source_label(self) -> str:
        return "simulated"

    async def list_models(self) -> list[str]:
        return ["simulated"]

    def cache_identity(self, request: ChatRequest) -> dict[str, Any]:
        return {
            "simulated": VERSION,
            "fault_rate": self.config.fault_rate,
            "candidates": list(request.candidates),
            "context": _digest(request.context),
        }

    async def complete(self, request: ChatRequest) -> Completion:
        if self.config.latency > 0:
            await asyncio.sleep(self.config.latency)
        messages_key = _digest(request.messages)
        candidates = request.candidates or list(range(request.n))
        choices = []
        for candidate in candidates:
            rng = random.Random(_digest(self.config.seed, messages_key, candidate))
            faulty = rng.random() < self.config.fault_rate
            text, meta = respond(request.context, rng, faulty)
            choices.append(Choice(text=text, finish_reason="stop", meta=meta))
        prompt_words = sum(_words(str(m.get("content", ""))) for m in request.messages)
        return Completion(
            choices=choices,
            prompt_tokens=prompt_words,
            completion_tokens=sum(_words(c.text) for c in choices),
            model="simulated",
        )


def respond(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, dict[str, Any]]:
    """(text, metadata) of one candidate. metadata always has `simulated_fault`."""
    family = context.get("family", "open")
    task = context.get("task", "solve")
    if context.get("schema") is not None:
        return _structured(context, rng, faulty)
    handler = _HANDLERS.get((family, task), _open_solve)
    text, fault, extra = handler(context, rng, faulty)
    return text, {"simulated_fault": fault, **extra}


def _structured(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, dict[str, Any]]:
    """A JSON object matching the template's schema, its answer fields taken from the
    family's plain answer (which carries the fault, if any); a faulty candidate is broken
    JSON (`invalid_json`) one time in two."""
    broken = '{"answer": "unfinished', {"simulated_fault": "invalid_json"}
    if faulty and rng.random() < 0.5:
        return broken
    family = context.get("family", "open")
    task = context.get("task", "solve")
    text, fault, extra = _HANDLERS.get((family, task), _open_solve)(context, rng, faulty)
    problem = context.get("problem")
    reference: dict[str, Any] = {}
    if task == "write":
        try:
            written = parse_written(family, text)
        except ParseError:
            return broken[0], {**broken[1], **extra}
        problem, text, reference = written["prompt"], written["response"], written["reference"]
    boxed = _boxed(text)
    answer = reference.get("answer") if task == "write" else boxed
    values = {
        "problem": problem,
        "question": problem,
        "instruction": problem,
        "solution": text,
        "response": text,
        "reasoning": text,
        "answer": answer if answer is not None else text,
        "tests": reference.get("tests"),
        "entry_point": reference.get("entry_point"),
    }
    fields = example_instance(context["schema"], {k: v for k, v in values.items() if v is not None})
    return json.dumps(fields, ensure_ascii=False), {"simulated_fault": fault, **extra}


# -- math ------------------------------------------------------------------------------

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _to_fraction(node: ast.AST) -> Fraction:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_to_fraction(node.operand)
    raise ValueError("not a number")


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if abs(as_float * 10**6 - round(as_float * 10**6)) < 1e-9:
        return f"{as_float:.6f}".rstrip("0").rstrip(".")
    return f"{value.numerator}/{value.denominator}"


def arithmetic_steps(expression: str) -> tuple[list[tuple[str, Fraction]], Fraction] | None:
    """Evaluation steps ("left op right", result), innermost first, of + - * / and
    negation over numbers; None if the expression is anything else."""
    try:
        tree = ast.parse(expression.strip().rstrip("."), mode="eval").body
    except SyntaxError:
        return None
    steps: list[tuple[str, Fraction]] = []

    def walk(node: ast.AST) -> Fraction:
        try:
            return _to_fraction(node)
        except ValueError:
            pass
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = walk(node.operand)
            result = -inner if isinstance(node.op, ast.USub) else inner
            steps.append(
                (f"-({_fmt(inner)})" if isinstance(node.op, ast.USub) else f"+({_fmt(inner)})", result)
            )
            return result
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            op = _OPS[type(node.op)]
            if op == "/" and right == 0:
                raise ZeroDivisionError
            result = {
                "+": left + right,
                "-": left - right,
                "*": left * right,
                "/": left / right if right else 0,
            }[op]
            steps.append((f"{_fmt(left)} {op} {_fmt(right)}", result))
            return result
        raise ValueError("unsupported")

    try:
        value = walk(tree)
    except (ValueError, ZeroDivisionError):
        return None
    return steps, value


def _perturb(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer near `answer`."""
    text = answer.strip()
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        if text.isalpha() and len(set(text)) > 1:
            return text[::-1] if text[::-1] != text else text + "s"
        return text + "1" if not text.endswith("1") else text[:-1] + "2"
    delta = rng.choice((-10, -2, -1, 1, 2, 10))
    if value.denominator != 1:
        return _fmt(value + Fraction(delta, value.denominator))
    return _fmt(value + delta)


def _expression_of(context: dict[str, Any]) -> str | None:
    hints = context.get("hints") or {}
    expression = hints.get("expression")
    if expression:
        return str(expression)
    problem = str(context.get("problem") or "")
    match = re.search(r"(?:Calculate|Compute|Evaluate|What is)\s+([-+*/().\d\s]+?)\s*[.?]?\s*$", problem)
    return match.group(1) if match else None


def _math_solve(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    answer = str(
        (context.get("hints") or {}).get("answer") or (context.get("reference") or {}).get("answer") or ""
    )
    expression = _expression_of(context)
    worked = arithmetic_steps(expression) if expression else None
    fault = rng.choice(MATH_FAULTS) if faulty else None
    lines: list[str] = []
    final = answer
    if worked and worked[0]:
        steps, value = worked
        final = answer or _fmt(value)
        slip_at = rng.randrange(len(steps)) if fault == "arithmetic_slip" else -1
        offset = Fraction(0)
        lines.append(f"We evaluate {' '.join(expression.split())} step by step.")
        for index, (text, result) in enumerate(steps):
            if index == slip_at:
                offset = Fraction(rng.choice((-10, -2, -1, 1, 2, 10)))
            shown = result + offset if index >= slip_at >= 0 else result
            lines.append(f"{text} = {_fmt(shown)}")
        if fault == "arithmetic_slip":
            final = _fmt(Fraction(final) + offset) if _is_number(final) else _perturb(final, rng)
    else:
        problem = str(context.get("problem") or "the problem").strip()
        lines.append(f"Let us work through this carefully: {problem[:200]}")
        lines.append("Breaking it into smaller parts and combining the results gives the final value.")
        if fault == "arithmetic_slip":
            final = _perturb(final, rng)
    if fault == "wrong_final_answer":
        lines.append(f"So the result is {final}.")
        final = _perturb(final, rng)
    if fault == "missing_final_answer":
        lines.append("Putting these together we obtain the value we were looking for.")
        return "\n".join(lines), fault, {}
    lines.append(f"\nThe final answer is \\boxed{{{final}}}.")
    return "\n".join(lines), fault, {}


def _is_number(text: str) -> bool:
    try:
        Fraction(text)
    except (ValueError, ZeroDivisionError):
        return False
    return True


_WORD_PROBLEMS = (
    (
        "{name} has {a} boxes of {item} with {b} in each box and gives away {c}. How many {item} are left?",
        lambda a, b, c: a * b - c,
        "{a} * {b} - {c}",
    ),
    (
        "A {item} costs {b} dollars. {name} buys {a} of them and pays with {c} extra dollars of tip. What is the total?",
        lambda a, b, c: a * b + c,
        "{a} * {b} + {c}",
    ),
    (
        "{name} reads {a} pages a day for {b} days and then {c} more pages. How many pages in total?",
        lambda a, b, c: a * b + c,
        "{a} * {b} + {c}",
    ),
    (
        "A tank holds {a} litres. {name} drains {b} litres per hour for {c} hours. How many litres remain?",
        lambda a, b, c: a * 10 - b * c,
        "{a} * 10 - {b} * {c}",
    ),
)
_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "stamps")


def _math_write(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    template, compute, expression_template = rng.choice(_WORD_PROBLEMS)
    a, b, c = rng.randint(3, 40), rng.randint(2, 12), rng.randint(1, 30)
    topic = (context.get("variables") or {}).get("topic") or "everyday life"
    problem = template.format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b, c=c)
    problem = f"({topic}) {problem}"
    truth = str(compute(a, b, c))
    expression = expression_template.format(a=a, b=b, c=c)
    fault = rng.choice((*MATH_FAULTS, "malformed_output")) if faulty else None
    inner_context = {"hints": {"expression": expression, "answer": truth}, "problem": problem}
    solution, inner_fault, _ = _math_solve(inner_context, rng, fault in MATH_FAULTS)
    if fault in MATH_FAULTS:
        fault = inner_fault
    claimed = str(_boxed(solution) or truth)
    if fault == "missing_final_answer":
        claimed = ""
    payload: dict[str, Any] = {"problem": problem, "solution": solution}
    if claimed:
        payload["answer"] = claimed
    text = "Here is a new problem with its solution.\n\n```json\n" + json.dumps(payload, indent=2) + "\n```"
    if fault == "malformed_output":
        text = text.replace('"solution":', '"solution" ', 1).replace("```json", "```", 1)
    return text, fault, {"simulated_true_answer": truth}


def _boxed(text: str) -> str | None:
    match = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return match[-1] if match else None


# -- code ------------------------------------------------------------------------------


class _Source:
    """Edits to Python source at AST positions (col offsets are UTF-8 byte offsets)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def index(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode("utf-8", "ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.index(node.lineno, node.col_offset), self.index(node.end_lineno, node.end_col_offset)

    def replace(self, start: int, end: int, new: str) -> str:
        return self.text[:start] + new + self.text[end:]


def _function(tree: ast.Module, entry_point: str | None) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The entry point as Python binds it (the solution, not an earlier stub), else the last function."""
    function = entry_function(tree, entry_point)
    if function is not None:
        return function
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return functions[-1] if functions else None


def _body_nodes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    nodes: list[ast.AST] = []
    for statement in body:
        nodes.extend(ast.walk(statement))
    return sorted((n for n in nodes if hasattr(n, "lineno")), key=lambda n: (n.lineno, n.col_offset))


_FLIP = {
    "<": ">",
    ">": "<",
    "<=": ">=",
    ">=": "<=",
    "==": "!=",
    "!=": "==",
    "in": "not in",
    "not in": "in",
    "is": "is not",
    "is not": "is",
}
_SIMPLE = (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Constant)


def mutate(code: str, kind: str, entry_point: str | None = None) -> str | None:
    """A mutant of `code` with one fault of `kind`, or None if the kind does not apply."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    function = _function(tree, entry_point)
    if function is None:
        return None
    source = _Source(code)
    nodes = _body_nodes(function)
    if kind == "off_by_one":
        for node in nodes:
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "range"
                and node.args
            ):
                stop = node.args[0] if len(node.args) == 1 else node.args[1]
                start, end = source.span(stop)
                segment = code[start:end]
                return source.replace(
                    start, end, f"{segment} - 1" if isinstance(stop, _SIMPLE) else f"({segment}) - 1"
                )
        for node in nodes:
            if isinstance(node, ast.Constant) and type(node.value) is int:
                start, end = source.span(node)
                return source.replace(start, end, str(node.value + 1))
        return None
    if kind == "flipped_comparison":
        for node in nodes:
            if isinstance(node, ast.Compare):
                _, op_start = source.span(node.left)
                comp_start, _ = source.span(node.comparators[0])
                between = code[op_start:comp_start]
                operator_text = " ".join(between.replace("(", " ").replace(")", " ").split())
                if operator_text in _FLIP:
                    return source.replace(
                        op_start,
                        comp_start,
                        between.replace(operator_text, _FLIP[operator_text], 1)
                        if operator_text in between
                        else f" {_FLIP[operator_text]} ",
                    )
        return None
    if kind == "wrong_return":
        returns = [n for n in nodes if isinstance(n, ast.Return) and n.value is not None]
        if not returns:
            return None
        value = returns[-1].value
        start, end = source.span(value)
        if isinstance(value, ast.Constant) and isinstance(value.value, bool):
            new = str(not value.value)
        else:
            args = [a.arg for a in function.args.args]
            new = args[0] if args and not (isinstance(value, ast.Name) and value.id == args[0]) else "None"
        return source.replace(start, end, new)
    if kind == "syntax_error":
        compound = [n for n in nodes if isinstance(n, ast.For | ast.While | ast.If | ast.With)]
        lineno = compound[0].lineno if compound else function.lineno
        line = source.lines[lineno - 1]
        stripped = line.rstrip()
        if stripped.endswith(":"):
            start = source.starts[lineno - 1] + len(stripped) - 1
            mutant = source.replace(start, start + 1, "")
        else:
            start = source.starts[lineno - 1] + len(stripped)
            mutant = source.replace(start, start, " (")
        try:
            ast.parse(mutant)
        except SyntaxError:
            return mutant
        return mutant + "\n    return (\n"
    if kind == "endless_loop":
        body = [
            n for n in function.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        ]
        first = body[0] if body else function.body[-1]
        indent = " " * first.col_offset
        at = source.starts[first.lineno - 1]
        loop = f"{indent}_step = 0\n{indent}while _step >= 0:\n{indent}    _step += 1\n"
        return code[:at] + loop + code[at:]
    raise ValueError(f"unknown code fault {kind!r}")


def _code_with_fault(
    code: str, entry_point: str | None, rng: random.Random, faulty: bool
) -> tuple[str, str | None]:
    if not faulty:
        return code, None
    order = list(CODE_FAULTS)
    first = rng.randrange(len(order))
    for kind in order[first:] + order[:first]:
        mutant = mutate(code, kind, entry_point)
        if mutant is not None and mutant != code:
            return mutant, kind
    return code + "\n    return None\n", "wrong_return"


def _code_solve(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    hints = context.get("hints") or {}
    reference = context.get("reference") or {}
    entry_point = reference.get("entry_point")
    if hints.get("canonical_solution") is not None:
        code = str(hints.get("code_prompt") or context.get("problem") or "") + str(
            hints["canonical_solution"]
        )
    elif hints.get("solution"):
        code = str(hints["solution"])
    else:
        name = entry_point or "solution"
        code = f"def {name}(*args):\n    return None\n"
    code, fault = _code_with_fault(code.rstrip() + "\n", entry_point, rng, faulty)
    intro = rng.choice(
        ("Here is the implementation:", "Here is a solution:", "The function can be written as follows:")
    )
    return f"{intro}\n\n```python\n{code}```\n", fault, {}


_CODE_TASKS = (
    (
        "count_vowels",
        "s: str",
        "int",
        "Return the number of vowels (a, e, i, o, u) in s, ignoring case.",
        "    count = 0\n    for ch in s.lower():\n        if ch in 'aeiou':\n            count += 1\n    return count\n",
        [("'Hello'", "2"), ("'xyz'", "0"), ("'AEIOU'", "5")],
    ),
    (
        "sum_multiples",
        "n: int, k: int",
        "int",
        "Return the sum of the positive multiples of k that are less than n.",
        "    total = 0\n    for i in range(k, n, k):\n        total += i\n    return total\n",
        [("10, 3", "18"), ("1, 2", "0"), ("20, 5", "30")],
    ),
    (
        "running_max",
        "xs: list",
        "list",
        "Return the running maximum of xs.",
        "    out = []\n    best = None\n    for x in xs:\n        if best is None or x > best:\n            best = x\n        out.append(best)\n    return out\n",
        [("[1, 3, 2, 5]", "[1, 3, 3, 5]"), ("[]", "[]"), ("[4, 1]", "[4, 4]")],
    ),
    (
        "second_largest",
        "xs: list",
        "int",
        "Return the second largest distinct value in xs (at least two distinct values).",
        "    values = sorted(set(xs))\n    return values[len(values) - 2]\n",
        [("[1, 5, 3]", "3"), ("[2, 2, 7]", "2"), ("[9, 8]", "8")],
    ),
    (
        "digit_sum",
        "n: int",
        "int",
        "Return the sum of the decimal digits of the non-negative integer n.",
        "    total = 0\n    while n > 0:\n        total += n % 10\n        n //= 10\n    return total\n",
        [("0", "0"), ("123", "6"), ("9999", "36")],
    ),
    (
        "is_palindrome",
        "s: str",
        "bool",
        "Return True if s reads the same backwards, ignoring case.",
        "    t = s.lower()\n    for i in range(len(t) // 2):\n        if t[i] != t[len(t) - 1 - i]:\n            return False\n    return True\n",
        [("'Level'", "True"), ("'abc'", "False"), ("''", "True")],
    ),
    (
        "count_above",
        "xs: list, limit: int",
        "int",
        "Return how many values in xs are strictly greater than limit.",
        "    return len([x for x in xs if x > limit])\n",
        [("[1, 5, 7], 4", "2"), ("[], 0", "0"), ("[3, 3], 3", "0")],
    ),
    (
        "clamp_all",
        "xs: list, low: int, high: int",
        "list",
        "Return xs with every value clamped to [low, high].",
        "    out = []\n    for x in xs:\n        if x < low:\n            x = low\n        elif x > high:\n            x = high\n        out.append(x)\n    return out\n",
        [("[0, 5, 10], 2, 8", "[2, 5, 8]"), ("[], 0, 1", "[]")],
    ),
)


def _code_write(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    name, params, returns, doc, body, cases = rng.choice(_CODE_TASKS)
    topic = (context.get("variables") or {}).get("topic") or "lists"
    prompt = f'def {name}({params}) -> {returns}:\n    """{doc}\n    (Practice task on {topic}.)\n    """\n'
    fault = rng.choice((*CODE_FAULTS, "malformed_output")) if faulty else None
    solution = prompt + body
    if fault in CODE_FAULTS:
        solution, fault = _code_with_fault(solution, name, rng, True)
    tests = "def check(candidate):\n" + "".join(
        f"    assert candidate({args}) == {out}\n" for args, out in cases
    )
    text = (
        f"<prompt>\n{prompt}</prompt>\n<entry_point>{name}</entry_point>\n"
        f"<solution>\n```python\n{solution}```\n</solution>\n<tests>\n```python\n{tests}```\n</tests>\n"
    )
    if fault == "malformed_output":
        text = text.replace("</tests>", "")
    return text, fault, {}


# -- instruction -----------------------------------------------------------------------

_SENTENCES = (
    "{topic} rewards a calm and steady approach.",
    "Start small and build on what already works.",
    "A short daily routine makes {topic} feel natural.",
    "Notes taken along the way help you see real progress.",
    "Friends who share the interest keep motivation high.",
    "Mistakes are part of learning and show where to focus next.",
    "Good tools matter less than regular practice.",
    "Set one clear goal for each week and review it on Sunday.",
    "Reading about {topic} from several sources gives a fuller picture.",
    "Rest is as important as effort when you want lasting results.",
    "Ask simple questions and write down the answers you find.",
    "Over time the small gains add up to something you can be proud of.",
)


def _count_words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _instruction_response(
    topic: str, ids: list[str], kwargs: list[dict[str, Any]], rng: random.Random, violate: str | None
) -> str:
    """A response meeting every constraint in `ids` except `violate` (which it breaks)."""
    args = dict(zip(ids, kwargs, strict=False))
    pool = [s.format(topic=topic) for s in _SENTENCES]
    rng.shuffle(pool)
    keywords = list((args.get("keywords:existence") or {}).get("keywords", []))
    if violate == "keywords:existence" and keywords:
        keywords = keywords[1:]
    keyword_sentence = [f"Keep {' and '.join(keywords)} in mind as you go."] if keywords else []
    length = args.get("length_constraints:number_words")
    bullets = (args.get("detectable_format:number_bullet_lists") or {}).get("num_bullets")
    if bullets is not None and violate == "detectable_format:number_bullet_lists":
        bullets = bullets + 1 if rng.random() < 0.5 or bullets <= 1 else bullets - 1
    end_phrase = (args.get("startend:end_checker") or {}).get("end_phrase")

    def assemble(count: int) -> str:
        chosen = [pool[i % len(pool)] for i in range(count)]
        if bullets is not None:
            items = chosen[:bullets] if len(chosen) >= bullets else chosen + pool[: bullets - len(chosen)]
            rest = chosen[bullets:]
            body = f"Here are some thoughts on {topic}.\n\n" + "\n".join(f"* {s}" for s in items)
            if rest or keyword_sentence:
                body += "\n\n" + " ".join(rest + keyword_sentence)
        else:
            body = " ".join([f"Here are some thoughts on {topic}."] + chosen + keyword_sentence)
        if end_phrase:
            if violate == "startend:end_checker":
                body += f"\n\n{end_phrase} Thanks for reading."
            else:
                body += f"\n\n{end_phrase}"
        return body

    count = 3
    if length is not None:
        target = int(length["num_words"])
        at_least = length["relation"] == "at least"
        if violate == "length_constraints:number_words":
            at_least = not at_least
        if at_least:
            while _count_words(assemble(count)) < target + 5 and count < 200:
                count += 1
        else:
            count = 3
            while count > 0 and _count_words(assemble(count)) >= target - 5:
                count -= 1
    text = assemble(count)
    if "change_case:english_lowercase" in args:
        text = text.lower()
        if violate == "change_case:english_lowercase":
            text = text.replace("here are", "Here Are", 1)
    if violate == "punctuation:no_comma":
        text = text.replace(". ", ", and ", 1) if ". " in text else text + ", indeed"
    return text


def _instruction_solve(
    context: dict[str, Any], rng: random.Random, faulty: bool
) -> tuple[str, str | None, dict]:
    reference = context.get("reference") or {}
    ids = list(reference.get("instruction_id_list") or [])
    kwargs = list(reference.get("kwargs") or [{} for _ in ids])
    topic = (
        (context.get("hints") or {}).get("topic")
        or (context.get("variables") or {}).get("topic")
        or "this topic"
    )
    supported = [i for i in ids if i in SUPPORTED]
    violate = rng.choice(supported) if faulty and supported else None
    text = _instruction_response(topic, ids, kwargs, rng, violate)
    extra = (
        {}
        if len(supported) == len(ids)
        else {"simulated_note": "some constraints are unknown to the simulator"}
    )
    return text, (f"violated_constraint:{violate}" if violate else None), extra


def _instruction_write(
    context: dict[str, Any], rng: random.Random, faulty: bool
) -> tuple[str, str | None, dict]:
    topic = (context.get("variables") or {}).get("topic") or "daily habits"
    ids, kwargs = draw_constraints(rng, rng.randint(1, 3))
    instruction = f"Write a short piece of advice about {topic}. " + " ".join(
        describe(i, k) for i, k in zip(ids, kwargs, strict=True)
    )
    malformed = faulty and rng.random() < 0.2
    violate = rng.choice(ids) if faulty and not malformed else None
    response = _instruction_response(topic, ids, kwargs, rng, violate)
    payload = {"instruction": instruction, "instruction_id_list": ids, "kwargs": kwargs, "response": response}
    text = "```json\n" + json.dumps(payload, indent=2) + "\n```"
    if malformed:
        text = text.replace('"instruction_id_list"', "instruction_id_list", 1)
        return text, "malformed_output", {}
    return text, (f"violated_constraint:{violate}" if violate else None), {}


# -- open ------------------------------------------------------------------------------

_OPEN_OPENERS = (
    "Good question.",
    "Here is a practical way to think about it.",
    "Short answer: it depends, but a few ideas help.",
)
_OPEN_POINTS = (
    "Begin with the goal you actually care about and work backwards from it.",
    "Try the simplest option first and only add complexity when it earns its place.",
    "Talk to someone who has done it before; a ten minute chat can save a week.",
    "Write down what you expect to happen so you can compare it with what does happen.",
    "Keep a small budget of time for mistakes because they will come.",
    "Check your progress at regular intervals and adjust instead of starting over.",
)


def _open_answer(question: str, rng: random.Random, faulty: bool) -> tuple[str, str | None]:
    fault = rng.choice(OPEN_FAULTS) if faulty else None
    subject = question.strip().rstrip("?.!")[:120] or "your question"
    if fault == "refusal":
        return "I'm sorry, but I can't help with that request.", fault
    points = rng.sample(_OPEN_POINTS, 3)
    if fault == "off_topic":
        return (
            "Let me tell you about the history of the printing press instead. It was developed in the fifteenth "
            "century and changed how ideas spread across Europe."
        ), fault
    text = f'{rng.choice(_OPEN_OPENERS)} On "{subject}":\n\n' + "\n".join(
        f"{i + 1}. {p}" for i, p in enumerate(points)
    )
    text += "\n\nIn short, small deliberate steps beat big uncertain leaps."
    if fault == "repetition":
        text += "\n\n" + " ".join([points[0]] * 4)
    return text, fault


def _open_solve(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    text, fault = _open_answer(str(context.get("problem") or ""), rng, faulty)
    return text, fault, {}


def _open_write(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    topic = (context.get("variables") or {}).get("topic") or "learning something new"
    question = f"What is a sensible way to get started with {topic}?"
    malformed = faulty and rng.random() < 0.25
    answer, fault = _open_answer(question, rng, faulty and not malformed)
    text = "```json\n" + json.dumps({"question": question, "answer": answer}, indent=2) + "\n```"
    if malformed:
        return text.replace('"answer":', '"answer" ', 1), "malformed_output", {}
    return text, fault, {}


_FOLLOWUPS = (
    "Thanks. Could you give a concrete example of {subject}?",
    "What is the most common mistake people make with {subject}?",
    "How would you explain {subject} to a beginner in two sentences?",
    "Which of those points matters most, and why?",
)


def _followup(context: dict[str, Any], rng: random.Random, faulty: bool) -> tuple[str, str | None, dict]:
    """The user's next message in a multi-turn conversation (the teacher playing the user)."""
    last_answer = str(context.get("problem") or "")
    quoted = re.findall(r'On "([^"]{3,80})"', last_answer)
    subject = quoted[0] if quoted else "this"
    turn = int(context.get("turn") or 2)
    return f"(turn {turn}) " + rng.choice(_FOLLOWUPS).format(subject=subject), None, {}


_HANDLERS = {
    ("open", "followup"): _followup,
    ("instruction", "followup"): _followup,
    ("math", "solve"): _math_solve,
    ("math", "write"): _math_write,
    ("code", "solve"): _code_solve,
    ("code", "write"): _code_write,
    ("instruction", "solve"): _instruction_solve,
    ("instruction", "write"): _instruction_write,
    ("open", "solve"): _open_solve,
    ("open", "write"): _open_write,
}

__all__ = ["LABEL", "SimulatedTeacher", "END_PHRASES", "arithmetic_steps", "mutate", "respond"]
