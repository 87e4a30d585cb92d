"""Problem sources: where the items of a generation run come from.

A source turns its config (``{"kind": ..., ...}``) into a deterministic list of
`Problem`s for a seed, so that a resumed run rebuilds exactly the same items.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from curation.registry import Registry


@dataclass
class Problem:
    """One item. `prompt` fills the template's {problem}; `reference` is stored as the
    sample's ground truth; `metadata` goes into the sample's metadata; `hints` are
    facts only the simulated teacher sees (a known solution), never stored;
    `variables` are extra template variables (e.g. entry_point)."""

    family: str
    prompt: str = ""
    reference: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)


SOURCES: Registry[type[ProblemSource]] = Registry("problem source")


class ProblemSource(ABC):
    """A kind of source; `class FileSource(ProblemSource, name="file")` names it and
    registers it in SOURCES (a subclass without a name is a shared base)."""

    name: ClassVar[str]
    #: Families this source can feed (empty: any).
    families: ClassVar[tuple[str, ...]] = ()
    modes: ClassVar[tuple[str, ...]] = ("solve",)
    label: ClassVar[str] = ""
    #: (top-level module, package name) of an optional package this source needs.
    requires: ClassVar[tuple[str, str] | None] = None

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            SOURCES.register(name)(cls)

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)

    def missing_dependencies(self) -> list[str]:
        """What must be installed before this source can run (found without importing it)."""
        if self.requires is None or importlib.util.find_spec(self.requires[0]) is not None:
            return []
        return [f"the {self.requires[1]} package is not installed"]

    @abstractmethod
    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        """The items, in a fixed order for a given seed (at most `limit` when given)."""

    def describe(self) -> str:
        """Short text for Batch.source, e.g. "humaneval:40"."""
        return self.name

    def check(self, family: str, mode: str) -> None:
        if self.families and family not in self.families:
            raise ValueError(f"source {self.name!r} feeds {', '.join(self.families)} problems, not {family}")
        if mode not in self.modes:
            raise ValueError(f"source {self.name!r} is for mode {', '.join(self.modes)}, not {mode}")
        missing = self.missing_dependencies()
        if missing:
            raise ValueError(f"source {self.name!r} cannot run here: {'; '.join(missing)}")


#: Other spellings of a source kind on the command line.
SOURCE_ALIASES = {"reasoning-gym": "reasoning_gym"}


def _count(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what}: expected a count, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{what}: the count must be positive")
    return value


def parse_source_spec(spec: str) -> dict[str, Any]:
    """The CLI form of a source config:

    reasoning_gym:basic_arithmetic:50   reasoning_gym:basic_arithmetic=30,chain_sum=20
    humaneval:40   file:PATH   ifeval:60   open_prompts:40   topics:60

    ``reasoning-gym:...`` (the package's name on the index) is an alias of ``reasoning_gym:...``.
    """
    kind, _, rest = spec.partition(":")
    kind = SOURCE_ALIASES.get(kind, kind)
    if kind == "reasoning_gym":
        if "=" in rest:
            datasets = {}
            for part in rest.split(","):
                name, _, size = part.partition("=")
                datasets[name.strip()] = _count(size, f"reasoning_gym dataset {name}")
            return {"kind": kind, "datasets": datasets}
        name, _, size = rest.partition(":")
        if not name:
            raise ValueError("reasoning_gym source: give a dataset, e.g. reasoning_gym:basic_arithmetic:50")
        return {"kind": kind, "datasets": {name: _count(size or "50", f"reasoning_gym dataset {name}")}}
    if kind == "humaneval":
        return {"kind": kind, "limit": _count(rest, "humaneval") if rest else 164}
    if kind == "file":
        if not rest:
            raise ValueError("file source: give a path, e.g. file:problems.jsonl")
        return {"kind": kind, "path": rest}
    if kind in ("ifeval", "open_prompts", "topics"):
        return {"kind": kind, "count": _count(rest or "50", kind)}
    known = "reasoning_gym (or reasoning-gym), humaneval, file, ifeval, open_prompts, topics"
    raise ValueError(f"unknown source {kind!r} (known: {known})")
