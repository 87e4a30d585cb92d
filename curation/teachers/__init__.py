"""Teachers: where candidate responses come from (an OpenAI-compatible endpoint or the
offline simulated teacher). Importing this package registers both in TEACHERS."""

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
    make_teacher,
    resolve_api_key,
)

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
