"""Problems from a file in the interchange format (responses optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation.io.interchange import iter_records
from curation.sources.base import Problem, ProblemSource


class FileSource(ProblemSource, name="file"):
    label = "a problem file (interchange JSONL/CSV/Parquet)"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        if not config.get("path"):
            raise ValueError("file source: give a path")
        self.path = Path(str(config["path"])).expanduser()

    def describe(self) -> str:
        return f"file:{self.path.name}"

    def check(self, family: str, mode: str) -> None:
        super().check(family, mode)
        if not self.path.is_file():
            raise FileNotFoundError(f"problem file not found: {self.path}")

    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        out: list[Problem] = []
        for number, record in enumerate(iter_records(self.path, require_response=False), start=1):
            if record.family != family:
                raise ValueError(
                    f"{self.path.name}: record {number} is family {record.family!r}, but this batch generates {family!r}"
                )
            hints: dict[str, Any] = {}
            if record.response:
                hints["solution"] = record.response
            if "answer" in record.reference:
                hints["answer"] = record.reference["answer"]
            variables = {}
            if record.reference.get("entry_point"):
                variables["entry_point"] = record.reference["entry_point"]
            out.append(
                Problem(
                    family=family,
                    prompt=record.prompt,
                    reference=dict(record.reference),
                    metadata={
                        "source": "file",
                        "file": self.path.name,
                        "source_index": number - 1,
                        **({"source_metadata": record.metadata} if record.metadata else {}),
                    },
                    id=record.id,
                    hints=hints,
                    variables=variables,
                )
            )
            if limit is not None and len(out) >= limit:
                break
        return out
