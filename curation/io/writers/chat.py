from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from curation.io.writers.base import WRITERS, TextWriter, per_file_snippet

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: Metadata keys holding a system prompt, in the order they are looked up.
SYSTEM_KEYS = ("system", "system_prompt")
#: Metadata keys the chat form reads (a row's metadata is parsed only when one appears in its text).
LOOKED_UP_KEYS = (*SYSTEM_KEYS, "messages")


def conversation(metadata: dict[str, Any]) -> list[dict[str, str]] | None:
    """A multi-turn sample's stored conversation (`metadata.messages`), if it has one."""
    stored = metadata.get("messages")
    if isinstance(stored, list) and stored and all(isinstance(m, dict) for m in stored):
        return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in stored]
    return None


def messages(prompt: str, response: str, metadata: dict[str, Any]) -> list[dict[str, str]]:
    """The chat form: a multi-turn sample's conversation as stored, else [system?],
    user = prompt, assistant = response."""
    stored = conversation(metadata)
    if stored is not None:
        return stored
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
    """JSONL in chat form: `messages` (system when the metadata has one, user, assistant; a
    multi-turn sample's whole conversation), then id, family, metadata and provenance."""

    name = "chat"
    extension = ".jsonl"
    description = "JSONL, chat messages (system/user/assistant) plus provenance"

    def lines(self, rows: Iterable[Any]) -> Iterator[str]:
        for row in rows:
            meta_text = row.metadata_json
            metadata = json.loads(meta_text) if any(key in meta_text for key in LOOKED_UP_KEYS) else {}
            yield (
                f'{{"messages":{_dumps(messages(row.prompt, row.response, metadata))},"id":{_dumps(row.id)},'
                f'"family":{_dumps(row.family)},"reference":{row.reference_json},"metadata":{meta_text},'
                f'"provenance":{row.provenance_json}}}\n'
            )

    def load_snippet(self, files: list[str]) -> str:
        return per_file_snippet(
            ["import json"],
            '[json.loads(line) for line in open("{file}", encoding="utf-8")]',
            files,
            'row["messages"], row["provenance"]',
        )
