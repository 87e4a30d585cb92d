"""Test strength: do the tests notice when the solution is subtly broken?

`generate_mutants` makes small single-site changes to a solution with `ast`
(flipped comparison, off-by-one integer constant, swapped arithmetic operator,
and/or swap, negated ``if``, ``return None``); `mutation_check` runs the tests
against each mutant in the sandbox. A mutant the tests still pass "survives"; tests
that let mutants survive are weak. Some mutants are equivalent to the original (no
test could tell them apart), so survivors are listed for a human to judge.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from curation.sandbox.bwrap import MODE_BWRAP, SandboxLimits, UidPool
from curation.sandbox.execute import CodeJob, CodeResult, run_many
from curation.sandbox.extract import entry_function

_COMPARE_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
}
_SYMBOLS = {
    ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%",
    ast.And: "and", ast.Or: "or",
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    description: str
    line: int
    code: str


Mutation = tuple[str, Callable[[Any], None]]


def _mutations(node: ast.AST) -> list[Mutation]:
    """(description, apply-in-place) for every mutation possible at `node`."""
    out: list[Mutation] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            new = _COMPARE_FLIPS.get(type(op))
            if new is not None:
                out.append((f"{_SYMBOLS[type(op)]} -> {_SYMBOLS[new]}", _set_item("ops", i, new)))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        new_op = _BINOP_SWAPS.get(type(node.op))
        if new_op is not None:
            out.append((f"{_SYMBOLS[type(node.op)]} -> {_SYMBOLS[new_op]}", _set_attr("op", new_op)))
    elif isinstance(node, ast.BoolOp):
        new_bool = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append((f"{_SYMBOLS[type(node.op)]} -> {_SYMBOLS[new_bool]}", _set_attr("op", new_bool)))
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        out.append((f"{node.value} -> {node.value + 1}", _bump_constant))
    elif isinstance(node, ast.If):
        out.append(("negated if", _negate_test))
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            out.append(("return None", _return_none))
    return out


def _set_item(attr: str, index: int, cls: type) -> Callable[[Any], None]:
    def apply(node: Any) -> None:
        getattr(node, attr)[index] = cls()

    return apply


def _set_attr(attr: str, cls: type) -> Callable[[Any], None]:
    def apply(node: Any) -> None:
        setattr(node, attr, cls())

    return apply


def _bump_constant(node: Any) -> None:
    node.value += 1


def _negate_test(node: Any) -> None:
    node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)


def _return_none(node: Any) -> None:
    node.value = ast.Constant(value=None)


def _scope_index(tree: ast.Module, entry_point: str | None) -> int:
    """Index (in ast.walk order) of the node to mutate inside: the last definition of
    `entry_point` (the solution, not a prompt stub or a helper), else the module."""
    function = entry_function(tree, entry_point)
    if function is None:
        return 0
    return next(i for i, node in enumerate(ast.walk(tree)) if node is function)


def _body_nodes(scope: ast.AST) -> list[ast.AST]:
    """Nodes of `scope` in walk order, minus docstrings and annotations."""
    skip: set[int] = set()
    for node in ast.walk(scope):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in [node.returns, *(a.annotation for a in ast.walk(node.args) if isinstance(a, ast.arg))]:
                if sub is not None:
                    skip.update(id(n) for n in ast.walk(sub))
        if isinstance(node, ast.AnnAssign):
            skip.update(id(n) for n in ast.walk(node.annotation))
    return [n for n in ast.walk(scope) if id(n) not in skip]


def generate_mutants(code: str, entry_point: str | None = None, *, limit: int = 12) -> list[Mutant]:
    """Up to `limit` distinct, compilable single-site mutants, spread over the code."""
    try:
        tree = ast.parse(code)
        original = ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    scope_at = _scope_index(tree, entry_point)
    sites: list[tuple[int, int, str, int]] = []
    for node_index, node in enumerate(_body_nodes(list(ast.walk(tree))[scope_at])):
        for mutation_index, (description, _apply) in enumerate(_mutations(node)):
            sites.append((node_index, mutation_index, description, getattr(node, "lineno", 0)))
    if len(sites) > limit * 3:
        step = len(sites) / (limit * 3)
        sites = [sites[int(i * step)] for i in range(limit * 3)]
    mutants: list[Mutant] = []
    seen = {original}
    for node_index, mutation_index, description, line in sites:
        if len(mutants) >= limit:
            break
        try:
            mutated = copy.deepcopy(tree)
            node = _body_nodes(list(ast.walk(mutated))[scope_at])[node_index]
            _mutations(node)[mutation_index][1](node)
            ast.fix_missing_locations(mutated)
            text = ast.unparse(mutated)
            compile(text, "<mutant>", "exec")  # compiled to check it, never run here
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            continue
        if text not in seen:
            seen.add(text)
            mutants.append(Mutant(f"line {line}: {description}", line, text))
    return mutants


def mutation_jobs(
    job: CodeJob, *, max_mutants: int = 12, limits: SandboxLimits | None = None
) -> tuple[list[Mutant], list[CodeJob]]:
    """Mutants of `job.code` and the jobs running `job`'s tests against each."""
    mutants = generate_mutants(job.code, job.entry_point, limit=max_mutants)
    jobs = [CodeJob(m.code, job.tests, job.entry_point, job.prelude, limits or job.limits) for m in mutants]
    return mutants, jobs


def summarize(mutants: list[Mutant], results: list[CodeResult]) -> dict[str, Any]:
    """``{"mutants", "killed", "survived", "undecided", "score", "survivors"}``;
    score = killed / (killed + survived), None when no mutant could be judged."""
    killed = sum(1 for r in results if r.passed is False)
    survivors = [m.description for m, r in zip(mutants, results, strict=True) if r.passed is True]
    judged = killed + len(survivors)
    return {
        "mutants": len(mutants),
        "killed": killed,
        "survived": len(survivors),
        "undecided": len(mutants) - judged,
        "score": round(killed / judged, 3) if judged else None,
        "survivors": survivors,
    }


def mutation_check(
    job: CodeJob,
    *,
    max_mutants: int = 12,
    limits: SandboxLimits | None = None,
    mode: str = MODE_BWRAP,
    workers: int | None = None,
    pool: UidPool | None = None,
) -> dict[str, Any]:
    """Run `job`'s tests against mutants of its code (which should pass them); see
    `summarize` for the result."""
    mutants, jobs = mutation_jobs(job, max_mutants=max_mutants, limits=limits)
    return summarize(mutants, run_many(jobs, workers=workers, mode=mode, pool=pool))
