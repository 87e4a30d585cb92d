"""The offline simulated teacher: deterministic, faults at the chosen rate and real
(checked with the project's own verifiers where they are offline), and the whole
pipeline with it: write mode, self-consistency, few-shot lineage, demo batches."""

from __future__ import annotations

import ast
import asyncio
import math
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from curation.data import SampleRecord
from curation.generation.extract import extract_answer, find_code, normalise_answer
from curation.generation.plan import build_plan
from curation.generation.run import run_generation
from curation.sandbox.mutants import generate_mutants
from curation.store import session_scope
from curation.store.models import Batch, Sample
from curation.teachers.base import ChatRequest, TeacherConfig
from curation.teachers.simulated import CODE_FAULTS, MATH_FAULTS, SimulatedTeacher, mutate
from tests.helpers import ADMIN

SOURCES = {
    "math": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 150}},
    "code": {"kind": "humaneval", "limit": 100},
    "instruction": {"kind": "ifeval", "count": 150},
    "open": {"kind": "open_prompts", "count": 100},
}


def simulate(family: str, *, fault_rate: float = 0.2, seed: int = 0, n: int = 2) -> list[tuple]:
    """(item, candidate index, Choice) for every candidate of the family's source."""
    from curation.generation.params import GenerationParams

    params = GenerationParams.from_dict({"batch": "x", "family": family, "source": SOURCES[family], "n": n})
    plan = build_plan(params)
    teacher = SimulatedTeacher(TeacherConfig(kind="simulated", fault_rate=fault_rate, seed=seed))

    async def go() -> list[tuple]:
        out = []
        for item in plan.items:
            request = ChatRequest(
                messages=item.messages, n=n, candidates=list(range(n)), context=item.context()
            )
            completion = await teacher.complete(request)
            out += [(item, c, choice) for c, choice in enumerate(completion.choices)]
        return out

    return asyncio.run(go())


@pytest.mark.parametrize("family", sorted(SOURCES))
def test_simulated_teacher_is_deterministic_by_seed(family):
    first = [(c, choice.text, choice.meta) for _, c, choice in simulate(family, seed=1)]
    again = [(c, choice.text, choice.meta) for _, c, choice in simulate(family, seed=1)]
    other = [(c, choice.text, choice.meta) for _, c, choice in simulate(family, seed=2)]
    assert first == again
    assert first != other


@pytest.mark.parametrize("family", sorted(SOURCES))
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 1.0])
def test_fault_rate_is_within_binomial_tolerance(family, rate):
    candidates = simulate(family, fault_rate=rate)
    total = len(candidates)
    faults = sum(choice.meta["simulated_fault"] is not None for _, _, choice in candidates)
    # Four standard deviations of Binomial(total, rate): a false alarm about once in 16,000 runs.
    tolerance = 4 * math.sqrt(total * rate * (1 - rate))
    assert abs(faults - total * rate) <= tolerance, (faults, total, rate)


def test_math_faults_are_real():
    seen = Counter()
    for item, _, choice in simulate("math", fault_rate=0.5):
        fault = choice.meta["simulated_fault"]
        seen[fault] += 1
        answer, _ = extract_answer(choice.text)
        reference = normalise_answer(item.problem.reference["answer"])
        if fault is None:
            assert normalise_answer(answer) == reference
        elif fault == "missing_final_answer":
            assert answer is None
        else:
            assert fault in MATH_FAULTS
            assert answer is not None and normalise_answer(answer) != reference
    assert set(seen) == {None, *MATH_FAULTS}


