"""The verifier interface: a named, versioned check of one sample.

Modelled on datatrove's filters: dependencies are checked up front
(`missing_dependencies`), heavy imports happen inside methods, and `verify`
returns a plain `Verdict`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from curation.records import SampleRecord
from curation.registry import Registry


@dataclass
class Verdict:
    """passed: True / False / None ("cannot judge")."""

    passed: bool | None
    score: float | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": self.score,
            "reason": self.reason,
            "details": self.details,
            "duration_ms": self.duration_ms,
        }


class Verifier(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ()

    def missing_dependencies(self) -> list[str]:
        """Human-readable reasons this verifier cannot run here (empty = ready)."""
        return []

    @abstractmethod
    def verify(self, sample: SampleRecord) -> Verdict: ...


VERIFIERS: Registry[type[Verifier]] = Registry("verifier")
