"""Export rows with provenance, fetched chunk by chunk in the plan's order.

Each chunk is three batched queries (samples, verdicts, decisions) on ids; nothing
beyond a chunk is held. Nested fields come from the store as JSON text and stay
text: tabular writers store them as they are, JSON writers splice them in, so a
million rows are never parsed and re-serialised field by field. Batch-level
provenance (teacher, model, generation parameters) is serialised once per batch."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Engine, Select, String, Text, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY

from curation.store.db import session_scope
from curation.store.models import Batch, Decision, Sample, Verdict
from curation.verification.versions import current_only, current_versions

CHUNK = 2000
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
#: A Python str as a JSON string literal (the C encoder json.dumps uses).
_str = json.encoder.encode_basestring
_VERDICT_CACHE_MAX = 50_000

#: The keys of `provenance`, explained in the dataset card.
PROVENANCE_FIELDS: dict[str, str] = {
    "source": '"synthetic" (teacher output, accepted by a reviewer) or "real" (human-written reference data)',
    "sample_id": "the sample's id in the Assay store (resolves back to the sample and its history)",
    "split": '"train" or "validation"',
    "batch": "the batch (generation run or imported file) the sample belongs to",
    "batch_source": "where the batch came from (teacher and problem source, or the imported file)",
    "teacher": "the teacher that generated the response (null for real data)",
    "model": "the teacher's model name",
    "generation_params": "sampling and prompting parameters of the generation run (no secrets)",
    "generation": "generation number in a lineage of synthetic batches (0 = from real data)",
    "verdicts": "automatic verifier results (each verifier's current version): verifier, version, passed, score, reason",
    "decision": "the reviewer's latest decision: action, reviewer, time, reason tags, decision id",
    "content_hash": "sha256 of [family, prompt, response] as stored (detects any change)",
}

_TEACHER_SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "system_prompt")
_RUN_KEYS = ("mode", "n", "seed", "levers", "template", "source_label", "consistency", "family")


def generation_params(config: dict[str, Any]) -> dict[str, Any]:
    """The reproducible part of a batch's generation config (never endpoints or key names)."""
    if "params" in config and isinstance(config["params"], dict):
        return dict(config["params"])
    out = {key: config[key] for key in _RUN_KEYS if key in config}
    teacher = config.get("teacher_config") or {}
    sampling = {key: teacher[key] for key in _TEACHER_SAMPLING if teacher.get(key) is not None}
    if sampling:
        out["sampling"] = sampling
    return out


@dataclass(frozen=True)
class BatchInfo:
    name: str
    origin: str
    source: str
    teacher: str | None
    model: str | None
    params: dict[str, Any]
    generation: int
    #: `"batch":...,"batch_source":...,...` — the batch's part of every row's provenance JSON.
    fragment: str = field(repr=False, default="")


def batch_info(engine: Engine, batch_ids: Iterable[int]) -> dict[int, BatchInfo]:
    ids = list(batch_ids)
    out: dict[int, BatchInfo] = {}
    with session_scope(engine, write=False) as session:
        for batch in session.scalars(select(Batch).where(Batch.id.in_(ids))):
            config = dict(batch.generation_config or {})
            synthetic = batch.origin == "synthetic"
            teacher = config.get("teacher") if synthetic else None
            model = config.get("model") if synthetic else None
            params = generation_params(config) if synthetic else {}
            part = {
                "batch": batch.name,
                "batch_source": batch.source,
                "teacher": teacher,
                "model": model,
                "generation_params": params,
                "generation": batch.generation,
            }
            fragment = _dumps(part)[1:-1]
            out[batch.id] = BatchInfo(
                batch.name, batch.origin, batch.source, teacher, model, params, batch.generation, fragment
            )
    return out


def _sqlite_ids() -> Select:
    """The ids of the one `ids` parameter (a JSON array) as rows, on SQLite."""
    return select(literal_column("value")).select_from(func.json_each(bindparam("ids", type_=String)))


def _postgres_ids() -> Any:
    """The one `ids` parameter, an array, on PostgreSQL."""
    return bindparam("ids", type_=ARRAY(BigInteger))


