"""The store-facing side of the diversity checks: the embedding cache, duplicate
marks, metric snapshots, the collapse monitor and the 2-D map.

Vectors live in the `embeddings` table keyed on (model key, content hash), so a
text is embedded once per model whatever batch it appears in. Findings are Marks
with a reason a reviewer can read and override — nothing is ever dropped here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, Select, delete, func, select, update
from sqlalchemy.orm import Session

from curation.auth.roles import Action, Actor, writes
from curation.diversity import dedup, vectorfile
from curation.diversity.collapse import CollapseReport, GenerationPoint, collapse_report, real_share_of
from curation.diversity.embed import (
    DEFAULT_MODEL,
    Embedder,
    cache_key,
    decode_vectors,
    embedding_text,
    encode_vectors,
    get_embedder,
)
from curation.diversity.knn import EXACT_MAX
from curation.diversity.metrics import (
    MAX_SAMPLES,
    DiversityReport,
    assign_clusters,
    compare,
    default_clusters,
    fit_clusters,
    subsample,
)
from curation.diversity.minhash import CHUNK_TEXTS, MinHashParams, compute_signatures
from curation.diversity.projection import fit_pca, fit_umap, sample_points
from curation.diversity.thresholds import DiversityThresholds
from curation.executors import ExecutorChoice
from curation.jobs import start_job
from curation.store.db import session_scope
from curation.store.models import Batch, Embedding, Mark, MetricSnapshot, MinHashSignature, Sample, utcnow
from curation.store.queries import HIDDEN_STATUSES, where_visible

Progress = Callable[[int, int | None, str], None]

#: Mark kinds written by deduplication, by scope.
SCOPE_KINDS: dict[str, tuple[str, ...]] = {
    "batch": ("exact_duplicate", "near_duplicate", "semantic_duplicate"),
    "accepted": ("duplicate_of_accepted",),
    "reference": ("copy_of_real",),
    "eval": ("contamination",),
}
SCOPES = tuple(SCOPE_KINDS)
MARK_KINDS = tuple(k for kinds in SCOPE_KINDS.values() for k in kinds)
WITHIN_KIND = {"exact": "exact_duplicate", "near": "near_duplicate", "semantic": "semantic_duplicate"}
EMBED_CHUNK = 4096
#: Above this many rows, vectors are read through a memory-mapped sidecar file (`vectorfile`).
SPILL_ROWS = EXACT_MAX
_IN_CHUNK = 900


def _no_progress(_done: int, _total: int | None, _message: str) -> None:
    return None


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- selections --------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchInfo:
    id: int
    name: str
    origin: str
    family: str | None
    generation: int
    parent_batch_id: int | None
    lineage: dict[str, Any]


def _info(batch: Batch) -> BatchInfo:
    return BatchInfo(
        batch.id,
        batch.name,
        batch.origin,
        batch.family,
        batch.generation or 0,
        batch.parent_batch_id,
        dict(batch.lineage or {}),
    )


def resolve_batch(engine: Engine, batch: str | int) -> BatchInfo:
    """A visible batch by name (or by numeric id)."""
    with session_scope(engine, write=False) as session:
        row = session.scalar(
            select(Batch).where(Batch.name == str(batch), Batch.status.not_in(HIDDEN_STATUSES))
        )
        if row is None and str(batch).isdigit():
            row = session.scalar(
                select(Batch).where(Batch.id == int(batch), Batch.status.not_in(HIDDEN_STATUSES))
            )
        if row is None:
            raise KeyError(f"no batch named {batch!r}")
        return _info(row)


def batches_of_origin(engine: Engine, origin: str) -> list[BatchInfo]:
    with session_scope(engine, write=False) as session:
        rows = session.scalars(
            select(Batch)
            .where(Batch.origin == origin, Batch.status.not_in(HIDDEN_STATUSES))
            .order_by(Batch.id)
        )
        return [_info(b) for b in rows]


@dataclass(frozen=True)
class Selection:
    """Which samples: every non-empty field narrows it (an empty selection = every visible sample)."""

    batch_ids: tuple[int, ...] = ()
    sample_ids: tuple[int, ...] = ()
    origins: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    #: "accept", "reject", "skip" or "undecided".
    decisions: tuple[str, ...] = ()
    #: True, False, None (not judged).
    passed: tuple[bool | None, ...] = ()
    exclude_batch_ids: tuple[int, ...] = ()

    def where(self, query: Select) -> Select:
        return where_visible(
            query,
            batch_ids=self.batch_ids,
            exclude_batch_ids=self.exclude_batch_ids,
            origins=self.origins,
            families=self.families,
            decisions=self.decisions,
            passed=self.passed,
        )

    def describe(self) -> str:
        parts = []
        if self.batch_ids:
            parts.append("batches " + ",".join(map(str, self.batch_ids)))
        if self.sample_ids:
            parts.append(f"{len(self.sample_ids)} chosen samples")
        if self.origins:
            parts.append("origin " + "/".join(self.origins))
        if self.families:
            parts.append("family " + "/".join(self.families))
        if self.decisions:
            parts.append("decision " + "/".join(self.decisions))
        if self.passed:
            parts.append("passed " + "/".join(str(p) for p in self.passed))
        return "; ".join(parts) or "all samples"


@dataclass
class SampleTable:
    """Columns of a set of samples, in a stable order (batch, item, candidate, id)."""

    ids: np.ndarray
    batch_ids: np.ndarray
    batch_names: list[str]
    origins: list[str]
    families: list[str]
    prompts: list[str]
    responses: list[str]
    content_hashes: list[str]
    decisions: list[str | None]
    passed: list[bool | None]

    def __len__(self) -> int:
        return len(self.ids)

    def texts(self, mode: str = "prompt+response") -> list[str]:
        return [embedding_text(p, r, mode) for p, r in zip(self.prompts, self.responses, strict=True)]

    def lengths(self) -> dict[str, np.ndarray]:
        return {
            "prompt": np.array([len(p.split()) for p in self.prompts], dtype=np.int64),
            "response": np.array([len(r.split()) for r in self.responses], dtype=np.int64),
        }

    def subset(self, rows: np.ndarray) -> SampleTable:
        pick = [int(i) for i in rows]
        return SampleTable(
            self.ids[pick],
            self.batch_ids[pick],
            *(
                [getattr(self, f)[i] for i in pick]
                for f in (
                    "batch_names",
                    "origins",
                    "families",
                    "prompts",
                    "responses",
                    "content_hashes",
                    "decisions",
                    "passed",
                )
            ),
        )


def load_samples(engine: Engine, selection: Selection) -> SampleTable:
    columns = (
        Sample.id,
        Sample.batch_id,
        Batch.name,
        Batch.origin,
        Sample.family,
        Sample.prompt,
        Sample.response,
        Sample.content_hash,
        Sample.decision,
        Sample.passed,
    )
    order = (Sample.batch_id, Sample.item_index, Sample.candidate_index, Sample.id)
    rows: list[Any] = []
    with session_scope(engine, write=False) as session:
        if selection.sample_ids:
            for chunk in _chunks(sorted(set(selection.sample_ids))):
                rows.extend(session.execute(selection.where(select(*columns)).where(Sample.id.in_(chunk))))
            rows.sort(key=lambda r: (r[1], r[0]))
        else:
            rows = list(session.execute(selection.where(select(*columns)).order_by(*order)))
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return SampleTable(
        np.asarray(cols[0], dtype=np.int64),
        np.asarray(cols[1], dtype=np.int64),
        *(list(c) for c in cols[2:]),
    )


# -- embeddings --------------------------------------------------------------------------


def _insert_new(
    session: Session, model: type[Embedding] | type[MinHashSignature], rows: list[dict[str, Any]]
) -> None:
    """Insert, ignoring rows (same primary key) another process wrote meanwhile.

    One plain driver-level executemany: the cache tables take up to a million rows per
    run, and SQLAlchemy's per-row bind processing cost twice the insert itself (at 1M
    MinHash signatures: 19 s of 30 s)."""
    if not rows:
        return
    table = model.__table__
    columns = [column.name for column in table.columns]
    keys = ", ".join(column.name for column in table.primary_key)
    dialect = session.get_bind().dialect
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    values = ", ".join([marker] * len(columns))
    verb, conflict = (
        ("INSERT OR IGNORE", "") if dialect.name == "sqlite" else ("INSERT", f" ON CONFLICT ({keys}) DO NOTHING")
    )
    statement = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({values}){conflict}"
    session.connection().exec_driver_sql(statement, [tuple(row[c] for c in columns) for row in rows])


def _cached_hashes(session: Session, key: str, hashes: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(hashes)):
        found.update(
            session.scalars(
                select(Embedding.content_hash).where(
                    Embedding.model == key, Embedding.content_hash.in_(chunk)
                )
            )
        )
    return found


@dataclass
class EmbedStats:
    model: str
    samples: int = 0
    distinct: int = 0
    cached: int = 0
    computed: int = 0
    seconds: float = 0.0
    backend: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class PieceEncoder(Protocol):
    """Embeds texts and yields (positions in the texts, their vectors) piece by piece,
    each position once: the local embedder in one piece, `RayEmbedPool` as actors finish."""

    @property
    def backend(self) -> str | None: ...

    def pieces(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


class LocalEncoder:
    """The embedder of this process (loaded on first use), all texts in one piece."""

    def __init__(self, model: str | None) -> None:
        self.model = model
        self._embedder: Embedder | None = None

    @property
    def backend(self) -> str | None:
        return self._embedder.backend if self._embedder is not None else None

    def pieces(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._embedder is None:
            self._embedder = get_embedder(self.model)
        yield np.arange(len(texts)), self._embedder.encode(texts)


def embed_selection(
    engine: Engine,
    selection: Selection,
    *,
    model: str | None = None,
    mode: str = "prompt+response",
    dtype: str = "float16",
    progress: Progress = _no_progress,
    chunk: int = EMBED_CHUNK,
    encoder: PieceEncoder | None = None,
) -> EmbedStats:
    """Embed every sample of `selection` whose vector is not cached yet.

    Texts are read chunk by chunk; the missing ones go to `encoder` (default: this
    process's embedder; `RayEmbedPool` on a cluster) and every piece of vectors it
    returns is committed here, by this process only, so an interrupted job keeps what it
    did and a rerun only does what is missing."""
    key = cache_key(model or DEFAULT_MODEL, mode)
    stats = EmbedStats(model=key)
    start = time.perf_counter()
    columns = (Sample.content_hash, Sample.prompt, Sample.response)
    encoder = encoder or LocalEncoder(model)

    def source_rows() -> Iterator[tuple[str, str, str]]:
        with session_scope(engine, write=False) as session:
            if selection.sample_ids:
                for ids in _chunks(sorted(set(selection.sample_ids))):
                    yield from session.execute(selection.where(select(*columns)).where(Sample.id.in_(ids)))
            else:
                query = selection.where(select(*columns)).order_by(Sample.id)
                yield from session.execute(query.execution_options(yield_per=chunk))

    if selection.sample_ids:
        total = len(set(selection.sample_ids))
    else:
        with session_scope(engine, write=False) as session:
            total = session.scalar(selection.where(select(func.count(Sample.id)))) or 0
    progress(0, total, f"embedding {total:,} samples with {key}")
    seen: set[str] = set()
    pending: dict[str, str] = {}

    def flush() -> None:
        with session_scope(engine, write=False) as session:
            cached = _cached_hashes(session, key, list(pending))
        stats.cached += len(cached)
        todo = [(h, t) for h, t in pending.items() if h not in cached]
        pending.clear()
        if not todo:
            return
        for positions, vectors in encoder.pieces([t for _, t in todo]):
            blobs = encode_vectors(vectors, dtype)
            rows = [
                {"model": key, "content_hash": todo[p][0], "dim": vectors.shape[1], "vector": b}
                for p, b in zip(positions, blobs, strict=True)
            ]
            with session_scope(engine) as session:
                _insert_new(session, Embedding, rows)
            stats.computed += len(rows)
            stats.backend = encoder.backend

    for content_hash, prompt, response in source_rows():
        stats.samples += 1
        if content_hash in seen:
            continue
        seen.add(content_hash)
        pending[content_hash] = embedding_text(prompt, response, mode)
        if len(pending) >= chunk:
            flush()
            progress(stats.samples, total, f"embedded {stats.computed:,}, cached {stats.cached:,}")
    if pending:
        flush()
    stats.distinct = len(seen)
    stats.seconds = round(time.perf_counter() - start, 3)
    progress(stats.samples, total, f"embedded {stats.computed:,}, cached {stats.cached:,}")
    return stats


def load_vectors(
    engine: Engine, table: SampleTable, key: str, *, spill_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, d) float32, present mask) for the rows of `table`, from the cache.

    Above `spill_rows` (default `SPILL_ROWS`) rows, and when every row has a vector, the
    matrix is a read-only memory map of a float32 sidecar file (see `vectorfile`), written
    on first use."""
    if len(table) > (SPILL_ROWS if spill_rows is None else spill_rows):
        mapped = _mapped_vectors(engine, table, key)
        if mapped is not None:
            return mapped, np.ones(len(table), dtype=bool)
    wanted = sorted(set(table.content_hashes))
    found: dict[str, tuple[int, bytes]] = {}
    with session_scope(engine, write=False) as session:
        for chunk in _chunks(wanted):
            for h, dim, blob in session.execute(
                select(Embedding.content_hash, Embedding.dim, Embedding.vector).where(
                    Embedding.model == key, Embedding.content_hash.in_(chunk)
                )
            ):
                found[h] = (dim, blob)
    if not found:
        return np.zeros((len(table), 0), dtype=np.float32), np.zeros(len(table), dtype=bool)
    dim = next(iter(found.values()))[0]
    present = np.array([h in found for h in table.content_hashes], dtype=bool)
    vectors = np.zeros((len(table), dim), dtype=np.float32)
    rows = np.flatnonzero(present)
    if len(rows):
        vectors[rows] = decode_vectors([found[table.content_hashes[i]][1] for i in rows], dim)
    return vectors, present


def _mapped_vectors(engine: Engine, table: SampleTable, key: str) -> np.ndarray | None:
    """The memory-mapped float32 matrix of `table`'s vectors, decoded from the cache chunk by
    chunk into a sidecar file when not there yet; None when some row has no vector."""
    store = engine.url.render_as_string(hide_password=True)
    directory = vectorfile.directory_for(engine.url.render_as_string(hide_password=False))
    path = vectorfile.matrix_path(directory, store, key, table.content_hashes)
    matrix = vectorfile.open_matrix(path)
    if matrix is not None:
        return matrix
    first: dict[str, int] = {}
    copies: list[tuple[int, int]] = []
    for i, h in enumerate(table.content_hashes):
        j = first.setdefault(h, i)
        if j != i:
            copies.append((i, j))
    with session_scope(engine, write=False) as session:
        dim = session.scalar(select(Embedding.dim).where(Embedding.model == key).limit(1))
        if dim is None:
            return None
        out, partial = vectorfile.create_matrix(path, len(table), dim)
        filled = 0
        try:
            for chunk in _chunks(sorted(first)):
                rows, blobs = [], []
                for h, blob in session.execute(
                    select(Embedding.content_hash, Embedding.vector).where(
                        Embedding.model == key, Embedding.content_hash.in_(chunk)
                    )
                ):
                    rows.append(first[h])
                    blobs.append(blob)
                if rows:
                    out[np.array(rows)] = decode_vectors(blobs, dim)
                    filled += len(rows)
            if filled < len(first):
                vectorfile.discard(partial)
                return None
            for i, j in copies:
                out[i] = out[j]
        except BaseException:
            vectorfile.discard(partial)
            raise
    return vectorfile.finish(out, partial, path)


def vectors_for(
    engine: Engine,
    table: SampleTable,
    *,
    model: str | None = None,
    mode: str = "prompt+response",
    embed_missing: bool = True,
    progress: Progress = _no_progress,
) -> np.ndarray:
    """Vectors of every row of `table`, embedding the missing ones first (or raising)."""
    key = cache_key(model or DEFAULT_MODEL, mode)
    vectors, present = load_vectors(engine, table, key)
    if present.all() and len(table):
        return vectors
    if not len(table):
        return np.zeros((0, 0), dtype=np.float32)
    if not embed_missing:
        raise ValueError(f"{int((~present).sum()):,} samples have no {key} embedding yet; run `embed` first")
    missing = tuple(int(i) for i in table.ids[~present])
    embed_selection(engine, Selection(sample_ids=missing), model=model, mode=mode, progress=progress)
    vectors, present = load_vectors(engine, table, key)
    return vectors


# -- MinHash signatures ------------------------------------------------------------------


@dataclass
class SignatureStats:
    """How many texts a signature request covered, found stored, and computed."""

    texts: int = 0
    distinct: int = 0
    stored: int = 0
    computed: int = 0
    seconds: float = 0.0

    def add(self, other: SignatureStats) -> None:
        for name in ("texts", "distinct", "stored", "computed", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def _stored_signatures(engine: Engine, key: str, hashes: Sequence[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with session_scope(engine, write=False) as session:
        for chunk in _chunks(hashes):
            query = select(MinHashSignature.content_hash, MinHashSignature.signature).where(
                MinHashSignature.params == key, MinHashSignature.content_hash.in_(chunk)
            )
            found.update((content_hash, blob) for content_hash, blob in session.execute(query))
    return found


# Content hashes are random keys, so each commit rewrites pages all over the primary-key
# index: at 1M signatures, committing every 20k rows spent 12 s in WAL checkpoints.
SIGNATURE_COMMIT_ROWS = 200_000


def minhash_signatures_for(
    engine: Engine,
    content_hashes: Sequence[str],
    texts: Sequence[str],
    params: MinHashParams,
    *,
    executor: ExecutorChoice | None = None,
    progress: Progress = _no_progress,
    chunk_texts: int = CHUNK_TEXTS,
    commit_rows: int = SIGNATURE_COMMIT_ROWS,
) -> tuple[np.ndarray, SignatureStats]:
    """Signatures (n, num_perm) of `texts` (text i has content hash i), from the store
    where present; the rest are computed (worker processes or Ray tasks, see
    `minhash.compute_signatures`) and stored by this process only, `commit_rows` at a
    time, so an interrupted run keeps what it did and a rerun signs only new texts."""
    start = time.perf_counter()
    first_row: dict[str, int] = {}
    for row, content_hash in enumerate(content_hashes):
        first_row.setdefault(content_hash, row)
    distinct = list(first_row)
    stored = _stored_signatures(engine, params.key, distinct)
    missing = [h for h in distinct if h not in stored]
    stats = SignatureStats(len(texts), len(distinct), len(stored), len(missing))
    progress(0, len(missing), f"MinHash: {len(stored):,} signatures stored, {len(missing):,} to compute")

    pending: list[dict[str, Any]] = []

    def store_pending() -> None:
        if not pending:  # a rerun with every signature stored takes no write lock
            return
        with session_scope(engine) as session:
            _insert_new(session, MinHashSignature, pending)
        pending.clear()

    def store_chunk(offset: int, signatures: np.ndarray) -> None:
        pending.extend(
            {"params": params.key, "content_hash": h, "signature": sig.astype("<u4").tobytes()}
            for h, sig in zip(missing[offset : offset + len(signatures)], signatures, strict=True)
        )
        if len(pending) >= commit_rows:
            store_pending()
        progress(offset + len(signatures), len(missing), "MinHash signatures computed")

    computed = compute_signatures(
        [texts[first_row[h]] for h in missing],
        params,
        executor,
        chunk_texts=chunk_texts,
        on_chunk=store_chunk,
    )
    store_pending()
    by_hash = np.empty((len(distinct), params.num_perm), dtype=np.uint32)
    position = {h: k for k, h in enumerate(distinct)}
    if stored:
        rows = np.fromiter((position[h] for h in stored), dtype=np.int64, count=len(stored))
        by_hash[rows] = np.frombuffer(b"".join(stored.values()), dtype="<u4").reshape(len(stored), -1)
    if missing:
        by_hash[[position[h] for h in missing]] = computed
    rows_of = np.fromiter((position[h] for h in content_hashes), dtype=np.int64, count=len(content_hashes))
    stats.seconds = time.perf_counter() - start
    return by_hash[rows_of], stats


# -- marks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMark:
    sample_id: int
    kind: str
    other_sample_id: int | None
    score: float | None
    reason: str


@dataclass(frozen=True)
class MarkView:
    id: int
    sample_id: int
    kind: str
    other_sample_id: int | None
    score: float | None
    reason: str
    overridden_by: str | None


def _sync_marks(
    engine: Engine, batch_id: int, owned: Iterable[str], pruned: Iterable[str], marks: list[NewMark]
) -> dict[str, int]:
    """Make the batch's marks of the `owned` kinds equal `marks`, keeping overrides.

    An existing mark with the same (sample, kind, other) is updated in place (its
    override stays); a mark of a `pruned` kind that was not found again is removed
    unless a reviewer overrode it; new findings are inserted."""
    owned, pruned = set(owned), set(pruned)
    wanted = {(m.sample_id, m.kind, m.other_sample_id): m for m in marks}
    counts = {"added": 0, "updated": 0, "removed": 0}
    with session_scope(engine) as session:
        existing = session.scalars(
            select(Mark)
            .join(Sample, Sample.id == Mark.sample_id)
            .where(Sample.batch_id == batch_id, Mark.kind.in_(owned))
        ).all()
        stale = []
        for mark in existing:
            new = wanted.pop((mark.sample_id, mark.kind, mark.other_sample_id), None)
            if new is not None:
                mark.score, mark.reason = new.score, new.reason
                counts["updated"] += 1
            elif mark.kind in pruned and mark.overridden_by is None:
                stale.append(mark.id)
        for chunk in _chunks(stale):
            session.execute(delete(Mark).where(Mark.id.in_(chunk)))
        counts["removed"] = len(stale)
        now = utcnow()
        rows = [
            {
                "sample_id": m.sample_id,
                "kind": m.kind,
                "other_sample_id": m.other_sample_id,
                "score": m.score,
                "reason": m.reason,
                "created_at": now,
            }
            for m in wanted.values()
        ]
        if rows:
            session.execute(Mark.__table__.insert(), rows)
        counts["added"] = len(rows)
    return counts


def list_marks(engine: Engine, batch_id: int, kinds: Sequence[str] = MARK_KINDS) -> list[MarkView]:
    with session_scope(engine, write=False) as session:
        rows = session.scalars(
            select(Mark)
            .join(Sample, Sample.id == Mark.sample_id)
            .where(Sample.batch_id == batch_id, Mark.kind.in_(kinds))
            .order_by(Mark.sample_id, Mark.id)
        )
        return [
            MarkView(m.id, m.sample_id, m.kind, m.other_sample_id, m.score, m.reason, m.overridden_by)
            for m in rows
        ]


@writes(Action.DECIDE)
def override_mark(engine: Engine, actor: Actor, mark_id: int, *, undo: bool = False) -> None:
    """A reviewer decides a finding does not apply (or, with undo, that it does again);
    the override is stored under `actor`'s name."""
    reviewer = actor.name
    with session_scope(engine) as session:
        changed = session.execute(
            update(Mark)
            .where(Mark.id == mark_id)
            .values(overridden_by=None if undo else reviewer, overridden_at=None if undo else utcnow())
        ).rowcount
    if not changed:
        raise KeyError(f"no mark {mark_id}")


# -- deduplication -----------------------------------------------------------------------

_METHOD_TITLE = {"exact": "Exact duplicate", "near": "Near-duplicate", "semantic": "Semantic duplicate"}


def _method_detail(f: dedup.Finding, t: DiversityThresholds, key: str) -> str:
    if f.method == "near":
        return f"Jaccard {f.score:.2f} on word {t.shingle_words}-grams (threshold {t.near_dup_jaccard:.2f})"
    if f.method == "semantic":
        return f"embedding cosine {f.score:.3f} ({key}, threshold {t.semantic_cosine})"
    return "same text after normalising Unicode, case and whitespace"


def _best_cross(findings_by_method: Sequence[list[dedup.Finding]]) -> dict[int, dedup.Finding]:
    """One finding per query: the first method (exact, near, semantic) that matched it."""
    best: dict[int, dedup.Finding] = {}
    for findings in findings_by_method:
        for f in findings:
            best.setdefault(f.index, f)
    return best


def _cross_findings(
    batch: SampleTable,
    batch_vectors: np.ndarray | None,
    other: SampleTable,
    other_vectors: np.ndarray | None,
    t: DiversityThresholds,
    signatures: tuple[np.ndarray, np.ndarray],
) -> dict[int, dedup.Finding]:
    queries, targets = batch.texts(), other.texts()
    found = [
        dedup.exact_matches(queries, targets),
        dedup.near_matches(
            queries,
            targets,
            threshold=t.near_dup_jaccard,
            ngram=t.shingle_words,
            num_perm=t.num_perm,
            signatures=signatures,
        ),
    ]
    if batch_vectors is not None and other_vectors is not None and len(other_vectors):
        found.append(dedup.semantic_matches(batch_vectors, other_vectors, threshold=t.semantic_cosine))
    return _best_cross(found)


def run_dedup(
    engine: Engine,
    batch: str | int,
    *,
    scopes: Sequence[str] = SCOPES,
    semantic: bool = True,
    model: str | None = None,
    mode: str = "prompt+response",
    thresholds: DiversityThresholds | None = None,
    executor: ExecutorChoice | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Find duplicates of a batch's samples and record them as marks.

    scopes: "batch" (within the batch; the first copy is kept, later ones are
    marked and point at it), "accepted" (accepted samples of other synthetic
    batches), "reference" (real data: kind copy_of_real), "eval" (evaluation sets:
    13-gram contamination). Returns counts per kind and the mark changes.

    MinHash signatures come from the store or are computed on `executor` (local
    worker processes, or Ray tasks when this process is connected to a cluster) and
    stored by this process; everything else runs here, so the marks are the same
    whichever executor computed the signatures."""
    t = thresholds or DiversityThresholds()
    minhash_params = MinHashParams(num_perm=t.num_perm, ngram=t.shingle_words)
    signature_stats = SignatureStats()

    def signatures_of(table: SampleTable) -> np.ndarray:
        sig, stats = minhash_signatures_for(
            engine, table.content_hashes, table.texts(), minhash_params, executor=executor
        )
        signature_stats.add(stats)
        return sig

    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown dedup scope(s) {sorted(unknown)}; choose from {', '.join(SCOPES)}")
    info = resolve_batch(engine, batch)
    key = cache_key(model or DEFAULT_MODEL, mode)
    rows = load_samples(engine, Selection(batch_ids=(info.id,)))
    n = len(rows)
    steps = 1 + len(scopes) + (1 if semantic else 0)
    step = 0

    def advance(message: str) -> None:
        nonlocal step
        progress(step, steps, message)
        step += 1

    vectors = None
    if semantic and n:
        advance("embedding the batch")
        vectors = vectors_for(engine, rows, model=model, mode=mode)
    marks: list[NewMark] = []
    texts = rows.texts()
    needs_signatures = n and ("batch" in scopes or {"accepted", "reference"} & set(scopes))
    batch_signatures = signatures_of(rows) if needs_signatures else None
    if "batch" in scopes:
        advance("duplicates within the batch")
        marked = np.zeros(n, dtype=bool)
        within: list[dedup.Finding] = dedup.exact_duplicates(texts)
        marked[[f.index for f in within]] = True
        near = dedup.near_duplicates(
            texts,
            threshold=t.near_dup_jaccard,
            ngram=t.shingle_words,
            num_perm=t.num_perm,
            skip=marked,
            signatures=batch_signatures,
        )
        within += near
        marked[[f.index for f in near]] = True
        if vectors is not None:
            within += dedup.semantic_duplicates(vectors, threshold=t.semantic_cosine, skip=marked)
        for f in within:
            kept = int(rows.ids[f.other])
            marks.append(
                NewMark(
                    int(rows.ids[f.index]),
                    WITHIN_KIND[f.method],
                    kept,
                    f.score,
                    f"{_METHOD_TITLE[f.method]} of sample #{kept}, the first copy in this batch: "
                    f"{_method_detail(f, t, key)}.",
                )
            )
    cross = [
        ("accepted", Selection(origins=("synthetic",), decisions=("accept",), exclude_batch_ids=(info.id,))),
        ("reference", Selection(origins=("real",))),
    ]
    for scope, selection in cross:
        if scope not in scopes:
            continue
        advance(f"duplicates of {scope} samples")
        other = load_samples(engine, selection)
        if not len(other) or not n:
            continue
        other_vectors = vectors_for(engine, other, model=model, mode=mode) if vectors is not None else None
        pair = (batch_signatures, signatures_of(other))
        for i, f in sorted(_cross_findings(rows, vectors, other, other_vectors, t, pair).items()):
            target = int(other.ids[f.other])
            where = f"'{other.batch_names[f.other]}'"
            if scope == "accepted":
                marks.append(
                    NewMark(
                        int(rows.ids[i]),
                        "duplicate_of_accepted",
                        target,
                        f.score,
                        f"{_METHOD_TITLE[f.method]} of accepted sample #{target} in batch {where}: "
                        f"{_method_detail(f, t, key)}.",
                    )
                )
            else:
                marks.append(
                    NewMark(
                        int(rows.ids[i]),
                        "copy_of_real",
                        target,
                        f.score,
                        f"Copies real sample #{target} in {where} ({_METHOD_TITLE[f.method].lower()}: "
                        f"{_method_detail(f, t, key)}).",
                    )
                )
    if "eval" in scopes:
        advance("contamination with evaluation sets")
        for ev in batches_of_origin(engine, "eval"):
            eval_rows = load_samples(engine, Selection(batch_ids=(ev.id,)))
            for f in dedup.contamination(texts, eval_rows.texts(), n=t.contamination_ngram):
                target = int(eval_rows.ids[f.other])
                marks.append(
                    NewMark(
                        int(rows.ids[f.index]),
                        "contamination",
                        target,
                        f.score,
                        f'Shares the {t.contamination_ngram}-gram "{f.detail}" with evaluation set '
                        f"'{ev.name}' (sample #{target}); {f.score:.0%} of this sample's "
                        f"{t.contamination_ngram}-grams occur in that set.",
                    )
                )
    owned = {k for s in scopes for k in SCOPE_KINDS[s]}
    pruned = set(owned)
    if not semantic:
        # Findings of a method that did not run are kept, not pruned.
        pruned -= {"semantic_duplicate", "duplicate_of_accepted", "copy_of_real"}
    changes = _sync_marks(engine, info.id, owned, pruned, marks)
    counts = {kind: 0 for kind in sorted(owned)}
    for m in marks:
        counts[m.kind] += 1
    progress(steps, steps, f"{len(marks):,} findings")
    return {
        "batch": info.name,
        "samples": n,
        "findings": counts,
        "marks": changes,
        "model": key if semantic else None,
        "minhash": signature_stats.to_dict(),
    }


# -- metrics -----------------------------------------------------------------------------


@dataclass
class DiversityResult:
    report: DiversityReport
    selection: str
    reference: list[str]
    model: str
    snapshot_id: int | None = None
    synthetic: SampleTable | None = field(default=None, repr=False)
    reference_rows: SampleTable | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "reference": self.reference,
            "model": self.model,
            "snapshot_id": self.snapshot_id,
            **self.report.to_dict(),
        }


def reference_selection(engine: Engine, families: Iterable[str]) -> Selection:
    """Real samples of the given families (all real samples if none of those exist)."""
    families = tuple(sorted(set(families)))
    if families:
        with session_scope(engine, write=False) as session:
            n = session.scalar(
                Selection(origins=("real",), families=families).where(select(func.count(Sample.id)))
            )
        if n:
            return Selection(origins=("real",), families=families)
    return Selection(origins=("real",))


def compute_diversity(
    engine: Engine,
    selection: Selection,
    *,
    model: str | None = None,
    mode: str = "prompt+response",
    thresholds: DiversityThresholds | None = None,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
    embed_missing: bool = True,
    save: bool = True,
    label: str | None = None,
    progress: Progress = _no_progress,
) -> DiversityResult:
    """Metrics of `selection` against the reference set (same families), with warnings.

    With `save`, a MetricSnapshot is written (scope "batch" when the selection is
    exactly one whole batch) so trends across batches and generations can be drawn."""
    key = cache_key(model or DEFAULT_MODEL, mode)
    progress(0, 3, "loading samples")
    syn = load_samples(engine, selection)
    if not len(syn):
        raise ValueError(f"the selection ({selection.describe()}) has no samples")
    ref_sel = reference_selection(engine, syn.families)
    ref = load_samples(engine, ref_sel)
    if not len(ref):
        raise ValueError(
            "there is no reference set: import real data with origin 'real' first (see `python -m curation demo`)"
        )
    total = len(syn)
    compared = min(total, len(ref), max_samples)
    if total > compared:
        # The metrics compare equal-size samples, so only those are embedded: a batch of
        # a million against a reference of 5,000 embeds 5,000 texts, not a million.
        syn = syn.subset(subsample(total, compared, np.random.default_rng(seed)))
    progress(1, 3, "embedding what is missing")
    syn_x = vectors_for(engine, syn, model=model, mode=mode, embed_missing=embed_missing)
    ref_x = vectors_for(engine, ref, model=model, mode=mode, embed_missing=embed_missing)
    progress(2, 3, "computing metrics")
    report = compare(
        syn_x,
        ref_x,
        syn.texts(mode),
        ref.texts(mode),
        syn_lengths=syn.lengths(),
        ref_lengths=ref.lengths(),
        thresholds=thresholds,
        seed=seed,
        max_samples=max_samples,
    )
    report.n_synthetic = total
    if label is None:
        names = sorted(set(syn.batch_names))
        label = f"batch {names[0]!r}" if len(names) == 1 else selection.describe()
        if selection.decisions:
            label += " (decision " + "/".join(selection.decisions) + ")"
    result = DiversityResult(
        report, label, sorted(set(ref.batch_names)), key, synthetic=syn, reference_rows=ref
    )
    if save:
        whole_batch = len(selection.batch_ids) == 1 and not (
            selection.sample_ids
            or selection.decisions
            or selection.passed
            or selection.families
            or selection.origins
        )
        batch_id = selection.batch_ids[0] if len(selection.batch_ids) == 1 else None
        scope = "batch" if whole_batch else f"selection: {selection.describe()}"[:200]
        with session_scope(engine) as session:
            snap = MetricSnapshot(batch_id=batch_id, scope=scope, model=key, metrics=result.to_dict())
            session.add(snap)
            session.flush()
            result.snapshot_id = snap.id
    progress(3, 3, f"{len(report.warnings)} warnings")
    return result


def latest_snapshots(
    engine: Engine, batch_ids: Sequence[int], model_key: str, scope: str = "batch"
) -> dict[int, dict[str, Any]]:
    """The newest snapshot of each batch (scope and model as given)."""
    out: dict[int, dict[str, Any]] = {}
    if not batch_ids:
        return out
    with session_scope(engine, write=False) as session:
        for chunk in _chunks(list(batch_ids)):
            for snap in session.scalars(
                select(MetricSnapshot)
                .where(
                    MetricSnapshot.batch_id.in_(chunk),
                    MetricSnapshot.scope == scope,
                    MetricSnapshot.model == model_key,
                )
                .order_by(MetricSnapshot.id)
            ):
                out[snap.batch_id] = {
                    "id": snap.id,
                    "created_at": snap.created_at,
                    **dict(snap.metrics or {}),
                }
    return out


# -- collapse monitor --------------------------------------------------------------------


def lineage_of(engine: Engine, batch: str | int) -> tuple[BatchInfo, list[BatchInfo]]:
    """(root, every batch of the lineage incl. the root), following parent_batch_id."""
    info = resolve_batch(engine, batch)
    with session_scope(engine, write=False) as session:
        visible = {
            b.id: _info(b) for b in session.scalars(select(Batch).where(Batch.status.not_in(HIDDEN_STATUSES)))
        }
    root, seen = info, {info.id}
    while (
        root.parent_batch_id is not None
        and root.parent_batch_id in visible
        and root.parent_batch_id not in seen
    ):
        root = visible[root.parent_batch_id]
        seen.add(root.id)
    children: dict[int, list[BatchInfo]] = {}
    for b in visible.values():
        if b.parent_batch_id is not None:
            children.setdefault(b.parent_batch_id, []).append(b)
    members, frontier, done = [root], [root.id], {root.id}
    while frontier:
        nxt = []
        for parent in frontier:
            for child in children.get(parent, []):
                if child.id not in done:
                    done.add(child.id)
                    members.append(child)
                    nxt.append(child.id)
        frontier = nxt
    return root, members


def _tracked(metrics: dict[str, Any]) -> dict[str, float | None]:
    m = metrics.get("metrics", {})
    return {
        "vendi_ratio": (m.get("vendi") or {}).get("ratio"),
        "coverage": (m.get("coverage") or {}).get("synthetic"),
        "spread_ratio": (m.get("spread") or {}).get("ratio"),
    }


def collapse_for(
    engine: Engine,
    batch: str | int,
    *,
    model: str | None = None,
    mode: str = "prompt+response",
    thresholds: DiversityThresholds | None = None,
    compute_missing: bool = True,
    progress: Progress = _no_progress,
) -> CollapseReport:
    """Trend of the diversity metrics across the generations of `batch`'s lineage.

    Each batch's newest "batch" snapshot is used; batches without one are measured
    first (unless `compute_missing` is off). Batches of one generation are averaged."""
    key = cache_key(model or DEFAULT_MODEL, mode)
    root, members = lineage_of(engine, batch)
    members = [m for m in members if m.origin == "synthetic"]
    snaps = latest_snapshots(engine, [m.id for m in members], key)
    for i, m in enumerate(members):
        if m.id not in snaps and compute_missing:
            progress(i, len(members), f"measuring {m.name}")
            result = compute_diversity(
                engine, Selection(batch_ids=(m.id,)), model=model, mode=mode, thresholds=thresholds
            )
            snaps[m.id] = result.to_dict()
    by_gen: dict[int, list[BatchInfo]] = {}
    for m in members:
        if m.id in snaps:
            by_gen.setdefault(m.generation, []).append(m)
    points = []
    for gen, batches in sorted(by_gen.items()):
        tracked = [_tracked(snaps[b.id]) for b in batches]
        metrics = {}
        for name in ("vendi_ratio", "coverage", "spread_ratio"):
            values = [v[name] for v in tracked if v[name] is not None]
            metrics[name] = float(np.mean(values)) if values else None
        shares = [s for s in (real_share_of(b.lineage) for b in batches) if s is not None]
        points.append(
            GenerationPoint(
                gen,
                [b.id for b in batches],
                [b.name for b in batches],
                metrics,
                float(np.mean(shares)) if shares else None,
            )
        )
    return collapse_report(points, root_id=root.id, root_name=root.name, thresholds=thresholds)


# -- 2-D map -----------------------------------------------------------------------------

MAP_METHODS = ("pca", "umap")


@dataclass
class MapData:
    """Points of the map: reference first, then the selection (at most max_points in all)."""

    x: np.ndarray
    y: np.ndarray
    sample_ids: np.ndarray
    source: list[str]
    origin: list[str]
    decision: list[str]
    verdict: list[str]
    cluster: np.ndarray
    prompt: list[str]
    sampled: bool
    total: int
    method: str
    explained: list[float]
    #: UMAP only: where the fitted model came from ("fitted", "memory", "disk") and its fit time.
    cache: str = ""
    fit_seconds: float | None = None
    n_fit: int = 0
    #: Why the map is PCA although UMAP was asked for (UMAP failed), else "".
    fallback: str = ""


def map_points(
    engine: Engine,
    selection: Selection,
    *,
    model: str | None = None,
    mode: str = "prompt+response",
    include_reference: bool = True,
    max_points: int = 50_000,
    method: str = "pca",
    seed: int = 0,
    embed_missing: bool = False,
    umap_epochs: int | None = None,
    progress: Progress = _no_progress,
) -> MapData:
    """2-D coordinates on axes fitted on the reference set (fixed across batches).

    `method` "pca" (the default) or "umap". UMAP is fitted once per reference set and
    cached (see curation.diversity.projection); reference points keep their fitted
    coordinates and the others are placed with the model's transform. When UMAP fails,
    the PCA map is returned with the reason in `fallback`.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map method {method!r}; use one of {', '.join(MAP_METHODS)}")
    syn = load_samples(engine, selection)
    ref = load_samples(engine, reference_selection(engine, syn.families if len(syn) else ()))
    if len(ref) < 2:
        raise ValueError("the map needs an embedded reference set (origin 'real') of at least two samples")
    ref_x = vectors_for(engine, ref, model=model, mode=mode, embed_missing=embed_missing)
    fallback = ""
    projection = None
    if method == "umap":
        try:
            projection = fit_umap(
                ref_x,
                seed=seed,
                n_epochs=umap_epochs,
                progress=progress,
                label=cache_key(model or DEFAULT_MODEL, mode),
            )
        except (
            Exception
        ) as exc:  # UMAP is an extra view: any failure falls back to the PCA map, with the reason
            fallback = f"{type(exc).__name__}: {exc}"
    if projection is None:
        projection = fit_pca(ref_x, seed=seed)
    centroids = fit_clusters(ref_x, default_clusters(len(ref_x)), seed)
    tables = [ref] if include_reference else []
    arrays = [ref_x] if include_reference else []
    if len(syn):
        tables.append(syn)
        arrays.append(vectors_for(engine, syn, model=model, mode=mode, embed_missing=embed_missing))
    ids = np.concatenate([t.ids for t in tables]) if tables else np.zeros(0, dtype=np.int64)
    x = np.concatenate(arrays) if arrays else np.zeros((0, ref_x.shape[1]), dtype=np.float32)
    rows, sampled = sample_points(len(ids), max_points, seed)
    fitted = np.full(len(ids), -1, dtype=np.int64)  # per point: its row in the UMAP fit, or -1
    if include_reference:
        fitted[: len(ref)] = projection.fit_positions(len(ref))
    if len(rows) and (fitted[rows] < 0).any() and projection.method == "umap":
        progress(0, None, f"placing {int((fitted[rows] < 0).sum()):,} points on the UMAP map")
    try:
        xy = projection.place(x[rows], fitted[rows]) if len(rows) else np.zeros((0, 2), dtype=np.float32)
    except Exception as exc:  # a model that cannot transform (should not happen): fall back as above
        if projection.method != "umap":
            raise
        fallback, projection = f"{type(exc).__name__}: {exc}", fit_pca(ref_x, seed=seed)
        xy = projection.transform(x[rows]) if len(rows) else np.zeros((0, 2), dtype=np.float32)

    def col(name: str) -> list[Any]:
        values = [v for t in tables for v in getattr(t, name)]
        return [values[i] for i in rows]

    def verdict(p: bool | None) -> str:
        return "not judged" if p is None else ("passed" if p else "failed")

    return MapData(
        x=xy[:, 0],
        y=xy[:, 1],
        sample_ids=ids[rows],
        source=[
            ("real: " if o == "real" else "") + b
            for o, b in zip(col("origins"), col("batch_names"), strict=True)
        ],
        origin=col("origins"),
        decision=[d or "undecided" for d in col("decisions")],
        verdict=[verdict(p) for p in col("passed")],
        cluster=assign_clusters(centroids, x[rows]),
        prompt=[p[:300] for p in col("prompts")],
        sampled=sampled,
        total=len(ids),
        method=projection.method,
        explained=[float(v) for v in projection.explained],
        cache=projection.cache,
        fit_seconds=projection.fit_seconds,
        n_fit=len(projection.fit_rows) if projection.fit_rows is not None else 0,
        fallback=fallback,
    )


# -- helpers for the page ----------------------------------------------------------------


def embedded_counts(
    engine: Engine, selection: Selection, *, model: str | None = None, mode: str = "prompt+response"
) -> tuple[int, int]:
    """(samples in the selection, samples whose vector is cached)."""
    key = cache_key(model or DEFAULT_MODEL, mode)
    with session_scope(engine, write=False) as session:
        total = session.scalar(selection.where(select(func.count(Sample.id)))) or 0
        embedded = (
            session.scalar(
                selection.where(select(func.count(Sample.id))).join(
                    Embedding, (Embedding.content_hash == Sample.content_hash) & (Embedding.model == key)
                )
            )
            or 0
        )
    return total, embedded


def embed_scope(
    engine: Engine, *, reference: bool = False, eval_sets: bool = False, batch: str | None = None
) -> tuple[Selection, str]:
    """What an embed command or job covers: the reference set, the evaluation sets or one
    batch, as (selection, description)."""
    if reference:
        return Selection(origins=("real",)), "the reference set"
    if eval_sets:
        return Selection(origins=("eval",)), "the evaluation sets"
    info = resolve_batch(engine, batch)
    return Selection(batch_ids=(info.id,)), f"batch {info.name!r}"


@writes(Action.ANALYSE)
def start_diversity_job(engine: Engine, actor: Actor, kind: str, params: dict[str, Any], *, created_by: str = "") -> int:
    """Start an "embed", "dedup" or "diversity" job in a worker process; returns its id."""
    if kind not in ("embed", "dedup", "diversity"):
        raise ValueError(f"not a diversity job kind: {kind!r}")
    if kind != "embed" or not (params.get("reference") or params.get("eval")):
        resolve_batch(engine, params["batch"])
    return start_job(engine, actor, kind, params, created_by=created_by)
