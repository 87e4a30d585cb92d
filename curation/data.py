"""The record types shared by every step, in one leaf module (imports nothing of Assay).

* `SampleRecord` — a sample in the interchange format (what files, teachers and
  verifiers see); `content_hash` is its identity.
* `Verdict` — one verifier's judgement of one sample.
* `BatchSummary`, `SampleFilter`, `SampleRow`, `SampleDetail` — the read-side views of
  the store (built by `curation.store.queries`).
* `record_dict` — the one rule for a record's `to_dict` (reports, stats, outcomes).

The rows themselves are the tables in `curation.store.models`."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import Any

FAMILIES: tuple[str, ...] = ("math", "code", "instruction", "open")
DECISIONS: tuple[str, ...] = ("accept", "reject", "skip")


def record_dict(record: Any, *, derived: Iterable[str] = (), exclude: Collection[str] = ()) -> dict[str, Any]:
    """A dataclass record as a plain dict, the form reports and job results store:
    its fields as `dataclasses.asdict` gives them (nested records as dicts, values
    copied), then the `derived` properties; `exclude` leaves out internal state
    (never copied, so large arrays cost nothing)."""
    out = {f.name: _plain(getattr(record, f.name)) for f in fields(record) if f.name not in exclude}
    out.update((name, getattr(record, name)) for name in derived)
    return out


def _plain(value: Any) -> Any:
    """`asdict`'s treatment of one field value."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return copy.deepcopy(value)


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


@dataclass
class Verdict:
    """passed: True / False / None ("cannot judge")."""

    passed: bool | None
    score: float | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BatchSummary:
    id: int
    name: str
    origin: str
    family: str | None
    source: str
    status: str
    created_at: datetime
    samples: int
    accepted: int
    rejected: int
    skipped: int
    passed: int
    failed: int
    generation: int
    generation_config: dict[str, Any]

    @property
    def undecided(self) -> int:
        return self.samples - self.accepted - self.rejected - self.skipped


@dataclass
class SampleFilter:
    batch_ids: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    #: "undecided", "accept", "reject" or "skip"; empty = all.
    decisions: list[str] = field(default_factory=list)
    #: True / False / None ("not judged"); empty = all.
    passed: list[bool | None] = field(default_factory=list)
    search: str = ""
    origins: list[str] = field(default_factory=lambda: ["synthetic"])
    #: Batches left out (blind review: a reviewer's verdict or decision filter skips
    #: the blind batches, see `curation.review.blind.visible_filter`).
    exclude_batch_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SampleRow:
    id: int
    batch: str
    family: str
    prompt: str
    response: str
    passed: bool | None
    decision: str | None
    external_id: str | None


@dataclass(frozen=True)
class SampleDetail:
    id: int
    batch: str
    batch_id: int
    origin: str
    family: str
    prompt: str
    response: str
    reference: dict[str, Any]
    metadata: dict[str, Any]
    content_hash: str
    external_id: str | None
    item_index: int
    candidate_index: int
    passed: bool | None
    decision: str | None
    verdicts: list[dict[str, Any]]
    history: list[dict[str, Any]]
    marks: list[dict[str, Any]]