def id_filter(engine: Engine, column: Any) -> Any:
    """`column IN (:ids)` with ONE bind parameter (a JSON array on SQLite, an array on
    PostgreSQL, the two supported stores): compiled once and cached, instead of one
    parameter per id."""
    if engine.dialect.name == "sqlite":
        return column.in_(_sqlite_ids())
    return column == func.any(_postgres_ids())


def id_rows(engine: Engine) -> Select:
    """The ids of the `ids` parameter as rows of one column (for INSERT ... SELECT)."""
    return _sqlite_ids() if engine.dialect.name == "sqlite" else select(func.unnest(_postgres_ids()))


def id_param(engine: Engine, ids: list[int]) -> Any:
    """The value of the `ids` parameter of `id_filter`."""
    return json.dumps(ids) if engine.dialect.name == "sqlite" else ids


def _verdict_json(
    verifier: str, version: str, passed: bool | None, score: float | None, reason: str | None
) -> str:
    p = "null" if passed is None else "true" if passed else "false"
    sc = (
        "null"
        if score is None or score != score or score in (float("inf"), float("-inf"))
        else repr(float(score))
    )
    return (
        f'{{"verifier":{_str(verifier)},"version":{_str(version)},"passed":{p},"score":{sc},'
        f'"reason":{_str(reason) if reason is not None else "null"}}}'
    )


def _json_text(raw: str | None) -> str:
    """A nested field's stored JSON text; missing or null becomes {}."""
    if raw is None or raw == "null" or raw == "":
        return "{}"
    return raw


class ExportRecord:
    """One exported row. Nested fields are JSON text; `to_dict` parses them."""

    __slots__ = (
        "sample_id",
        "id",
        "family",
        "prompt",
        "response",
        "reference_json",
        "metadata_json",
        "provenance_json",
        "source",
        "split",
        "verdicts",
        "decision",
        "batch",
        "content_hash",
    )

    def __init__(
        self,
        sample_id: int,
        id: str,
        family: str,
        prompt: str,
        response: str,
        reference_json: str,
        metadata_json: str,
        provenance_json: str,
        source: str,
        split: str,
        verdicts: list[tuple[str, str, bool | None]],
        decision: str | None,
        batch: str,
        content_hash: str,
    ) -> None:
        self.sample_id = sample_id
        self.id = id
        self.family = family
        self.prompt = prompt
        self.response = response
        self.reference_json = reference_json
        self.metadata_json = metadata_json
        self.provenance_json = provenance_json
        self.source = source
        self.split = split
        self.verdicts = verdicts
        self.decision = decision
        self.batch = batch
        self.content_hash = content_hash

    @property
    def reference(self) -> dict[str, Any]:
        return json.loads(self.reference_json)

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_json)

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.provenance_json)

    def to_dict(self) -> dict[str, Any]:
        """The interchange record plus `provenance`, as Python objects."""
        return {
            "id": self.id,
            "family": self.family,
            "prompt": self.prompt,
            "response": self.response,
            "reference": self.reference,
            "metadata": self.metadata,
            "provenance": self.provenance,
        }

    def interchange_json(self, extra: str = "") -> str:
        """`{"id":..,"family":..,"prompt":..,"response":..,"reference":..,"metadata":..<extra>}` as text."""
        return (
            f'{{"id":{_dumps(self.id)},"family":{_dumps(self.family)},"prompt":{_dumps(self.prompt)},'
            f'"response":{_dumps(self.response)},"reference":{self.reference_json},"metadata":{self.metadata_json}'
            f"{extra}}}"
        )


