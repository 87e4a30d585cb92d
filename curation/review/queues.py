"""Review queues: which sample a reviewer reads next.

Every queue is one index-backed query that returns the next sample id of a batch
for a reviewer, in a stable order, so fetching the next sample costs the same at
a thousand samples or a million:

* ``disagreement`` — verifiers disagree (one passed, another — or the judge — failed);
  walks the failed verdicts in sample order (index verdicts(passed, sample_id)).
* ``uncertain`` — some verifier could not judge (a null verdict).
* ``spot-check`` — a seeded random sample of the batch's verifier-passed set, the
  evidence for acceptance sampling (`curation.review.sampling`). Its order is stored:
  the pool is a set of Assignment rows of the reserved reviewer ``@spot-check`` in
  random order, and a reviewer *claims* pool samples one by one (an Assignment row
  of their own, queue "spot-check"). A pool sample goes to `overlap` reviewers
  (1 by default, so two reviewers never read the same ones); claims are serialised
  per batch (SQLite's write lock, a PostgreSQL advisory lock).
* ``failures`` — samples the verifiers failed (optionally: one verifier failed).
* ``cluster`` — one cluster, when samples carry a cluster label in their metadata.
* ``assigned`` — samples assigned to this reviewer (`assign_round_robin`).
* ``undecided`` — everything not decided yet, in order.

Only samples still open for the reviewer are served: undecided ones (no current
decision) in the shared queues; in the spot-check and assigned queues, samples the
reviewer has no live decision on (with overlap, others may have decided them).
A skip is a recorded decision: the sample leaves the shared queues (it stays
findable in Samples under "skip") and counts as not read in the spot-check.
The verdict-driven queues read current verdicts only (`curation.verification.versions`).
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, Select, String, cast, delete, exists, func, insert, select, text, update
from sqlalchemy.orm import Session, aliased

from curation.auth.roles import Action, Actor, require, writes
from curation.review.decisions import decided_by
from curation.store.db import session_scope
from curation.store.models import Assignment, Batch, Decision, Sample, Verdict
from curation.store.queries import HIDDEN_STATUSES
from curation.verification.versions import current_clause

QUEUE_KINDS = ("disagreement", "uncertain", "spot-check", "failures", "cluster", "assigned", "undecided")
#: The queues of a blind batch for a reviewer who may not see verdicts: none is
#: ordered or filtered by a verdict or by someone else's decision. The spot-check is
#: offered once an admin has drawn its pool: a seeded random draw from the samples the
#: verifiers passed (what acceptance sampling bounds), served in the draw's order, so
#: it tells a reviewer that its samples passed and nothing of any sample's verdicts.
BLIND_QUEUE_KINDS = ("spot-check", "cluster", "assigned", "undecided")
QUEUE_LABELS = {
    "disagreement": "Disagreement first",
    "uncertain": "Uncertain (a verifier could not judge)",
    "spot-check": "Random spot-check (acceptance sampling)",
    "failures": "Failures only",
    "cluster": "By cluster",
    "assigned": "Assigned to me",
    "undecided": "All undecided",
}
#: The reserved reviewer name under which the spot-check pool is stored.
POOL_REVIEWER = "@spot-check"
CLAIM_QUEUE = "spot-check"
ASSIGNED_QUEUE = "assigned"
CLUSTER_KEYS = ("cluster", "cluster_id")
_CLUSTER_PROBE = 200


@dataclass(frozen=True)
class Queue:
    kind: str
    batch_id: int
    #: For ``cluster``: the label to serve.
    cluster: str | None = None
    #: For ``failures``: only samples this verifier failed.
    verifier: str | None = None
    #: For ``cluster``: the metadata key holding the label (`cluster_key`).
    cluster_key: str = "cluster"
    #: Blind review: serve what this reviewer has not decided (others' decisions do not
    #: count), only in the orders of `BLIND_QUEUE_KINDS`.
    blind: bool = False

    def __post_init__(self) -> None:
        if self.kind not in QUEUE_KINDS:
            raise ValueError(f"queue must be one of {', '.join(QUEUE_KINDS)}, got {self.kind!r}")
        if self.blind and self.kind not in BLIND_QUEUE_KINDS:
            raise ValueError(
                f"a blind queue must be one of {', '.join(BLIND_QUEUE_KINDS)}, got {self.kind!r}"
            )
        if self.kind == "cluster" and self.cluster is None:
            raise ValueError("the cluster queue needs a cluster label")

    @property
    def key(self) -> str:
        """A stable name for this queue (session state keys, logs)."""
        return f"{self.kind}:{self.batch_id}:{self.cluster or ''}:{self.verifier or ''}{':blind' if self.blind else ''}"


@dataclass(frozen=True)
class SpotCheck:
    batch_id: int
    size: int
    overlap: int
    seed: int


@dataclass(frozen=True)
class ReviewBatch:
    id: int
    name: str
    family: str | None


def review_batches(engine: Engine) -> list[ReviewBatch]:
    """Visible synthetic batches, newest first (no per-sample counts: cheap at any size)."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Batch.id, Batch.name, Batch.family)
            .where(Batch.origin == "synthetic", Batch.status.not_in(HIDDEN_STATUSES))
            .order_by(Batch.id.desc())
        )
        return [ReviewBatch(*row) for row in rows]


