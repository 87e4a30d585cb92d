"""ORM models of the workspace store.

Decisions are append-only events; `Sample.decision` is a denormalised copy of the
latest one so that queues and filters over a million samples stay index-backed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware datetime: SQLite gives back naive ones, which are UTC as written."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


ID = BigInteger().with_variant(Integer, "sqlite")

# Column types shared by the tables (nullability comes from `Mapped[... | None]`).
IdKey = Annotated[int, mapped_column(ID, primary_key=True)]
Moment = Annotated[datetime, mapped_column(DateTime(timezone=True))]
CreatedAt = Annotated[datetime, mapped_column(DateTime(timezone=True), default=utcnow)]
UpdatedAt = Annotated[datetime, mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)]
JsonDict = Annotated[dict[str, Any], mapped_column(JSON, default=dict)]
Reviewer = Annotated[str, mapped_column(String(120))]
Name = Annotated[str, mapped_column(String(200))]
Count = Annotated[int, mapped_column(Integer, default=0)]
LongText = Annotated[str, mapped_column(Text, default="")]
SampleRef = Annotated[int, mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))]


class Batch(Base):
    """A named set of samples. origin: synthetic (teacher output), real (the
    reference set of human data) or eval (an evaluation set used for decontamination)."""

    __tablename__ = "batches"

    id: Mapped[IdKey]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    origin: Mapped[str] = mapped_column(String(16), default="synthetic")
    family: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(500), default="")
    generation_config: Mapped[JsonDict]
    status: Mapped[str] = mapped_column(String(16), default="ready")
    generation: Mapped[Count]
    parent_batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"))
    lineage: Mapped[JsonDict]
    stats: Mapped[JsonDict]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    samples: Mapped[list[Sample]] = relationship(back_populates="batch", passive_deletes=True)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("batch_id", "item_index", "candidate_index", name="uq_sample_slot"),
        Index("ix_samples_batch_decision", "batch_id", "decision"),
        Index("ix_samples_batch_passed", "batch_id", "passed"),
        Index("ix_samples_batch_passed_decision", "batch_id", "passed", "decision", "id"),
    )

    id: Mapped[IdKey]
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    external_id: Mapped[Name | None]
    item_index: Mapped[int] = mapped_column(Integer)
    candidate_index: Mapped[Count]
    family: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[LongText]
    reference: Mapped[JsonDict]
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    decision: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[CreatedAt]

    batch: Mapped[Batch] = relationship(back_populates="samples")


class GenerationRequest(Base):
    """One (batch, item, candidate) slot of a generation run: exists exactly once."""

    __tablename__ = "generation_requests"
    __table_args__ = (UniqueConstraint("batch_id", "item_index", "candidate_index", name="uq_request_slot"),)

    id: Mapped[IdKey]
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    item_index: Mapped[int] = mapped_column(Integer)
    candidate_index: Mapped[Count]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[Count]
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))
    updated_at: Mapped[UpdatedAt]


class ResponseCache(Base):
    """Teacher responses keyed on endpoint, model, messages and parameters (never the API key)."""

    __tablename__ = "response_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[CreatedAt]


class Verdict(Base):
    __tablename__ = "verdicts"
    __table_args__ = (
        UniqueConstraint("sample_id", "verifier", "version", name="uq_verdict"),
        Index("ix_verdicts_verifier_passed", "verifier", "passed"),
        Index("ix_verdicts_passed_sample", "passed", "sample_id"),
    )

    id: Mapped[IdKey]
    sample_id: Mapped[SampleRef] = mapped_column(index=True)
    verifier: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[LongText]
    details: Mapped[JsonDict]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[CreatedAt]


class BulkEvent(Base):
    """One bulk review action, naming the rule that selected its samples."""

    __tablename__ = "bulk_events"

    id: Mapped[IdKey]
    reviewer: Mapped[Reviewer]
    action: Mapped[str] = mapped_column(String(8))
    rule: Mapped[str] = mapped_column(Text)
    filter: Mapped[JsonDict]
    count: Mapped[Count]
    created_at: Mapped[CreatedAt]


class Decision(Base):
    """Append-only review events; the current decision of a sample is its latest event."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_sample_id", "sample_id", "id"),
        Index("ix_decisions_undoes_id", "undoes_id"),
        Index("ix_decisions_bulk_event_id", "bulk_event_id", "id"),
    )

    id: Mapped[IdKey]
    sample_id: Mapped[SampleRef]
    reviewer: Mapped[Reviewer] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(8))
    reason_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[LongText]
    bulk_event_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_events.id", ondelete="SET NULL"))
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"))
    created_at: Mapped[CreatedAt]


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("sample_id", "reviewer", name="uq_assignment"),)

    id: Mapped[IdKey]
    sample_id: Mapped[SampleRef] = mapped_column(index=True)
    reviewer: Mapped[Reviewer] = mapped_column(index=True)
    queue: Mapped[str] = mapped_column(String(32), default="spot-check")
    created_at: Mapped[CreatedAt]


