"""Prompt templates: defaults per family and mode, `{variable}` substitution.

Only `{name}` with a Python-identifier name is a variable, so LaTeX such as
``\\boxed{}`` needs no escaping; write ``{{`` and ``}}`` for literal braces around
a word. An unknown variable is an error naming it and the known ones, raised
before any request is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from curation.generation.structured import StructuredOutputError, check_schema, schema_of

_VARIABLE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: Variables every template may use; `problem` and `entry_point` are filled in solve mode.
COMMON_VARIABLES = ("persona", "topic", "difficulty", "examples", "index")
MODE_VARIABLES = {
    "solve": ("problem", "entry_point"),
    "write": ("constraint_catalog", "num_constraints"),
}


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    """The messages of a request; `schema` (a JSON schema of an object, or a Pydantic model
    class, turned into its schema) asks for structured output (`curation.generation.structured`)."""

    user: str
    system: str | None = None
    schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.schema is not None:
            try:
                object.__setattr__(self, "schema", check_schema(schema_of(self.schema)))
            except StructuredOutputError as exc:
                raise TemplateError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["schema"] is None:
            del out["schema"]  # templates without one keep their old form (and batch fingerprints)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PromptTemplate | None:
        if not data:
            return None
        unknown = set(data) - {"user", "system", "schema"}
        if unknown:
            raise TemplateError(
                f"unknown template parts: {', '.join(sorted(unknown))} (use 'system', 'user' and 'schema')"
            )
        if not isinstance(data.get("user"), str) or not data["user"].strip():
            raise TemplateError("the template's user message is empty")
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise TemplateError("the template's system message must be text")
        return cls(user=data["user"], system=system or None, schema=data.get("schema"))


_SYSTEM = "You are {persona}."

#: The user message of each (family, mode); every default has the persona as its system message.
_DEFAULT_USER_MESSAGES: dict[tuple[str, str], str] = {
    ("math", "solve"): (
        "{examples}Solve the following problem. Reason step by step, then give the final answer "
        "in \\boxed{}.\n\nProblem: {problem}"
    ),
    ("math", "write"): (
        "{examples}Write a new {difficulty} math word problem about {topic} with a single numerical answer, "
        "then solve it step by step, ending the solution with the final answer in \\boxed{}.\n"
        'Reply with a JSON object in a ```json block with the keys "problem", "solution" and "answer" '
        "(the final answer only)."
    ),
    ("code", "solve"): (
        "{examples}Complete the following Python function. Reply with the complete function "
        "(signature included) in a single ```python code block.\n\n```python\n{problem}\n```"
    ),
    ("code", "write"): (
        "{examples}Write a new {difficulty} Python programming task about {topic}: one self-contained function "
        "with a docstring, its implementation and tests. Reply with these tagged sections:\n"
        "<prompt>the function signature and docstring only</prompt>\n"
        "<entry_point>the function name</entry_point>\n"
        "<solution>the complete function in a ```python block</solution>\n"
        "<tests>a ```python block defining check(candidate) with assert statements</tests>"
    ),
    ("instruction", "solve"): "{examples}{problem}",
    ("instruction", "write"): (
        "{examples}Write a new instruction about {topic} that a user might give an assistant, "
        "with {num_constraints} verifiable constraints chosen from this list:\n{constraint_catalog}\n"
        "State the constraints in the instruction text. Then write a response that follows the instruction "
        'and every constraint. Reply with a JSON object in a ```json block with the keys "instruction", '
        '"instruction_id_list", "kwargs" (one object of arguments per constraint) and "response".'
    ),
    ("open", "solve"): "{examples}{problem}",
    ("open", "write"): (
        "{examples}Write a question that a curious person might ask about {topic} ({difficulty}), then answer "
        'it helpfully. Reply with a JSON object in a ```json block with the keys "question" and "answer".'
    ),
}

DEFAULT_TEMPLATES: dict[tuple[str, str], PromptTemplate] = {
    key: PromptTemplate(system=_SYSTEM, user=user) for key, user in _DEFAULT_USER_MESSAGES.items()
}

DEFAULT_PERSONAS = {
    "math": ("a careful mathematics tutor",),
    "code": ("an experienced Python developer",),
    "instruction": ("a helpful assistant that follows instructions exactly",),
    "open": ("a knowledgeable and friendly assistant",),
}
DEFAULT_TOPICS = {
    "math": ("shopping", "travel", "cooking", "sports", "gardening", "savings"),
    "code": ("strings", "lists", "dictionaries", "number theory", "sorting", "parsing"),
    "instruction": ("sleep", "gardening", "learning a language", "cycling", "saving money", "cooking"),
    "open": ("astronomy", "home repair", "public speaking", "photography", "nutrition", "history"),
}


def default_template(family: str, mode: str) -> PromptTemplate:
    try:
        return DEFAULT_TEMPLATES[(family, mode)]
    except KeyError:
        raise TemplateError(f"no template for family {family!r} in mode {mode!r}") from None


def allowed_variables(mode: str) -> tuple[str, ...]:
    return COMMON_VARIABLES + MODE_VARIABLES.get(mode, ())


def variables_in(text: str) -> list[str]:
    """The variables a template text uses, in order of first use."""
    seen: list[str] = []
    for match in _VARIABLE.finditer(text):
        name = match.group(1)
        if name and name not in seen:
            seen.append(name)
    return seen


def check_template(template: PromptTemplate, mode: str) -> None:
    """Raise TemplateError if a part uses a variable that this mode does not fill."""
    allowed = allowed_variables(mode)
    for part, text in (("system", template.system), ("user", template.user)):
        if not text:
            continue
        unknown = [name for name in variables_in(text) if name not in allowed]
        if unknown:
            raise TemplateError(
                f"{part} template: unknown variable {{{unknown[0]}}} (known: {', '.join(allowed)}); "
                "write {{ and }} for literal braces"
            )


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Substitute `{name}` from `variables`; TemplateError names an unknown one."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables))
            raise TemplateError(
                f"unknown template variable {{{name}}} (known: {known}); write {{{{ and }}}} for literal braces"
            )
        value = variables[name]
        return "" if value is None else str(value)

    rendered = _VARIABLE.sub(substitute, text)
    return re.sub(r"\n{3,}", "\n\n", rendered).strip()


def render_messages(template: PromptTemplate, variables: Mapping[str, Any]) -> list[dict[str, str]]:
    messages = []
    if template.system:
        system = render(template.system, variables)
        if system:
            messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": render(template.user, variables)})
    return messages