def _check_reviewer(reviewer: str) -> str:
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is required to pull from a queue")
    if reviewer.startswith("@"):
        raise ValueError(f"reviewer names starting with '@' are reserved, got {reviewer!r}")
    return reviewer


# --------------------------------------------------------------------------- queries


def _of_sample(column: Any, sample_id: Any) -> Any:
    """A column of the sample `sample_id` refers to, as a correlated lookup: queries
    over assignments then walk the (few) assignment rows by their reviewer index
    instead of every sample of the batch."""
    return select(column).where(Sample.id == sample_id).scalar_subquery()


def pool_samples(batch_id: int) -> Select[tuple[int]]:
    """The sample ids of a batch's spot-check pool (a subquery-able select)."""
    return select(Assignment.sample_id).where(
        Assignment.reviewer == POOL_REVIEWER, _of_sample(Sample.batch_id, Assignment.sample_id) == batch_id
    )


def _open_for(queue: Queue, reviewer: str) -> Any:
    """Samples still open in a shared queue: undecided, or on a blind queue, not decided
    by `reviewer` (whatever others decided)."""
    return ~decided_by(reviewer, Sample.id) if queue.blind else Sample.decision.is_(None)


def _shared(queue: Queue, reviewer: str = "") -> Select[tuple[int]] | None:
    """The shared queues as one select of sample ids, ordered; None for claim-based ones."""
    open_sample = (Sample.batch_id == queue.batch_id, _open_for(queue, reviewer))
    if queue.kind == "undecided":
        return select(Sample.id).where(*open_sample).order_by(Sample.id)
    if queue.kind == "failures":
        query = select(Sample.id).where(*open_sample, Sample.passed.is_(False))
        if queue.verifier:
            query = query.where(
                exists().where(
                    Verdict.sample_id == Sample.id,
                    Verdict.verifier == queue.verifier,
                    Verdict.passed.is_(False),
                    current_clause(),
                )
            )
        return query.order_by(Sample.id)
    if queue.kind == "cluster":
        key = cluster_key_expression(queue.cluster_key)
        return select(Sample.id).where(*open_sample, key == queue.cluster).order_by(Sample.id)
    if queue.kind in ("uncertain", "disagreement"):
        # Walk the (few) null or failed verdicts in sample order, not the samples.
        query = (
            select(Verdict.sample_id)
            .join(Sample, Sample.id == Verdict.sample_id)
            .where(*open_sample, current_clause())
            .order_by(Verdict.sample_id)
        )
        if queue.kind == "uncertain":
            return query.where(Verdict.passed.is_(None))
        other = aliased(Verdict)
        return query.where(
            Verdict.passed.is_(False),
            exists().where(
                other.sample_id == Verdict.sample_id, other.passed.is_(True), current_clause(other)
            ),
        )
    return None


