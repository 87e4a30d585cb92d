"""The export plan: which rows an export will hold and why every other row is left out.

`plan_export` reads the store and writes nothing. It picks the accepted synthetic
samples of the chosen batches and families and the real rows of the chosen
reference sets, then, in this order, drops a synthetic sample that

0. is not the candidate the best-of-n rule keeps (`config.candidates`: `first`, `all` or
   `best`; `candidate_failed` when it did not pass verification, `candidate_not_judged`
   when `best` has no judge score for it, `candidate_not_chosen` when another candidate
   of its problem was kept),
1. carries a dedup mark no reviewer overrode (`mark:<kind>`),
2. has the same normalised text as a real row (`copy_of_real`),
3. shares a word 13-gram with a chosen evaluation set (`contamination`),
4. has the same normalised text as an earlier kept synthetic sample (`duplicate`),
5. is not needed to reach the synthetic share (`over_share`).

Real rows are all kept (the accumulate rule) except those a reviewer rejected
(`real_rejected`), those overlapping an evaluation set (`contamination`) and — only
with `allow_dropping_real` — those dropped to reach the share (`real_for_share`).
Every dropped row is counted under its reason; the run stores the ids too.

The kept rows are shuffled with the seed and split into train/validation,
stratified by family and source (both splits get the same mix). Only arrays of ids are held, never the texts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from curation.data import FAMILIES
from curation.export.candidates import candidate_facts, chosen_candidates
from curation.export.config import MIN_REAL_SHARE, ExportConfig
from curation.export.textmatch import NgramIndex, text_key
from curation.store.db import session_scope
from curation.store.models import Batch, Mark, Sample
from curation.store.queries import HIDDEN_STATUSES

SCAN_ROWS = 5000
CONTAMINATION_BLOCK = 20_000
SPLITS = ("train", "validation")
#: Mark kinds in the order one is chosen as *the* reason when a sample has several.
MARK_PRIORITY = ("copy_of_real", "contamination", "exact_dup", "near_dup", "semantic_dup")

REASON_LABELS = {
    "candidate_failed": "candidate did not pass verification (best-of-n rule)",
    "candidate_not_chosen": "another candidate of the same problem was kept (best-of-n rule)",
    "candidate_not_judged": "passed, but has no judge score to rank it by (best-of-n rule 'best')",
    "copy_of_real": "same text as a real row",
    "contamination": "13-gram overlap with an evaluation set",
    "duplicate": "same text as another exported synthetic row",
    "over_share": "not needed for the synthetic share",
    "real_rejected": "real row rejected by a reviewer",
    "real_for_share": "real row dropped to reach the synthetic share (allowed by the export)",
}

Progress = Callable[[int, int | None, str], None]


def reason_label(code: str) -> str:
    """Human wording of a drop reason code."""
    if code.startswith("mark:"):
        return f"{code[5:].replace('_', ' ')} (dedup mark, not overridden)"
    return REASON_LABELS.get(code, code.replace("_", " "))


@dataclass
class ExportPlan:
    """Counts, reasons, warnings and errors of an export, plus the ordered ids to write.

    `ids`, `sources` (0 synthetic, 1 real), `families` (index into FAMILIES) and
    `splits` (index into SPLITS) are aligned arrays in output order."""

    config: ExportConfig
    ids: np.ndarray
    sources: np.ndarray
    families: np.ndarray
    splits: np.ndarray
    batch_ids: np.ndarray
    batch_names: dict[int, str]
    candidates: dict[str, int]
    not_accepted: dict[str, int]
    dropped: dict[str, dict[str, int]]
    dropped_ids: dict[str, np.ndarray]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    batches: dict[str, list[str]] = field(default_factory=dict)
    contamination_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def rows(self) -> int:
        return len(self.ids)

    def count(self, *, source: int | None = None, family: str | None = None, split: str | None = None) -> int:
        mask = np.ones(len(self.ids), dtype=bool)
        if source is not None:
            mask &= self.sources == source
        if family is not None:
            mask &= self.families == FAMILIES.index(family)
        if split is not None:
            mask &= self.splits == SPLITS.index(split)
        return int(mask.sum())

    def share(self, family: str | None = None) -> float | None:
        """The achieved synthetic share (None when there are no rows)."""
        total = self.count(family=family)
        return None if total == 0 else self.count(source=0, family=family) / total

    def split_ids(self, split: str) -> np.ndarray:
        return self.ids[self.splits == SPLITS.index(split)]

    def split_names(self) -> list[str]:
        return [s for s in SPLITS if s == "train" or self.count(split=s)]

    def summary(self) -> dict[str, Any]:
        """Everything the preview and the manifest show (JSON-ready, no ids)."""
        families = {
            family: {
                "synthetic": self.count(source=0, family=family),
                "real": self.count(source=1, family=family),
            }
            for family in FAMILIES
            if self.count(family=family)
        }
        shares = {family: self.share(family) for family in families}
        batch_counts = Counter(self.batch_ids.tolist())
        return {
            "rows": self.rows,
            "synthetic": self.count(source=0),
            "real": self.count(source=1),
            "synthetic_share": self.share(),
            "families": families,
            "family_shares": shares,
            "splits": {
                split: {
                    "synthetic": self.count(source=0, split=split),
                    "real": self.count(source=1, split=split),
                }
                for split in self.split_names()
            },
            "batches": {self.batch_names[b]: n for b, n in sorted(batch_counts.items())},
            "candidates": dict(self.candidates),
            "not_accepted": dict(self.not_accepted),
            "dropped": {reason: dict(by_source) for reason, by_source in self.dropped.items()},
            "warnings": list(self.warnings),
            "errors": list(self.errors),
        }

    def dropped_table(self) -> list[dict[str, Any]]:
        return [
            {
                "reason": reason_label(code),
                "code": code,
                "synthetic": n.get("synthetic", 0),
                "real": n.get("real", 0),
            }
            for code, n in self.dropped.items()
        ]


def resolve_batches(session: Any, origin: str, names: list[str] | None) -> dict[int, str]:
    query = select(Batch.id, Batch.name, Batch.origin).where(Batch.status.not_in(HIDDEN_STATUSES))
    if names is None:
        return {
            row.id: row.name
            for row in session.execute(query.where(Batch.origin == origin).order_by(Batch.id))
        }
    found = {row.name: row for row in session.execute(query.where(Batch.name.in_(names)))}
    out: dict[int, str] = {}
    kind = {"synthetic": "synthetic batch", "real": "reference set", "eval": "evaluation set"}
    for name in names:
        row = found.get(name)
        if row is None:
            raise KeyError(f"no batch named {name!r}")
        if row.origin != origin:
            raise ValueError(f"batch {name!r} is a {kind[row.origin]}, not a {kind[origin]}")
        out[row.id] = name
    return out


def _scan(engine: Engine, query: Any) -> Any:
    """Stream the rows of `query` (server-side cursor on PostgreSQL)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=SCAN_ROWS).execute(query)
        yield from result


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, *purpose])