def test_code_faults_are_mutants_of_the_canonical_solution():
    seen = Counter()
    for item, _, choice in simulate("code", fault_rate=0.6):
        fault = choice.meta["simulated_fault"]
        seen[fault] += 1
        code, _ = find_code(choice.text, item.problem.reference["entry_point"])
        canonical = (
            item.problem.hints["code_prompt"] + item.problem.hints["canonical_solution"]
        ).rstrip() + "\n"
        if fault is None:
            assert code == canonical
            continue
        assert fault in CODE_FAULTS and code != canonical
        if fault == "syntax_error":
            with pytest.raises(SyntaxError):
                ast.parse(code)
        else:
            ast.parse(code)
    assert set(seen) == {None, *CODE_FAULTS}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("off_by_one", "for i in range(len(xs) - 1):"),
        ("flipped_comparison", "if xs[i] > 0:"),
        ("wrong_return", "return xs"),
        ("syntax_error", "for i in range(len(xs))\n"),
        ("endless_loop", "while _step >= 0:"),
    ],
)
def test_mutations_edit_the_source_in_place(kind, expected):
    code = 'def f(xs):\n    """Count positives."""\n    total = 0\n    for i in range(len(xs)):\n        if xs[i] < 0:\n            total += 1\n    return total\n'
    mutant = mutate(code, kind, "f")
    assert mutant is not None and expected in mutant
    assert mutant.count("\n") >= code.count("\n")


def test_instruction_faults_violate_exactly_the_recorded_constraint():
    from curation.verification.instruction import InstructionVerifier

    verifier = InstructionVerifier()
    seen = Counter()
    for item, _, choice in simulate("instruction", fault_rate=0.5):
        fault = choice.meta["simulated_fault"]
        sample = SampleRecord(
            family="instruction",
            prompt=item.problem.prompt,
            response=choice.text,
            reference=item.problem.reference,
        )
        verdict = verifier.verify(sample)
        outcomes = {o["instruction_id"]: o["strict"] for o in verdict.details["instructions"]}
        if fault is None:
            assert verdict.passed is True, (verdict.reason, choice.text)
        else:
            violated = fault.removeprefix("violated_constraint:")
            seen[violated] += 1
            assert outcomes[violated] is False, (fault, choice.text)
            assert all(ok for cid, ok in outcomes.items() if cid != violated), (fault, verdict.reason)
    assert len(seen) == 6


def test_open_answers_and_their_faults():
    seen = Counter(choice.meta["simulated_fault"] for _, _, choice in simulate("open", fault_rate=0.5))
    assert set(seen) == {None, "refusal", "off_topic", "repetition"}


def test_simulated_runs_are_labelled_simulated_everywhere(sqlite_engine):
    run_generation(
        sqlite_engine,
        {
            "batch": "sim",
            "family": "code",
            "source": {"kind": "humaneval", "limit": 12},
            "teacher": {"kind": "simulated", "fault_rate": 0.5},
            "n": 2,
        },
    )
    with session_scope(sqlite_engine, write=False) as session:
        batch = session.scalar(select(Batch))
        metas = list(session.scalars(select(Sample.meta)))
    assert batch.source.startswith("simulated")
    assert batch.generation_config["teacher"] == "simulated"
    assert batch.generation_config["model"] == "simulated"
    assert batch.status == "ready" and batch.stats["ok"] == 24
    assert len(metas) == 24
    assert all(
        m["teacher"] == "simulated" and m["simulated"] is True and "simulated_fault" in m for m in metas
    )


@pytest.mark.parametrize("family", ["math", "code", "instruction", "open"])
def test_write_mode_parses_structured_answers_and_keeps_malformed_ones(sqlite_engine, family):
    result = run_generation(
        sqlite_engine,
        {
            "batch": "w",
            "family": family,
            "mode": "write",
            "source": {"kind": "topics", "count": 60},
            "teacher": {"kind": "simulated", "fault_rate": 0.4},
            "levers": {"topics": ["trains", "tea"]},
        },
    )
    with session_scope(sqlite_engine, write=False) as session:
        rows = session.execute(select(Sample.prompt, Sample.response, Sample.reference, Sample.meta)).all()
    assert len(rows) == 60
    malformed = 0
    # A written math problem without a final answer has no reference either: kept, flagged.
    unparseable = {"malformed_output", "missing_final_answer"} if family == "math" else {"malformed_output"}
    for prompt, response, reference, meta in rows:
        assert meta["raw_completion"]
        if meta["simulated_fault"] in unparseable:
            malformed += 1
            assert meta["parse_error"] and reference == {}
            continue
        assert "parse_error" not in meta and meta["written"] is True
        assert prompt != meta["teacher_prompt"] and response
        if family == "math":
            assert reference["answer"] and meta["extracted_answer"]
        elif family == "code":
            assert reference["entry_point"] in prompt and "def check(candidate)" in reference["tests"]
            assert meta["extracted_code"].startswith("def ")
        elif family == "instruction":
            assert len(reference["instruction_id_list"]) == len(reference["kwargs"]) >= 1
    assert result["parse_errors"] == malformed