def cluster_key_expression(key: str = CLUSTER_KEYS[0]) -> Any:
    """The cluster label of a sample as text (SQLite and PostgreSQL alike)."""
    return cast(Sample.meta[key].as_string(), String)


def _first(session: Session, query: Select[tuple[int]], column: Any, after: int | None) -> int | None:
    """The first id of `query` after `after` (by `column`), wrapping round to the start."""
    if after is not None:
        found = session.scalar(query.where(column > after).limit(1))
        if found is not None:
            return found
    return session.scalar(query.limit(1))


def _open_claims(reviewer: str, batch_id: int, queue_name: str) -> Select[tuple[int]]:
    return (
        select(Assignment.sample_id)
        .where(
            Assignment.reviewer == reviewer,
            Assignment.queue == queue_name,
            _of_sample(Sample.batch_id, Assignment.sample_id) == batch_id,
            ~decided_by(reviewer, Assignment.sample_id),
        )
        .order_by(Assignment.id)
    )


def _claims_after(
    session: Session, query: Select[tuple[int]], reviewer: str, after: int | None
) -> int | None:
    """The next open claim after the one on sample `after` (assignment order), or None."""
    if after is None:
        return session.scalar(query.limit(1))
    after_assignment = (
        select(Assignment.id)
        .where(Assignment.sample_id == after, Assignment.reviewer == reviewer)
        .scalar_subquery()
    )
    return session.scalar(query.where(Assignment.id > after_assignment).limit(1))


def next_sample(engine: Engine, actor: Actor, queue: Queue, *, after: int | None = None) -> int | None:
    """The id of the next sample `actor` should read in `queue`, or None when the
    queue is empty for them. `after` is the sample shown last: the queue continues
    after it (and wraps round), which is how "next without deciding" works.

    The spot-check queue claims a pool sample for an actor who may decide (a write);
    for one who may only read, it shows the next claimable sample without claiming it."""
    reviewer = _check_reviewer(actor.name)
    shared = _shared(queue, reviewer)
    if shared is not None:
        order_column = Verdict.sample_id if queue.kind in ("uncertain", "disagreement") else Sample.id
        with session_scope(engine, write=False) as session:
            return _first(session, shared, order_column, after)
    queue_name = CLAIM_QUEUE if queue.kind == "spot-check" else ASSIGNED_QUEUE
    claims = _open_claims(reviewer, queue.batch_id, queue_name)
    with session_scope(engine, write=False) as session:
        found = _claims_after(session, claims, reviewer, after)
    if found is None and queue.kind == "spot-check":
        if actor.can(Action.DECIDE):
            found = claim_spot_check(engine, actor, queue.batch_id)
        else:
            found = _peek_spot_check(engine, reviewer, queue.batch_id)
    if found is None and after is not None:
        with session_scope(engine, write=False) as session:
            found = session.scalar(claims.limit(1))
    return found


# --------------------------------------------------------------------------- spot-check pool


def _lock_batch(session: Session, batch_id: int) -> None:
    """Serialise pool changes and claims of one batch. SQLite's BEGIN IMMEDIATE
    already does; PostgreSQL takes a transaction-scoped advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        key = (zlib.crc32(b"assay-spot-check") << 31) ^ batch_id
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key % (1 << 63)})


def _pool_setting(queue_name: str) -> tuple[int, int]:
    """(overlap, seed) from a pool row's queue field, "pool:<overlap>:<seed>"."""
    _, overlap, seed = queue_name.split(":")
    return int(overlap), int(seed)


def spot_check(engine: Engine, batch_id: int) -> SpotCheck | None:
    """The batch's spot-check pool settings, or None when no pool was drawn yet."""
    with session_scope(engine, write=False) as session:
        return _spot_check(session, batch_id)


def _spot_check(session: Session, batch_id: int) -> SpotCheck | None:
    rows = session.execute(
        select(Assignment.queue, func.count())
        .where(
            Assignment.reviewer == POOL_REVIEWER,
            _of_sample(Sample.batch_id, Assignment.sample_id) == batch_id,
        )
        .group_by(Assignment.queue)
    ).all()
    if not rows:
        return None
    overlap, seed = _pool_setting(rows[0][0])
    return SpotCheck(batch_id=batch_id, size=sum(n for _, n in rows), overlap=overlap, seed=seed)


