"""Writers turn export rows into files. One class per format, registered by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from curation.registry import Registry


class Writer(ABC):
    name: ClassVar[str]
    extension: ClassVar[str]
    description: ClassVar[str] = ""

    def missing_dependencies(self) -> list[str]:
        return []

    @abstractmethod
    def write(self, rows: Iterable[dict[str, Any]], path: Path) -> int:
        """Write rows to `path` (a file, or a folder for folder formats); return the row count."""


WRITERS: Registry[type[Writer]] = Registry("writer")
