"""Who may do what. Every write function in `curation` takes the acting user (an
`Actor`) and calls `require` before it changes anything, so a role is enforced in the
library and not only hidden in the UI.

- viewer: reads everything.
- reviewer: decides samples, assigned or in queues (and undoes their own decisions).
- admin: everything else too: bulk actions, generation, import, verifier re-runs,
  embedding and dedup jobs, export, batch review settings and user management.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Role(StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"
    VIEWER = "viewer"


class Action(StrEnum):
    DECIDE = "decide samples"
    BULK = "run bulk actions"
    GENERATE = "generate"
    IMPORT = "import data"
    VERIFY = "run verifiers"
    ANALYSE = "run embedding, dedup and metrics jobs"
    EXPORT = "export"
    CONFIGURE_BATCH = "change a batch's review settings"
    MANAGE_JOBS = "cancel or resume jobs"
    MANAGE_USERS = "manage users"


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset(),
    Role.REVIEWER: frozenset({Action.DECIDE}),
    Role.ADMIN: frozenset(Action),
}


class PermissionDenied(PermissionError):
    """The acting user's role does not allow the action. Raised before anything changes."""

    def __init__(self, actor: Actor, action: Action) -> None:
        needed = sorted(role.value for role, actions in ALLOWED.items() if action in actions)
        super().__init__(
            f"{actor.role.value} {actor.name!r} may not {action.value}: "
            f"that needs the {' or '.join(needed)} role"
        )
        self.actor = actor
        self.action = action


@dataclass(frozen=True)
class Actor:
    """The acting user: a name (stored with every decision) and a role."""

    name: str
    role: Role

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("the acting user needs a name")
        object.__setattr__(self, "role", Role(self.role))

    def can(self, action: Action) -> bool:
        return action in ALLOWED[self.role]

    @property
    def sees_hidden(self) -> bool:
        """Whether blind-review fields (verdicts, judge scores, other reviewers'
        decisions on a blind batch) are shown before this user has decided."""
        return self.role is Role.ADMIN


def require(actor: Actor, action: Action) -> Actor:
    """`actor` if its role allows `action`, else PermissionDenied."""
    if not isinstance(actor, Actor):
        raise TypeError(f"expected the acting user (an Actor), got {type(actor).__name__}")
    if not actor.can(action):
        raise PermissionDenied(actor, action)
    return actor


#: Every write function of the library, with the action it needs: filled by `@writes`.
#: The role test walks this registry (and an AST scan checks that no module writes to
#: the store without being in it).
WRITE_FUNCTIONS: dict[str, tuple[Callable[..., Any], Action]] = {}


def writes(action: Action) -> Callable[[F], F]:
    """Declare a write function: it takes the acting user as its `actor` argument (the
    second positional one, after the engine) and refuses, before anything changes, an
    actor whose role does not allow `action`."""

    def declare(function: F) -> F:
        signature = inspect.signature(function)
        if "actor" not in signature.parameters:
            raise TypeError(f"{function.__qualname__} is declared a write function but takes no `actor`")

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            require(bound.arguments.get("actor"), action)
            return function(*args, **kwargs)

        checked.write_action = action  # type: ignore[attr-defined]
        WRITE_FUNCTIONS[f"{function.__module__}.{function.__qualname__}"] = (checked, action)
        return checked  # type: ignore[return-value]

    return declare
