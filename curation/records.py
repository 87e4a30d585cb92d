"""The record shape shared by every step: what a sample is, independent of the store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

FAMILIES: tuple[str, ...] = ("math", "code", "instruction", "open")


@dataclass
class SampleRecord:
    """One prompt/response pair in the interchange format.

    `reference` holds the ground truth by family: math ``{"answer"}``, code
    ``{"tests", "entry_point"?}``, instruction ``{"instruction_id_list", "kwargs"}``.
    """

    family: str
    prompt: str
    response: str = ""
    reference: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def content_hash(self) -> str:
        return content_hash(self.family, self.prompt, self.response)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out.update(family=self.family, prompt=self.prompt, response=self.response)
        if self.reference:
            out["reference"] = self.reference
        if self.metadata:
            out["metadata"] = self.metadata
        return out


def content_hash(family: str, prompt: str, response: str) -> str:
    """Stable identity of a sample's content (exact, not normalised)."""
    digest = hashlib.sha256()
    for part in (family, prompt, response):
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()