class Mark(Base):
    """A diversity finding on a sample (duplicate, copy of real data, contamination).
    Never a silent drop: a reviewer sees the reason and may override it."""

    __tablename__ = "marks"
    __table_args__ = (Index("ix_marks_sample_kind", "sample_id", "kind"),)

    id: Mapped[IdKey]
    sample_id: Mapped[SampleRef]
    kind: Mapped[str] = mapped_column(String(32))
    other_sample_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))
    score: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[LongText]
    overridden_by: Mapped[Reviewer | None]
    overridden_at: Mapped[Moment | None]
    created_at: Mapped[CreatedAt]


class Embedding(Base):
    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class MinHashSignature(Base):
    """A text's MinHash signature (num_perm uint32, little-endian) under the parameters
    named by `params` (`diversity.minhash.MinHashParams.key`), keyed like `Embedding`."""

    __tablename__ = "minhash_signatures"

    params: Mapped[str] = mapped_column(String(100), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class User(Base):
    """A local account or an OIDC user. Local accounts keep an argon2 hash of the
    password (never the password); OIDC users have none and sign in through the provider."""

    __tablename__ = "users"

    id: Mapped[IdKey]
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]


class BatchReviewSettings(Base):
    """How a batch is reviewed: blind (verdicts, judge scores and other reviewers'
    decisions hidden from reviewers until they have decided), markdown guidelines shown
    beside the review card, and the reason tags offered with a decision. Edited by admins."""

    __tablename__ = "batch_review_settings"

    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    blind: Mapped[bool] = mapped_column(Boolean, default=False)
    guidelines: Mapped[LongText]
    reason_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_by: Mapped[Reviewer]
    updated_at: Mapped[UpdatedAt]


class MetricSnapshot(Base):
    __tablename__ = "metric_snapshots"

    id: Mapped[IdKey]
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(200), default="batch")
    model: Mapped[Name]
    metrics: Mapped[JsonDict]
    created_at: Mapped[CreatedAt]


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[IdKey]
    out_path: Mapped[str] = mapped_column(Text)
    config: Mapped[JsonDict]
    counts: Mapped[JsonDict]
    files: Mapped[JsonDict]
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[CreatedAt]


class ExportRow(Base):
    """Which sample went into which export (provenance resolves back through this)."""

    __tablename__ = "export_rows"
    __table_args__ = (UniqueConstraint("export_id", "sample_id", name="uq_export_row"),)

    id: Mapped[IdKey]
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[SampleRef] = mapped_column(index=True)
    split: Mapped[str] = mapped_column(String(16), default="train")


class Job(Base):
    """Long work run by a worker process. state: queued, running, succeeded,
    failed, cancelled. A running job whose process died is marked failed by the reaper."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state", "state"),)

    id: Mapped[IdKey]
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300), default="")
    params: Mapped[JsonDict]
    state: Mapped[str] = mapped_column(String(16), default="queued")
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[LongText]
    counters: Mapped[JsonDict]
    result: Mapped[JsonDict]
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    host: Mapped[Name | None]
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_start: Mapped[str | None] = mapped_column(String(32))
    resumed_from: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[CreatedAt]
    started_at: Mapped[Moment | None]
    heartbeat_at: Mapped[Moment | None]
    finished_at: Mapped[Moment | None]
