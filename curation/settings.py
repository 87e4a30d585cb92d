"""Settings dicts (job params, saved configs, the CLI's JSON) read into dataclasses.

One rule for all of them: a key the dataclass does not have is an error that names it
(a typo must not be ignored silently), and the dataclass's own `__post_init__`
checks the values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def unknown_keys(data: Mapping[str, Any], cls: type) -> list[str]:
    """The keys of `data` that are not fields of the dataclass `cls`, sorted."""
    known = {f.name for f in fields(cls)}
    return sorted(set(data) - known)


def from_dict(cls: type[T], data: Mapping[str, Any], what: str) -> T:
    """`cls(**data)`, refusing unknown keys: "unknown <what>: a, b"."""
    unknown = unknown_keys(data, cls)
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")
    return cls(**data)