@writes(Action.DECIDE)
def draw_spot_check(
    engine: Engine, actor: Actor, batch_id: int, size: int, *, seed: int | None = None, overlap: int | None = None
) -> SpotCheck:
    """Grow the batch's spot-check pool to `size` samples drawn uniformly at random
    (without replacement) from its verifier-passed set.

    The draw is a permutation of the passed samples' ids seeded by `seed`, taken in
    order, so a pool is reproducible and growing it keeps every earlier sample. The
    seed and overlap of an existing pool are kept unless given; changing the overlap
    applies to claims made from now on.

    Growing the pool is part of reviewing the spot-check queue (a reviewer may); setting
    its seed or overlap configures the batch's review (an admin)."""
    if seed is not None or overlap is not None:
        require(actor, Action.CONFIGURE_BATCH)
    if size < 0:
        raise ValueError("the pool size cannot be negative")
    if overlap is not None and overlap < 1:
        raise ValueError("overlap must be at least 1 reviewer per sample")
    with session_scope(engine) as session:
        _lock_batch(session, batch_id)
        current = _spot_check(session, batch_id)
        seed = seed if seed is not None else current.seed if current else 0
        overlap = overlap if overlap is not None else current.overlap if current else 1
        setting = f"pool:{overlap}:{seed}"
        if current is not None and (current.overlap, current.seed) != (overlap, seed):
            session.execute(
                update(Assignment)
                .where(Assignment.reviewer == POOL_REVIEWER, Assignment.sample_id.in_(pool_samples(batch_id)))
                .values(queue=setting)
            )
        have = current.size if current else 0
        if size > have:
            existing = set(session.scalars(pool_samples(batch_id)))
            population = np.fromiter(
                session.scalars(
                    select(Sample.id)
                    .where(Sample.batch_id == batch_id, Sample.passed.is_(True))
                    .order_by(Sample.id)
                ),
                dtype=np.int64,
            )
            order = population[np.random.default_rng(seed).permutation(len(population))]
            chosen = [int(sid) for sid in order if int(sid) not in existing][: size - have]
            if chosen:
                session.execute(
                    insert(Assignment),
                    [{"sample_id": sid, "reviewer": POOL_REVIEWER, "queue": setting} for sid in chosen],
                )
            have += len(chosen)
        return SpotCheck(batch_id=batch_id, size=have, overlap=overlap, seed=seed)


def _claimable(reviewer: str, batch_id: int, overlap: int) -> list[Any]:
    """Conditions on a pool row: `reviewer` may claim its sample now."""
    claim = aliased(Assignment)
    n_claims = (
        select(func.count())
        .where(claim.sample_id == Assignment.sample_id, claim.queue == CLAIM_QUEUE)
        .scalar_subquery()
    )
    conditions = [
        Assignment.reviewer == POOL_REVIEWER,
        _of_sample(Sample.batch_id, Assignment.sample_id) == batch_id,
        ~exists().where(claim.sample_id == Assignment.sample_id, claim.reviewer == reviewer),
        n_claims < overlap,
        ~decided_by(reviewer, Assignment.sample_id),
    ]
    if overlap == 1:
        # Without overlap a sample someone decided elsewhere is done.
        conditions.append(_of_sample(Sample.decision, Assignment.sample_id).is_(None))
    return conditions


def _peek_spot_check(engine: Engine, reviewer: str, batch_id: int) -> int | None:
    """The sample `claim_spot_check` would claim for `reviewer`, without claiming it."""
    with session_scope(engine, write=False) as session:
        settings = _spot_check(session, batch_id)
        if settings is None:
            return None
        return session.scalar(
            select(Assignment.sample_id)
            .where(*_claimable(reviewer, batch_id, settings.overlap))
            .order_by(Assignment.id)
            .limit(1)
        )


