"""Problem sources for generation. Importing the package registers them all in SOURCES,
so `make_source` lives here, next to the registration."""

from __future__ import annotations

from typing import Any

from curation.sources import builtin, file_source, humaneval_source, reasoning_gym_source  # noqa: F401 - registration
from curation.sources.base import SOURCES, Problem, ProblemSource, parse_source_spec

__all__ = ["SOURCES", "Problem", "ProblemSource", "make_source", "parse_source_spec"]


def make_source(config: dict[str, Any]) -> ProblemSource:
    """The source described by `config` ({"kind": ..., its settings})."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError("a source config needs a 'kind'")
    return SOURCES.get(str(config["kind"]))(config)
