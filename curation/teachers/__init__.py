"""Teachers: where candidate responses come from (an OpenAI-compatible endpoint or the
offline simulated teacher). Importing this package registers both in TEACHERS, so
`make_teacher` lives here, next to the registration."""

from __future__ import annotations

from curation.teachers import openai_teacher, simulated  # noqa: F401 - registration
from curation.teachers.base import (
    TEACHERS,
    ChatRequest,
    Choice,
    Completion,
    Scrubber,
    Teacher,
    TeacherConfig,
    TeacherError,
    resolve_api_key,
)


def make_teacher(config: TeacherConfig, api_key: str | None = None) -> Teacher:
    """Instantiate the teacher named by `config.kind`."""
    return TEACHERS.get(config.kind)(config, api_key=api_key)


__all__ = [
    "TEACHERS",
    "ChatRequest",
    "Choice",
    "Completion",
    "Scrubber",
    "Teacher",
    "TeacherConfig",
    "TeacherError",
    "make_teacher",
    "resolve_api_key",
]