@writes(Action.DECIDE)
def claim_spot_check(engine: Engine, actor: Actor, batch_id: int) -> int | None:
    """Claim the next pool sample for `actor`: the first one (in pool order) they
    have not claimed or decided, with fewer than `overlap` claims. None when none is left."""
    reviewer = _check_reviewer(actor.name)
    with session_scope(engine) as session:
        _lock_batch(session, batch_id)
        settings = _spot_check(session, batch_id)
        if settings is None:
            return None
        sample_id = session.scalar(
            select(Assignment.sample_id)
            .where(*_claimable(reviewer, batch_id, settings.overlap))
            .order_by(Assignment.id)
            .limit(1)
        )
        if sample_id is not None:
            session.add(Assignment(sample_id=sample_id, reviewer=reviewer, queue=CLAIM_QUEUE))
        return sample_id


@dataclass(frozen=True)
class SpotCheckAssignment:
    """What `assign_spot_check` did."""

    overlap: int
    #: Claim rows created (one per sample and reviewer).
    created: int
    #: Pool samples that now have `overlap` reviewers.
    complete: int
    #: Pool samples left with fewer (not enough named reviewers who had not seen them).
    short: int
    #: Claims per named reviewer in this pool after the assignment.
    per_reviewer: dict[str, int]


@writes(Action.CONFIGURE_BATCH)
def assign_spot_check(
    engine: Engine, actor: Actor, batch_id: int, reviewers: Sequence[str], overlap: int
) -> SpotCheckAssignment:
    """Assign a batch's spot-check pool to the named `reviewers` with overlap k: every
    pool sample goes to k distinct reviewers, as claims in their spot-check queue.

    Claims a sample already has count towards its k, so running it again, or after the
    pool grew, only fills what is missing; an open claim of someone not named (an admin
    who only looked at the queue, say) is released rather than counted, while a claim
    its holder has decided stays and counts. A reviewer never gets a sample they
    already hold an assignment for or have decided (even if undone): nobody sees the same
    sample twice. The least-loaded eligible reviewers are chosen first (ties in the
    order given), which spreads the pool evenly. The pool's overlap becomes k, so no
    one else claims beyond it."""
    names = list(dict.fromkeys(_check_reviewer(name) for name in reviewers))
    if not names:
        raise ValueError("name at least one reviewer")
    if not 1 <= overlap <= len(names):
        raise ValueError(f"overlap must be between 1 and the {len(names)} reviewer(s) named")
    with session_scope(engine) as session:
        _lock_batch(session, batch_id)
        settings = _spot_check(session, batch_id)
        if settings is None:
            raise ValueError("draw the batch's spot-check pool first")
        if settings.overlap != overlap:
            session.execute(
                update(Assignment)
                .where(Assignment.reviewer == POOL_REVIEWER, Assignment.sample_id.in_(pool_samples(batch_id)))
                .values(queue=f"pool:{overlap}:{settings.seed}")
            )
        pool = list(session.scalars(pool_samples(batch_id).order_by(Assignment.id)))
        in_pool = pool_samples(batch_id)
        seen = set(
            session.execute(
                select(Decision.sample_id, Decision.reviewer).where(Decision.sample_id.in_(in_pool)).distinct()
            ).all()
        )
        claimed: dict[int, set[str]] = defaultdict(set)
        held: set[tuple[int, str]] = set()
        released: list[int] = []
        for assignment_id, sample_id, who, queue_name in session.execute(
            select(Assignment.id, Assignment.sample_id, Assignment.reviewer, Assignment.queue).where(
                Assignment.sample_id.in_(in_pool), Assignment.reviewer != POOL_REVIEWER
            )
        ):
            if queue_name == CLAIM_QUEUE and who not in names and (sample_id, who) not in seen:
                released.append(assignment_id)
                continue
            held.add((sample_id, who))
            if queue_name == CLAIM_QUEUE:
                claimed[sample_id].add(who)
        if released:
            session.execute(delete(Assignment).where(Assignment.id.in_(released)))
        load = Counter({name: sum(name in who for who in claimed.values()) for name in names})
        rows = []
        short = 0
        for sample_id in pool:
            need = overlap - len(claimed[sample_id])
            if need <= 0:
                continue
            eligible = [
                name for name in names if (sample_id, name) not in held and (sample_id, name) not in seen
            ]
            eligible.sort(key=lambda name: load[name])
            chosen = eligible[:need]
            short += len(chosen) < need
            for name in chosen:
                rows.append({"sample_id": sample_id, "reviewer": name, "queue": CLAIM_QUEUE})
                load[name] += 1
        if rows:
            session.execute(insert(Assignment), rows)
        return SpotCheckAssignment(
            overlap=overlap,
            created=len(rows),
            complete=len(pool) - short,
            short=short,
            per_reviewer={name: load[name] for name in names},
        )


