"""Which stored verdicts are current: the one rule every read of verdicts that drives a
decision, a queue, a bound, a report or an export goes through.

Verdicts of older verifier versions are kept by design (they record what was known when
a sample was decided, and `report.verdict_flips` compares two versions), so a sample can
hold a failing verdict of version 1 and a passing one of version 2 of the same verifier.
Only the current one may count.

* A registered verifier's current version is its class's ``version`` (the registry,
  `curation.verification.base.VERIFIERS`).
* A verifier name that is not registered (a check since removed or renamed, or verdicts
  written by a tool or a test) has no version to compare with, so each sample's newest
  verdict of it (the highest id: the one written last) is current and its older ones on
  that sample are not. This keeps such verdicts usable without ever counting two
  versions of one verifier on one sample, and the SQL form stays one index lookup per
  verdict (the unique index on sample, verifier, version).

`current_clause` is the SQL form (for queries over verdicts), `current_only` the Python
form (for verdict rows already fetched, one sample's or many samples' at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import and_, case, exists, or_
from sqlalchemy.sql.elements import ColumnElement

from curation.store.models import Verdict
from curation.verification.base import VERIFIERS

Row = TypeVar("Row")


def current_versions() -> dict[str, str]:
    """name -> current version of every registered verifier."""
    return {name: VERIFIERS.get(name).version for name in VERIFIERS}


def current_clause(verdict: Any = Verdict, versions: dict[str, str] | None = None) -> ColumnElement[bool]:
    """SQL condition: the `verdict` row (the Verdict table or an alias of it) is current.

    `versions` defaults to the registry (`current_versions`); pass it to pin the rule
    for a whole query."""
    versions = current_versions() if versions is None else versions
    newer = Verdict.__table__.alias()
    latest_on_sample = ~exists().where(
        newer.c.sample_id == verdict.sample_id,
        newer.c.verifier == verdict.verifier,
        newer.c.id > verdict.id,
    )
    if not versions:
        return latest_on_sample
    registered = and_(
        verdict.verifier.in_(list(versions)),
        verdict.version == case(versions, value=verdict.verifier),
    )
    return or_(registered, and_(verdict.verifier.not_in(list(versions)), latest_on_sample))


def current_only(
    rows: Iterable[Row],
    *,
    sample: Callable[[Row], Any],
    verifier: Callable[[Row], str],
    version: Callable[[Row], str],
    versions: dict[str, str] | None = None,
) -> list[Row]:
    """The current verdicts among `rows`, which must come oldest first (by verdict id).
    Order is kept, except that an unregistered verifier's newer verdict on a sample takes
    the place of its older one. `sample`, `verifier` and `version` read a row's fields."""
    versions = current_versions() if versions is None else versions
    kept: list[Row] = []
    #: (sample, unregistered verifier) -> index in `kept` of its newest verdict so far.
    newest: dict[tuple[Any, str], int] = {}
    for row in rows:
        name = verifier(row)
        if name in versions:
            if version(row) == versions[name]:
                kept.append(row)
            continue
        key = (sample(row), name)
        if key in newest:
            kept[newest[key]] = row
        else:
            newest[key] = len(kept)
            kept.append(row)
    return kept


__all__ = ["current_clause", "current_only", "current_versions"]
