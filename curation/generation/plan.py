"""From parameters to items: problems from the source, diversity levers, few-shot
examples, rendered prompts. Deterministic for a seed, so a resumed run rebuilds
exactly the items of the first one (the few-shot pool is read back from the
batch's lineage rather than drawn again)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from curation.generation.constraints import catalog_text
from curation.generation.params import GenerationParams
from curation.generation.structured import response_format, schema_instruction
from curation.generation.templates import (
    DEFAULT_PERSONAS,
    DEFAULT_TOPICS,
    PromptTemplate,
    TemplateError,
    default_template,
    render_messages,
)
from curation.sources import Problem, make_source
from curation.store.db import session_scope
from curation.store.models import Batch, Sample

EXAMPLE_CHARS = 2000


@dataclass
class Example:
    sample_id: int
    prompt: str
    response: str


@dataclass
class PlanItem:
    index: int
    problem: Problem
    task: str
    template: PromptTemplate
    variables: dict[str, Any]
    few_shot_ids: list[int] = field(default_factory=list)
    system_prompt: str | None = None
    #: How the template's schema reaches the teacher: "json_schema" (response_format) or "prompt".
    structured_output: str = "json_schema"

    @property
    def schema(self) -> dict[str, Any] | None:
        return self.template.schema

    @property
    def messages(self) -> list[dict[str, str]]:
        template = self.template
        if self.system_prompt:
            template = PromptTemplate(
                user=template.user, system=self.system_prompt.replace("{", "{{").replace("}", "}}")
            )
        messages = render_messages(template, self.variables)
        if self.schema is not None and self.structured_output == "prompt":
            messages[-1]["content"] += "\n\n" + schema_instruction(self.schema)
        return messages

    def response_format(self) -> dict[str, Any] | None:
        if self.schema is None or self.structured_output != "json_schema":
            return None
        return response_format(self.schema)

    def context(self) -> dict[str, Any]:
        """What the simulated teacher may know about the item."""
        context = {
            "family": self.problem.family,
            "task": self.task,
            "problem": self.problem.prompt,
            "reference": self.problem.reference,
            "hints": self.problem.hints,
            "variables": {k: self.variables.get(k) for k in ("topic", "persona", "difficulty")},
        }
        if self.schema is not None:
            context["schema"] = self.schema
        return context

    def levers(self) -> dict[str, Any]:
        return {k: self.variables[k] for k in ("persona", "topic", "difficulty") if self.variables.get(k)}


@dataclass
class Plan:
    items: list[PlanItem]
    lineage: dict[str, Any]
    source_label: str


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if str(v).strip()]


def select_few_shot(
    engine: Engine | None, params: GenerationParams, exclude_batch: int | None = None
) -> dict[str, Any]:
    """Draw the few-shot pool for a new batch and describe it as lineage:
    {"few_shot_from", "few_shot_sample_ids", "few_shot_batches", "few_shot_k", "generation", "parent_batch_id"}."""
    spec = params.levers.get("few_shot")
    if not spec:
        return {"few_shot_from": None, "generation": 0, "parent_batch_id": None}
    if engine is None:
        raise ValueError("few-shot examples need the workspace store")
    origin = spec["from"]
    query = (
        select(Sample.id, Sample.batch_id)
        .join(Batch, Batch.id == Sample.batch_id)
        .where(Sample.family == params.family)
    )
    if origin == "reference":
        query = query.where(Batch.origin == "real")
    else:
        query = query.where(Sample.decision == "accept", Batch.origin == "synthetic")
    if spec.get("batch_ids"):
        query = query.where(Sample.batch_id.in_([int(b) for b in spec["batch_ids"]]))
    if exclude_batch is not None:
        query = query.where(Sample.batch_id != exclude_batch)
    with session_scope(engine, write=False) as session:
        rows = session.execute(query.order_by(Sample.id)).all()
        if not rows:
            what = "reference (real) samples" if origin == "reference" else "accepted samples"
            raise ValueError(f"no {what} of family {params.family} to draw few-shot examples from")
        pool_size = max(int(spec.get("k", 2)), int(spec.get("pool", 20)))
        chosen = random.Random(f"few-shot:{params.seed}").sample(rows, min(pool_size, len(rows)))
        chosen.sort()
        batch_counts = Counter(batch_id for _, batch_id in chosen)
        generations = dict(
            session.execute(select(Batch.id, Batch.generation).where(Batch.id.in_(list(batch_counts)))).all()
        )
    generation = 0
    parent = None
    if origin == "accepted":
        generation = 1 + max(generations.values())
        parent = sorted(batch_counts.items(), key=lambda kv: (-generations[kv[0]], -kv[1], kv[0]))[0][0]
    return {
        "few_shot_from": origin,
        "few_shot_sample_ids": [sample_id for sample_id, _ in chosen],
        "few_shot_batches": sorted(batch_counts),
        "few_shot_k": int(spec.get("k", 2)),
        "generation": generation,
        "parent_batch_id": parent,
    }


def load_examples(engine: Engine | None, ids: list[int]) -> dict[int, Example]:
    if not ids or engine is None:
        return {}
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.id, Sample.prompt, Sample.response).where(Sample.id.in_(ids))
        ).all()
    return {row.id: Example(row.id, row.prompt[:EXAMPLE_CHARS], row.response[:EXAMPLE_CHARS]) for row in rows}


def render_examples(examples: list[Example], mode: str) -> str:
    if not examples:
        return ""
    if mode == "write":
        parts = ["Here are examples of existing problems. Write a new one that is clearly different.\n"]
        parts += [f"Example {i}:\n{ex.prompt}\n" for i, ex in enumerate(examples, 1)]
    else:
        parts = ["Here are solved examples.\n"]
        parts += [
            f"Example {i}:\nProblem: {ex.prompt}\nSolution: {ex.response}\n"
            for i, ex in enumerate(examples, 1)
        ]
    return "\n".join(parts) + "\n"


def build_plan(
    params: GenerationParams,
    engine: Engine | None = None,
    *,
    lineage: dict[str, Any] | None = None,
    limit: int | None = None,
) -> Plan:
    """The items of a run. `lineage` (from an existing batch) fixes the few-shot pool;
    without it the pool is drawn now."""
    source = make_source(params.source)
    source.check(params.family, params.mode)
    problems = source.problems(params.family, params.seed, limit=limit)
    if lineage is None:
        lineage = select_few_shot(engine, params)
    pool_ids = list(lineage.get("few_shot_sample_ids") or [])
    examples = load_examples(engine, pool_ids)
    pool = [examples[i] for i in pool_ids if i in examples]
    k = int(lineage.get("few_shot_k") or 0)
    template = params.effective_template()
    topics = _as_list(params.levers.get("topics")) or list(DEFAULT_TOPICS[params.family])
    personas = _as_list(params.levers.get("personas")) or list(DEFAULT_PERSONAS[params.family])
    difficulties = _as_list(params.levers.get("difficulty")) or ["medium"]
    items = []
    for index, problem in enumerate(problems):
        rng = random.Random(f"levers:{params.seed}:{index}")
        chosen = sorted(rng.sample(pool, min(k, len(pool))), key=lambda e: e.sample_id) if pool and k else []
        variables: dict[str, Any] = {
            "index": index,
            "persona": rng.choice(personas),
            "topic": problem.hints.get("topic") or topics[index % len(topics)],
            "difficulty": rng.choice(difficulties),
            "examples": render_examples(chosen, params.mode),
        }
        if params.mode == "solve":
            variables["problem"] = problem.prompt
            variables["entry_point"] = problem.variables.get("entry_point") or problem.reference.get(
                "entry_point", ""
            )
        else:
            variables["num_constraints"] = rng.randint(1, 3)
            variables["constraint_catalog"] = catalog_text()
        variables.update({k2: v for k2, v in problem.variables.items() if k2 not in variables})
        items.append(
            PlanItem(
                index=index,
                problem=problem,
                task=params.mode,
                template=template,
                variables=variables,
                few_shot_ids=[e.sample_id for e in chosen],
                system_prompt=params.teacher.system_prompt,
                structured_output=params.teacher.structured_output,
            )
        )
    return Plan(items=items, lineage=lineage, source_label=source.describe())


def solve_item(item: PlanItem, prompt: str, reference: dict[str, Any], hints: dict[str, Any]) -> PlanItem:
    """The self-consistency follow-up of a written item: solve the problem it wrote."""
    problem = Problem(
        family=item.problem.family,
        prompt=prompt,
        reference=reference,
        metadata=dict(item.problem.metadata),
        id=item.problem.id,
        hints=hints,
    )
    variables = dict(item.variables)
    variables.update(problem=prompt, entry_point=reference.get("entry_point", ""), examples="")
    return PlanItem(
        index=item.index,
        problem=problem,
        task="solve",
        template=default_template(item.problem.family, "solve"),
        variables=variables,
        few_shot_ids=[],
        system_prompt=item.system_prompt,
    )


def render_preview(
    params: GenerationParams | dict[str, Any], engine: Engine | None = None, index: int = 0
) -> list[dict[str, str]]:
    """The messages of item `index` for these generation params (a dict or GenerationParams),
    exactly as the run would send them. Few-shot examples are drawn from `engine`'s store."""
    if not isinstance(params, GenerationParams):
        params = GenerationParams.from_dict(dict(params))
    plan = build_plan(params, engine, limit=index + 1)
    if not plan.items:
        raise TemplateError("the source has no problems to preview")
    return plan.items[min(index, len(plan.items) - 1)].messages
