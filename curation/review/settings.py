"""A batch's review settings (one `batch_review_settings` row, edited by admins):
blind review, the markdown guidelines shown beside the review card and the reason
tags offered with a decision. A batch without a row reviews with the defaults: not
blind, no guidelines, the standard reason tags (`curation.review.decisions.REASON_TAGS`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from curation.auth import Action, Actor, writes
from curation.review.decisions import REASON_TAGS
from curation.store.db import session_scope
from curation.store.models import Batch, BatchReviewSettings

MAX_TAGS = 30
MAX_TAG_CHARS = 40
MAX_GUIDELINES_CHARS = 50_000


class SettingsError(ValueError):
    """Review settings that cannot be saved; the message names the field. Nothing changed."""


@dataclass(frozen=True)
class ReviewSettings:
    batch_id: int
    blind: bool = False
    guidelines: str = ""
    reason_tags: tuple[str, ...] = REASON_TAGS
    updated_by: str = ""


def _settings(row: BatchReviewSettings | None, batch_id: int) -> ReviewSettings:
    if row is None:
        return ReviewSettings(batch_id)
    return ReviewSettings(
        batch_id,
        blind=bool(row.blind),
        guidelines=row.guidelines or "",
        reason_tags=tuple(row.reason_tags) if row.reason_tags else REASON_TAGS,
        updated_by=row.updated_by or "",
    )


def review_settings(engine: Engine, batch_id: int) -> ReviewSettings:
    """The batch's review settings, the defaults when none were saved."""
    with session_scope(engine, write=False) as session:
        return _settings(session.get(BatchReviewSettings, batch_id), batch_id)


def blind_batch_ids(engine: Engine) -> frozenset[int]:
    """Every batch reviewed blind (few rows: one per configured batch)."""
    with session_scope(engine, write=False) as session:
        return frozenset(
            session.scalars(select(BatchReviewSettings.batch_id).where(BatchReviewSettings.blind.is_(True)))
        )


def check_reason_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """The tags stripped, or SettingsError naming `reason_tags` and what is wrong."""
    if isinstance(tags, str):
        raise SettingsError("reason_tags must be a list of tags, not one string")
    cleaned = tuple(str(tag).strip() for tag in tags)
    if not cleaned:
        raise SettingsError("reason_tags: give at least one tag")
    if len(cleaned) > MAX_TAGS:
        raise SettingsError(f"reason_tags: at most {MAX_TAGS} tags, got {len(cleaned)}")
    for tag in cleaned:
        if not tag:
            raise SettingsError("reason_tags: a tag cannot be empty")
        if len(tag) > MAX_TAG_CHARS:
            raise SettingsError(f"reason_tags: {tag[:20]!r}… is longer than {MAX_TAG_CHARS} characters")
    seen: set[str] = set()
    for tag in cleaned:
        if tag.casefold() in seen:
            raise SettingsError(f"reason_tags: {tag!r} is listed twice")
        seen.add(tag.casefold())
    return cleaned


@writes(Action.CONFIGURE_BATCH)
def set_review_settings(
    engine: Engine,
    actor: Actor,
    batch_id: int,
    *,
    blind: bool | None = None,
    guidelines: str | None = None,
    reason_tags: Sequence[str] | None = None,
) -> ReviewSettings:
    """Change the settings given (None keeps the current value); admins only."""
    tags = check_reason_tags(reason_tags) if reason_tags is not None else None
    if guidelines is not None:
        if not isinstance(guidelines, str):
            raise SettingsError("guidelines must be markdown text")
        if len(guidelines) > MAX_GUIDELINES_CHARS:
            raise SettingsError(
                f"guidelines: at most {MAX_GUIDELINES_CHARS:,} characters, got {len(guidelines):,}"
            )
    with session_scope(engine) as session:
        if session.get(Batch, batch_id) is None:
            raise SettingsError(f"batch_id: no batch {batch_id}")
        row = session.get(BatchReviewSettings, batch_id)
        if row is None:
            row = BatchReviewSettings(
                batch_id=batch_id, blind=False, guidelines="", reason_tags=list(REASON_TAGS)
            )
            session.add(row)
        if blind is not None:
            row.blind = bool(blind)
        if guidelines is not None:
            row.guidelines = guidelines
        if tags is not None:
            row.reason_tags = list(tags)
        row.updated_by = actor.name
        session.flush()
        return _settings(row, batch_id)
