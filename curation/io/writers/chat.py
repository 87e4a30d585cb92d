from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from curation.io.writers.base import WRITERS, TextWriter

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: Metadata keys holding a system prompt, in the order they are looked up.
SYSTEM_KEYS = ("system", "system_prompt")


def messages(prompt: str, response: str, metadata: dict[str, Any]) -> list[dict[str, str]]:
    """The chat form: [system?], user = prompt, assistant = response."""
    out = []
    for key in SYSTEM_KEYS:
        system = metadata.get(key)
        if isinstance(system, str) and system.strip():
            out.append({"role": "system", "content": system})
            break
    out.append({"role": "user", "content": prompt})
    out.append({"role": "assistant", "content": response})
    return out


@WRITERS.register("chat")
class ChatWriter(TextWriter):
    """JSONL in chat form: `messages` (system when the metadata has one, user, assistant),
    then id, family, metadata and provenance."""

    name = "chat"
    extension = ".jsonl"
    description = "JSONL, chat messages (system/user/assistant) plus provenance"

    def lines(self, rows: Iterable[Any]) -> Iterator[str]:
        for row in rows:
            meta_text = row.metadata_json
            metadata = json.loads(meta_text) if any(key in meta_text for key in SYSTEM_KEYS) else {}
            yield (
                f'{{"messages":{_dumps(messages(row.prompt, row.response, metadata))},"id":{_dumps(row.id)},'
                f'"family":{_dumps(row.family)},"reference":{row.reference_json},"metadata":{meta_text},'
                f'"provenance":{row.provenance_json}}}\n'
            )

    def load_snippet(self, files: list[str]) -> str:
        lines = ["import json", ""]
        lines += [
            f'{Path(name).stem} = [json.loads(line) for line in open("{name}", encoding="utf-8")]'
            + '  # row["messages"], row["provenance"]' * (i == 0)
            for i, name in enumerate(files)
        ]
        return "\n".join(lines)