def spot_check_remaining(engine: Engine, batch_id: int, reviewer: str) -> int:
    """Pool samples `reviewer` could still read: open claims plus claimable ones."""
    reviewer = _check_reviewer(reviewer)
    with session_scope(engine, write=False) as session:
        settings = _spot_check(session, batch_id)
        if settings is None:
            return 0
        mine = session.scalar(
            select(func.count()).select_from(_open_claims(reviewer, batch_id, CLAIM_QUEUE).subquery())
        )
        claimable = session.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(*_claimable(reviewer, batch_id, settings.overlap))
        )
        return (mine or 0) + (claimable or 0)


# --------------------------------------------------------------------------- assignments


@writes(Action.CONFIGURE_BATCH)
def assign_round_robin(
    engine: Engine, actor: Actor, batch_id: int, reviewers: Sequence[str], count: int, *, per_sample: int = 1
) -> int:
    """Assign the next `count` undecided, unassigned samples of a batch (id order) to
    `reviewers` in turn, each sample to `per_sample` of them. Returns rows created."""
    names = [_check_reviewer(name) for name in reviewers]
    if not names:
        raise ValueError("name at least one reviewer")
    if not 1 <= per_sample <= len(names):
        raise ValueError(f"per_sample must be between 1 and {len(names)}")
    with session_scope(engine) as session:
        _lock_batch(session, batch_id)
        taken = exists().where(Assignment.sample_id == Sample.id, Assignment.queue == ASSIGNED_QUEUE)
        ids = list(
            session.scalars(
                select(Sample.id)
                .where(Sample.batch_id == batch_id, Sample.decision.is_(None), ~taken)
                .order_by(Sample.id)
                .limit(count)
            )
        )
        rows = []
        turn = 0
        for sample_id in ids:
            for _ in range(per_sample):
                rows.append(
                    {"sample_id": sample_id, "reviewer": names[turn % len(names)], "queue": ASSIGNED_QUEUE}
                )
                turn += 1
        if rows:
            session.execute(insert(Assignment), rows)
        return len(rows)


def has_assignments(engine: Engine, batch_id: int) -> bool:
    with session_scope(engine, write=False) as session:
        return (
            session.scalar(
                select(Assignment.id)
                .where(
                    Assignment.queue == ASSIGNED_QUEUE,
                    _of_sample(Sample.batch_id, Assignment.sample_id) == batch_id,
                )
                .limit(1)
            )
            is not None
        )


# --------------------------------------------------------------------------- clusters, sizes


def cluster_key(engine: Engine, batch_id: int) -> str | None:
    """The metadata key holding cluster labels in this batch, from its first samples."""
    with session_scope(engine, write=False) as session:
        metas = session.scalars(
            # Any few samples will do; no ORDER BY, which would sort the whole batch.
            select(Sample.meta).where(Sample.batch_id == batch_id).limit(_CLUSTER_PROBE)
        )
        seen = {
            key
            for meta in metas
            if isinstance(meta, dict)
            for key in CLUSTER_KEYS
            if meta.get(key) is not None
        }
    return next((key for key in CLUSTER_KEYS if key in seen), None)


