from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from curation.io.writers.base import WRITERS, TextWriter, per_file_snippet


@WRITERS.register("preference")
class PreferenceWriter(TextWriter):
    """JSONL preference pairs (`prompt`, `chosen`, `rejected`, then id, family and
    provenance with the pair's evidence), as TRL's DPO trainer reads them. Its rows are
    pairs of candidates (`curation.export.preference`), not the export plan's samples."""

    name = "preference"
    extension = ".jsonl"
    description = "JSONL preference pairs (prompt/chosen/rejected) for DPO, with evidence per pair"
    pairs = True

    def lines(self, rows: Iterable[Any]) -> Iterator[str]:
        for row in rows:
            yield json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"

    def load_snippet(self, files: list[str]) -> str:
        return per_file_snippet(
            ["from datasets import load_dataset"],
            'load_dataset("json", data_files="{file}", split="train")',
            files,
            "prompt / chosen / rejected, as trl.DPOTrainer expects",
        )
