"""The verifier interface: a named, versioned check of one sample.

Modelled on datatrove's filters: dependencies are checked up front
(`missing_dependencies`), heavy imports happen inside methods, and `verify`
returns a plain `Verdict`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from curation.data import SampleRecord, Verdict
from curation.registry import Registry


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