class _Pool:
    """Candidates of one source as aligned arrays (sorted by id)."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.batches: list[int] = []
        self.families: list[int] = []
        self.keys: list[int] = []
        self.contaminated: list[int] = []

    def freeze(self) -> None:
        self.id_arr = np.asarray(self.ids, dtype=np.int64)
        self.batch_arr = np.asarray(self.batches, dtype=np.int64)
        self.family_arr = np.asarray(self.families, dtype=np.int8)
        self.key_arr = np.asarray(self.keys, dtype=np.int64)
        self.reason = np.zeros(len(self.ids), dtype=np.int16)
        self.ids = self.batches = self.families = self.keys = []


def _collect(
    engine: Engine,
    query: Any,
    pool: _Pool,
    index: NgramIndex | None,
    progress: Progress | None,
    label: str,
    examples: list[dict[str, Any]],
) -> None:
    block_texts: list[str] = []
    block_start = 0
    family_index = {f: i for i, f in enumerate(FAMILIES)}

    def check_block() -> None:
        if index is None or not block_texts:
            return
        for position, gram, other in index.matches(block_texts):
            pool.contaminated.append(block_start + position)
            if len(examples) < 20:
                examples.append(
                    {"sample_id": pool.ids[block_start + position], "ngram": gram, "eval_index": other}
                )

    for sample_id, batch_id, family, prompt, response in _scan(engine, query):
        pool.ids.append(sample_id)
        pool.batches.append(batch_id)
        pool.families.append(family_index.get(family, 0))
        pool.keys.append(text_key(prompt, response))
        if index is not None:
            block_texts.append(f"{prompt}\n{response}")
            if len(block_texts) >= CONTAMINATION_BLOCK:
                check_block()
                block_start += len(block_texts)
                block_texts = []
        if progress is not None and len(pool.ids) % 50_000 == 0:
            progress(len(pool.ids), None, f"planning: read {len(pool.ids):,} {label} rows")
    check_block()
    pool.freeze()


def plan_export(engine: Engine, config: ExportConfig, progress: Progress | None = None) -> ExportPlan:
    """Decide what an export holds (reads the store; writes nothing)."""
    with session_scope(engine, write=False) as session:
        synthetic = resolve_batches(session, "synthetic", config.batches)
        real = resolve_batches(session, "real", config.reference_sets)
        evals = resolve_batches(session, "eval", config.eval_sets)
        family_filter = config.families
        not_accepted_query = (
            select(Sample.decision, func.count())
            .where(Sample.batch_id.in_(list(synthetic)), Sample.decision.is_distinct_from("accept"))
            .group_by(Sample.decision)
        )
        rejected_real_query = select(func.count()).where(
            Sample.batch_id.in_(list(real)), Sample.decision == "reject"
        )
        if family_filter is not None:
            not_accepted_query = not_accepted_query.where(Sample.family.in_(family_filter))
            rejected_real_query = rejected_real_query.where(Sample.family.in_(family_filter))
        not_accepted = {(d or "undecided"): n for d, n in session.execute(not_accepted_query)}
        rejected_real = int(session.scalar(rejected_real_query) or 0)
        marks: dict[int, str] = {}
        if synthetic:
            mark_rows = session.execute(
                select(Mark.sample_id, Mark.kind)
                .join(Sample, Sample.id == Mark.sample_id)
                .where(
                    Sample.batch_id.in_(list(synthetic)),
                    Sample.decision == "accept",
                    Mark.overridden_by.is_(None),
                )
            )
            for sample_id, kind in mark_rows:
                current = marks.get(sample_id)
                if current is None or _mark_rank(kind) < _mark_rank(current):
                    marks[sample_id] = kind
        eval_texts = (
            [
                f"{p}\n{r}"
                for p, r in session.execute(
                    select(Sample.prompt, Sample.response).where(Sample.batch_id.in_(list(evals)))
                )
            ]
            if evals
            else []
        )

    index = NgramIndex(eval_texts) if eval_texts else None
    examples: list[dict[str, Any]] = []
    columns = (Sample.id, Sample.batch_id, Sample.family, Sample.prompt, Sample.response)

    syn = _Pool()
    if synthetic:
        query = select(*columns).where(Sample.batch_id.in_(list(synthetic)), Sample.decision == "accept")
        if family_filter is not None:
            query = query.where(Sample.family.in_(family_filter))
        _collect(engine, query.order_by(Sample.id), syn, index, progress, "synthetic", examples)
    else:
        syn.freeze()
    rl = _Pool()
    if real:
        query = select(*columns).where(
            Sample.batch_id.in_(list(real)), Sample.decision.is_distinct_from("reject")
        )
        if family_filter is not None:
            query = query.where(Sample.family.in_(family_filter))
        _collect(engine, query.order_by(Sample.id), rl, index, progress, "real", examples)
    else:
        rl.freeze()

    codes: list[str] = [""]

    def code(reason: str) -> int:
        if reason not in codes:
            codes.append(reason)
        return codes.index(reason)

    # 0. the best-of-n rule
    if config.candidates is not None and len(syn.id_arr):
        facts = candidate_facts(engine, synthetic, family_filter)
        passed = {c.sample_id for c in facts if c.passed is True}
        chosen = np.fromiter(chosen_candidates(facts, config.candidates), dtype=np.int64)
        left_out = ~np.isin(syn.id_arr, chosen)
        did_pass = np.isin(syn.id_arr, np.fromiter(passed, dtype=np.int64, count=len(passed)))
        syn.reason[left_out & ~did_pass] = code("candidate_failed")
        if config.candidates == "best":
            unscored = [c.sample_id for c in facts if c.passed is True and c.judge_score is None]
            not_judged = left_out & did_pass & np.isin(syn.id_arr, np.asarray(unscored, dtype=np.int64))
            syn.reason[not_judged] = code("candidate_not_judged")
            left_out &= ~not_judged
        syn.reason[left_out & did_pass] = code("candidate_not_chosen")
    # 1. dedup marks
    if marks:
        hit = np.flatnonzero(
            (syn.reason == 0) & np.isin(syn.id_arr, np.fromiter(marks, dtype=np.int64, count=len(marks)))
        )
        for i in hit:
            syn.reason[i] = code(f"mark:{marks[int(syn.id_arr[i])]}")
    # 2. same normalised text as a real row
    copies = (syn.reason == 0) & np.isin(syn.key_arr, rl.key_arr)
    syn.reason[copies] = code("copy_of_real")
    # 3. decontamination
    for pool in (syn, rl):
        if pool.contaminated:
            at = np.asarray(pool.contaminated, dtype=np.int64)
            at = at[pool.reason[at] == 0]
            pool.reason[at] = code("contamination")
    # 4. exact duplicates among the remaining synthetic rows (the earliest id is kept)
    active = np.flatnonzero(syn.reason == 0)
    _, first = np.unique(syn.key_arr[active], return_index=True)
    later = np.ones(len(active), dtype=bool)
    later[first] = False
    syn.reason[active[later]] = code("duplicate")

    # 5. the synthetic share, per family with its own share and over the pool of the others
    warnings: list[str] = []
    errors: list[str] = []
    present = sorted(set(syn.family_arr.tolist()) | set(rl.family_arr.tolist()))
    own = [FAMILIES.index(f) for f in config.family_shares if FAMILIES.index(f) in present]
    pooled = [f for f in present if f not in own]
    groups: list[tuple[str, list[int], float | None, int]] = [
        (f"family {FAMILIES[f]}", [f], config.family_shares[FAMILIES[f]], 10 + f) for f in own
    ]
    if pooled:
        groups.append(("overall" if not own else "other families", pooled, config.synthetic_share, 1))
    for label, fams, share, stream in groups:
        _apply_share(config, label, fams, share, stream, syn, rl, code, errors)

    kept_syn = syn.reason == 0
    kept_real = rl.reason == 0
    ids = np.concatenate([syn.id_arr[kept_syn], rl.id_arr[kept_real]])
    sources = np.concatenate([np.zeros(kept_syn.sum(), np.int8), np.ones(kept_real.sum(), np.int8)])
    families = np.concatenate([syn.family_arr[kept_syn], rl.family_arr[kept_real]])
    batch_ids = np.concatenate([syn.batch_arr[kept_syn], rl.batch_arr[kept_real]])
    order = np.argsort(ids, kind="stable")
    order = order[_rng(config.seed, 0).permutation(len(order))]
    ids, sources, families, batch_ids = ids[order], sources[order], families[order], batch_ids[order]
    splits = np.zeros(len(ids), dtype=np.int8)
    if config.validation_fraction > 0:
        strata = families.astype(np.int64) * 2 + sources
        for stratum in np.unique(strata):
            members = np.flatnonzero(strata == stratum)
            splits[members[: round(config.validation_fraction * len(members))]] = 1

    dropped: dict[str, dict[str, int]] = {}
    dropped_ids: dict[str, np.ndarray] = {}
    for source, pool in (("synthetic", syn), ("real", rl)):
        for c in np.unique(pool.reason):
            if c == 0:
                continue
            where = pool.reason == c
            dropped.setdefault(codes[c], {})[source] = int(where.sum())
            dropped_ids[codes[c]] = np.concatenate(
                [dropped_ids.get(codes[c], np.zeros(0, np.int64)), pool.id_arr[where]]
            )
    if rejected_real:
        dropped["real_rejected"] = {"real": rejected_real}

    plan = ExportPlan(
        config=config,
        ids=ids,
        sources=sources,
        families=families,
        splits=splits,
        batch_ids=batch_ids,
        batch_names={**synthetic, **real},
        candidates={"synthetic": len(syn.id_arr), "real": len(rl.id_arr) + rejected_real},
        not_accepted=not_accepted,
        dropped=dropped,
        dropped_ids=dropped_ids,
        warnings=warnings,
        errors=errors,
        batches={
            "synthetic": list(synthetic.values()),
            "real": list(real.values()),
            "eval": list(evals.values()),
        },
        contamination_examples=examples,
    )
    _warn(plan, synthetic, real, evals)
    return plan


def _mark_rank(kind: str) -> int:
    return MARK_PRIORITY.index(kind) if kind in MARK_PRIORITY else len(MARK_PRIORITY)


def _apply_share(
    config: ExportConfig,
    label: str,
    fams: list[int],
    share: float | None,
    stream: int,
    syn: _Pool,
    rl: _Pool,
    code: Callable[[str], int],
    errors: list[str],
) -> None:
    """Keep the number of synthetic rows that makes `share` of the group synthetic."""
    if share is None:
        return
    pool = np.flatnonzero((syn.reason == 0) & np.isin(syn.family_arr, fams))
    reals = np.flatnonzero((rl.reason == 0) & np.isin(rl.family_arr, fams))
    n_pool, n_real = len(pool), len(reals)
    if share >= 1.0:
        need, keep_real = n_pool, 0
    elif share <= 0.0:
        need, keep_real = 0, n_real
    else:
        need = round(share * n_real / (1.0 - share))
        keep_real = n_real
        if n_real == 0 and n_pool:
            errors.append(
                f"{label}: no real rows to mix with, so a synthetic share of {share:.0%} keeps no synthetic row; "
                "choose a reference set, or set the share to 100% or leave it unset"
            )
            return
        if need > n_pool:
            keep_real = round(n_pool * (1.0 - share) / share)
    if keep_real < n_real:
        if not config.allow_dropping_real:
            if share >= 1.0:
                errors.append(
                    f"{label}: a synthetic share of 100% would drop all {n_real:,} real rows; lower the share, "
                    "or allow dropping real rows"
                )
            else:
                most = n_pool / (n_pool + n_real)
                errors.append(
                    f"{label}: a synthetic share of {share:.0%} needs {need:,} synthetic rows to keep all {n_real:,} "
                    f"real rows, but only {n_pool:,} are available; lower the share to at most {most:.1%}, or allow "
                    f"dropping real rows (that keeps {keep_real:,} of {n_real:,} real rows)"
                )
            return
        drop = reals[_rng(config.seed, stream, 1).permutation(n_real)[keep_real:]]
        rl.reason[drop] = code("real_for_share")
        need = n_pool
    if need < n_pool:
        drop = pool[_rng(config.seed, stream, 2).permutation(n_pool)[need:]]
        syn.reason[drop] = code("over_share")


def _warn(plan: ExportPlan, synthetic: dict[int, str], real: dict[int, str], evals: dict[int, str]) -> None:
    if plan.rows == 0:
        plan.warnings.append(
            "the export is empty: no accepted synthetic sample and no real row in the selection"
        )
        return
    real_share = plan.count(source=1) / plan.rows
    if real_share < MIN_REAL_SHARE:
        plan.warnings.append(
            f"real data is {real_share:.1%} of the export (under {MIN_REAL_SHARE:.0%}): training mostly on synthetic "
            "data risks model collapse; add a reference set or lower the synthetic share"
        )
    if not evals:
        plan.warnings.append("no evaluation set chosen: the export is not decontaminated")
    if "real_for_share" in plan.dropped:
        n = plan.dropped["real_for_share"]["real"]
        plan.warnings.append(
            f"{n:,} real rows are dropped to reach the synthetic share (allowed by this export)"
        )
