"""Problem sources for generation. Importing the package registers them all in SOURCES."""

from curation.sources import builtin, file_source, humaneval_source, reasoning_gym_source  # noqa: F401
from curation.sources.base import SOURCES, Problem, ProblemSource, make_source, parse_source_spec

__all__ = ["SOURCES", "Problem", "ProblemSource", "make_source", "parse_source_spec"]