def iter_records(
    engine: Engine,
    sample_ids: Iterable[int],
    *,
    split: str = "train",
    batches: dict[int, BatchInfo] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Iterator[ExportRecord]:
    """ExportRecords for `sample_ids`, in that order. `on_chunk(n)` after each chunk
    (progress and cancellation checks)."""
    ids = [int(i) for i in sample_ids]
    batches = dict(batches or {})
    columns = (
        Sample.id,
        Sample.batch_id,
        Sample.external_id,
        Sample.family,
        Sample.prompt,
        Sample.response,
        cast(Sample.reference, Text),
        cast(Sample.meta, Text),
        Sample.content_hash,
        Sample.decision,
    )
    sample_query = select(*columns).where(id_filter(engine, Sample.id))
    verdict_query = (
        select(
            Verdict.sample_id,
            Verdict.verifier,
            Verdict.version,
            Verdict.passed,
            Verdict.score,
            Verdict.reason,
        )
        .where(id_filter(engine, Verdict.sample_id))
        .order_by(Verdict.id)
    )
    decision_query = (
        select(
            Decision.sample_id,
            Decision.id,
            Decision.reviewer,
            Decision.created_at,
            cast(Decision.reason_tags, Text),
        )
        .where(id_filter(engine, Decision.sample_id))
        .order_by(Decision.id)
    )
    verdict_cache: dict[tuple[Any, ...], str] = {}
    versions = current_versions()

    def fetch(
        chunk: list[int],
    ) -> tuple[dict[int, Any], dict[int, list[tuple[str, str, bool | None, str]]], dict[int, Any]]:
        param = {"ids": id_param(engine, chunk)}
        with engine.connect() as conn:
            samples = {row[0]: row for row in conn.execute(sample_query, param).all()}
            verdicts: dict[int, list[tuple[str, str, bool | None, str]]] = {}
            if len(verdict_cache) > _VERDICT_CACHE_MAX:
                verdict_cache.clear()
            current = current_only(
                conn.execute(verdict_query, param).all(),
                sample=itemgetter(0),
                verifier=itemgetter(1),
                version=itemgetter(2),
                versions=versions,
            )
            for sample_id, *verdict in current:
                key = tuple(verdict)
                text = verdict_cache.get(key)
                if text is None:
                    text = verdict_cache[key] = _verdict_json(*verdict)
                verdicts.setdefault(sample_id, []).append((verdict[0], verdict[1], verdict[2], text))
            decisions = {row[0]: row for row in conn.execute(decision_query, param).all()}
        return samples, verdicts, decisions

    chunks = [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]
    # The next chunk is read in a background thread while this one is turned into rows
    # (the database driver releases the GIL while it reads).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-fetch") as pool:
        pending = pool.submit(fetch, chunks[0]) if chunks else None
        for number, chunk in enumerate(chunks):
            samples, verdicts, decisions = pending.result()
            if number + 1 < len(chunks):
                pending = pool.submit(fetch, chunks[number + 1])
            missing = {row[1] for row in samples.values()} - set(batches)
            if missing:
                batches.update(batch_info(engine, missing))
            yield from _records(chunk, samples, verdicts, decisions, batches, split)
            if on_chunk is not None:
                on_chunk(len(chunk))


def _records(
    chunk: list[int],
    samples: dict[int, Any],
    verdicts: dict[int, list[tuple[str, str, bool | None, str]]],
    decisions: dict[int, Any],
    batches: dict[int, BatchInfo],
    split: str,
) -> Iterator[ExportRecord]:
    for sample_id in chunk:
        row = samples.get(sample_id)
        if row is None:
            raise KeyError(f"sample {sample_id} disappeared from the store during the export")
        _, batch_id, external_id, family, prompt, response, ref, meta, chash, action = row
        info = batches[batch_id]
        source = "real" if info.origin == "real" else "synthetic"
        decision = decisions.get(sample_id)
        if decision is None or action is None:
            decision_json = "null"
        else:
            tags = decision[4]
            decision_json = (
                f'{{"action":{_str(action)},"reviewer":{_str(decision[2])},"at":"{decision[3].isoformat()}",'
                f'"reason_tags":{"[]" if not tags or tags == "null" else tags},"decision_id":{decision[1]}}}'
            )
        found = verdicts.get(sample_id, ())
        verdict_json = "[" + ",".join(v[3] for v in found) + "]"
        provenance = (
            f'{{"source":"{source}","sample_id":{sample_id},"split":"{split}",{info.fragment},'
            f'"verdicts":{verdict_json},"decision":{decision_json},"content_hash":"{chash}"}}'
        )
        yield ExportRecord(
            sample_id,
            external_id or f"assay-{sample_id}",
            family,
            prompt,
            response,
            _json_text(ref),
            _json_text(meta),
            provenance,
            source,
            split,
            [v[:3] for v in found],
            action,
            info.name,
            chash,
        )