def test_write_mode_self_consistency_solves_each_written_problem(sqlite_engine):
    run_generation(
        sqlite_engine,
        {
            "batch": "sc",
            "family": "math",
            "mode": "write",
            "source": {"kind": "topics", "count": 30},
            "teacher": {"kind": "simulated", "fault_rate": 0.3},
            "n": 4,
            "consistency": True,
        },
    )
    with session_scope(sqlite_engine, write=False) as session:
        rows = session.execute(
            select(Sample.id, Sample.item_index, Sample.candidate_index, Sample.prompt, Sample.meta)
        ).all()
        batch = session.scalar(select(Batch))
    by_item: dict[int, list] = {}
    for row in rows:
        by_item.setdefault(row.item_index, []).append(row)
    parsed_items = 0
    for members in by_item.values():
        first = next(m for m in members if m.candidate_index == 0)
        if first.meta.get("parse_error"):
            assert len(members) == 1
            continue
        parsed_items += 1
        assert len(members) == 4
        for member in members:
            assert member.prompt == first.prompt
            consistency = member.meta["consistency"]
            assert consistency["k"] == 4 and 0 < consistency["agreement"] <= 1
            if member.candidate_index:
                assert member.meta["consistency_of"] == first.id
        truth = normalise_answer(first.meta["simulated_true_answer"])
        faults = [m.meta["simulated_fault"] for m in members]
        if faults.count(None) >= 3:
            assert first.meta["consistency"]["majority_answer"] == truth
    assert parsed_items >= 20
    assert batch.stats["skipped"] == 3 * (30 - parsed_items)
    assert batch.stats["pending"] == 0 and batch.status == "ready"


def test_solve_mode_self_consistency_records_majority_and_agreement(sqlite_engine):
    run_generation(
        sqlite_engine,
        {
            "batch": "sc",
            "family": "math",
            "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 20}},
            "teacher": {"kind": "simulated", "fault_rate": 0.3},
            "n": 3,
            "consistency": True,
        },
    )
    with session_scope(sqlite_engine, write=False) as session:
        rows = session.execute(select(Sample.item_index, Sample.reference, Sample.meta)).all()
    assert len(rows) == 60
    for _, reference, meta in rows:
        result = meta["consistency"]
        assert result["k"] == 3 and result["agreement"] in (0.0, 0.3333, 0.6667, 1.0)
        if result["agreement"] > 0.5:
            answers = [normalise_answer(m["extracted_answer"]) for i, _, m in rows if i == _item(rows, meta)]
            assert answers.count(result["majority_answer"]) >= 2
        if result["agreement"] == 1.0:
            assert (
                result["majority_answer"] == normalise_answer(reference["answer"]) or meta["simulated_fault"]
            )


def _item(rows, meta) -> int:
    return next(i for i, _, m in rows if m is meta)