def cluster_labels(
    engine: Engine, batch_id: int, key: str = CLUSTER_KEYS[0], *, open_for: str | None = None
) -> list[tuple[str, int]]:
    """Cluster labels of a batch's undecided samples with their counts (a scan: cache it).
    `open_for` (blind review): count the samples that reviewer has not decided instead."""
    label = cluster_key_expression(key)
    still_open = Sample.decision.is_(None) if open_for is None else ~decided_by(open_for, Sample.id)
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(label, func.count())
            .where(Sample.batch_id == batch_id, still_open, label.is_not(None))
            .group_by(label)
            .order_by(func.count().desc())
        ).all()
    return [(str(value), n) for value, n in rows]


def verifier_names(engine: Engine) -> list[str]:
    """Every verifier with a verdict in the store (cache it: a scan of an index)."""
    with session_scope(engine, write=False) as session:
        return sorted(session.scalars(select(Verdict.verifier).distinct()))


def available_queues(engine: Engine, batch_id: int, *, blind: bool = False) -> list[str]:
    """The queue kinds that make sense for this batch (cluster and assigned only
    when the batch has cluster labels / assignments; `BLIND_QUEUE_KINDS` when blind,
    the spot-check among them only once its pool is drawn)."""
    kinds = list(BLIND_QUEUE_KINDS if blind else QUEUE_KINDS)
    if blind and spot_check(engine, batch_id) is None:
        kinds.remove("spot-check")
    if cluster_key(engine, batch_id) is None:
        kinds.remove("cluster")
    if not has_assignments(engine, batch_id):
        kinds.remove("assigned")
    return kinds


def queue_remaining(engine: Engine, queue: Queue, reviewer: str) -> int | None:
    """How many samples the queue still holds for `reviewer`, where that is an index
    count; None for the queues where counting would mean a scan."""
    if queue.kind == "spot-check":
        return spot_check_remaining(engine, queue.batch_id, reviewer)
    if queue.kind == "assigned":
        claims = _open_claims(_check_reviewer(reviewer), queue.batch_id, ASSIGNED_QUEUE)
        with session_scope(engine, write=False) as session:
            return session.scalar(select(func.count()).select_from(claims.subquery())) or 0
    if queue.kind == "undecided" or queue.kind == "failures" and not queue.verifier:
        query = _shared(queue, reviewer.strip())
        assert query is not None
        with session_scope(engine, write=False) as session:
            return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return None


#: Counting stops here: a picker needs "is there work, and roughly how much", not a scan.
QUEUE_COUNT_CAP = 1000


def queue_count(engine: Engine, queue: Queue, reviewer: str, *, cap: int = QUEUE_COUNT_CAP) -> int | None:
    """How many samples `queue` holds for `reviewer`, counted up to `cap` + 1 (more than
    `cap` means "at least that many"); None where the count is not known in advance: a
    queue of claims without a reviewer name, and a spot-check whose pool is drawn only
    when the queue is opened."""
    if queue.kind in (CLAIM_QUEUE, ASSIGNED_QUEUE) and not reviewer.strip():
        return None
    if queue.kind == CLAIM_QUEUE and spot_check(engine, queue.batch_id) is None:
        return None
    remaining = queue_remaining(engine, queue, reviewer)
    if remaining is not None:
        return remaining
    shared = _shared(queue, reviewer.strip())
    assert shared is not None, "every claim-based queue has an exact count"
    capped = shared.order_by(None).distinct().limit(cap + 1).subquery()
    with session_scope(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(capped)) or 0


def queue_counts(
    engine: Engine, batch_id: int, reviewer: str, kinds: Sequence[str], *, blind: bool = False
) -> dict[str, int | None]:
    """`queue_count` of each queue kind of a batch, unfiltered (any verifier); None for
    the cluster queue, which is counted per cluster."""
    return {
        kind: None if kind == "cluster" else queue_count(engine, Queue(kind, batch_id, blind=blind), reviewer)
        for kind in kinds
    }


def first_queue_with_work(counts: Mapping[str, int | None], *, after: str | None = None) -> str | None:
    """The first queue (in `counts` order, starting after `after` and wrapping round)
    known to hold work; None when none is."""
    kinds = list(counts)
    start = kinds.index(after) + 1 if after in kinds else 0
    for kind in kinds[start:] + kinds[:start]:
        if kind != after and counts[kind]:
            return kind
    return None