def test_few_shot_lineage_from_reference_then_accepted_samples(sqlite_engine, tmp_path):
    from curation.io.importer import import_file
    from tests.helpers import sample_records, write_jsonl

    path = write_jsonl(tmp_path / "ref.jsonl", sample_records(12))
    import_file(sqlite_engine, ADMIN, path, "reference math", origin="real")
    base = {
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 10}},
        "teacher": {"kind": "simulated"},
    }
    run_generation(
        sqlite_engine, {**base, "batch": "g0", "levers": {"few_shot": {"from": "reference", "k": 2}}}
    )
    with session_scope(sqlite_engine, write=False) as session:
        g0 = session.scalar(select(Batch).where(Batch.name == "g0"))
        ref_id = session.scalar(select(Batch.id).where(Batch.name == "reference math"))
        g0_metas = list(session.scalars(select(Sample.meta).where(Sample.batch_id == g0.id)))
        session.expunge_all()
    assert g0.lineage["few_shot_from"] == "reference"
    assert g0.lineage["few_shot_batches"] == [ref_id]
    assert g0.generation == 0 and g0.parent_batch_id is None
    assert all(
        len(m["few_shot_ids"]) == 2 and set(m["few_shot_ids"]) <= set(g0.lineage["few_shot_sample_ids"])
        for m in g0_metas
    )
    assert "Here are solved examples." in g0_metas[0]["teacher_prompt"]

    with session_scope(sqlite_engine) as session:
        session.execute(update(Sample).where(Sample.batch_id == g0.id).values(decision="accept"))
        session.execute(update(Batch).where(Batch.id == g0.id).values(generation=2))
    run_generation(
        sqlite_engine, {**base, "batch": "g3", "levers": {"few_shot": {"from": "accepted", "k": 3}}}
    )
    with session_scope(sqlite_engine, write=False) as session:
        g3 = session.scalar(select(Batch).where(Batch.name == "g3"))
        pool = set(g3.lineage["few_shot_sample_ids"])
        pool_batches = set(session.scalars(select(Sample.batch_id).where(Sample.id.in_(pool))))
    assert g3.lineage["few_shot_from"] == "accepted"
    assert pool_batches == {g0.id} == set(g3.lineage["few_shot_batches"])
    assert g3.generation == 3 and g3.parent_batch_id == g0.id


def test_few_shot_without_examples_is_a_clear_error(sqlite_engine):
    with pytest.raises(ValueError, match="no accepted samples of family code"):
        run_generation(
            sqlite_engine,
            {
                "batch": "x",
                "family": "code",
                "source": {"kind": "humaneval", "limit": 3},
                "levers": {"few_shot": {"from": "accepted"}},
            },
        )


def test_demo_batches(sqlite_engine):
    from curation.generation.demo import DEMO_BATCHES, create_demo_batches

    assert create_demo_batches(sqlite_engine) == list(DEMO_BATCHES)
    assert create_demo_batches(sqlite_engine) == []
    with session_scope(sqlite_engine, write=False) as session:
        batches = session.scalars(select(Batch).order_by(Batch.id)).all()
        sizes = {
            b.name: session.scalar(select(func.count()).select_from(Sample).where(Sample.batch_id == b.id))
            for b in batches
        }
        faults = Counter(m.get("simulated_fault") is not None for m in session.scalars(select(Sample.meta)))
    assert sizes == {
        "simulated math": 60,
        "simulated code": 40,
        "simulated instruction": 60,
        "simulated open": 40,
    }
    assert {b.family for b in batches} == {"math", "code", "instruction", "open"}
    assert all(b.status == "ready" and b.source.startswith("simulated") for b in batches)
    total = sum(faults.values())
    assert abs(faults[True] - 0.2 * total) <= 4 * math.sqrt(total * 0.2 * 0.8)


STUB_THEN_SOLUTION = "def f(x):\n    return x + 1\n\n\ndef f(x):\n    return x * 2\n"
STUB = "def f(x):\n    return x + 1"


def _mutated_by_the_simulated_teacher(code: str) -> list[str]:
    return [
        mutant
        for kind in ("off_by_one", "flipped_comparison", "wrong_return")
        if (mutant := mutate(code, kind, "f"))
    ]


def _mutated_by_the_test_strength_check(code: str) -> list[str]:
    return [mutant.code for mutant in generate_mutants(code, "f")]


@pytest.mark.parametrize(
    "mutants_of", [_mutated_by_the_simulated_teacher, _mutated_by_the_test_strength_check]
)
def test_code_mutation_changes_the_definition_python_binds(mutants_of):
    """Two definitions of the entry point: Python binds the last, so the last is mutated."""
    mutants = mutants_of(STUB_THEN_SOLUTION)
    assert mutants
    for mutant in mutants:
        tree = ast.parse(mutant)
        first, last = (node for node in tree.body if isinstance(node, ast.FunctionDef))
        assert ast.unparse(first) == STUB
        assert ast.unparse(last) != "def f(x):\n    return x * 2"
