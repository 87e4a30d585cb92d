"""Export plan and run: mix rule, cross-dedup, decontamination, shuffle, split, every
format loading back with provenance that resolves to the store, manifest hashes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import insert, select

from curation.data import content_hash
from curation.export import ExportConfig, plan_export, run_export, sha256_file
from curation.export.textmatch import NgramIndex
from curation.io.writers import WRITERS
from curation.store import session_scope
from curation.store.models import Batch, ExportRow, Mark, Sample, Verdict, utcnow
from tests.helpers import ADMIN, EVAL_SENTENCE, add_batch, real_rows, synthetic_rows


def config(tmp_path: Path, **overrides: Any) -> ExportConfig:
    return ExportConfig(**{"out": str(tmp_path / "out"), **overrides})


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.7])
def test_synthetic_share_is_honoured_within_one_row(engine, tmp_path, share):
    add_batch(engine, "syn", synthetic_rows(100))
    add_batch(engine, "real", real_rows(40), origin="real")
    plan = plan_export(engine, config(tmp_path, synthetic_share=share))
    assert plan.ok, plan.errors
    synthetic, real = plan.count(source=0), plan.count(source=1)
    assert real == 40
    assert abs(synthetic - share * (synthetic + real)) <= 1
    assert plan.dropped["over_share"]["synthetic"] == 100 - synthetic


def test_accumulate_rule_keeps_all_real_rows_and_warns_under_ten_percent(engine, tmp_path):
    add_batch(engine, "syn", synthetic_rows(100))
    add_batch(engine, "real", real_rows(5), origin="real")
    plan = plan_export(engine, config(tmp_path))
    assert (plan.count(source=0), plan.count(source=1)) == (100, 5)
    assert any("under 10%" in w for w in plan.warnings)
    balanced = plan_export(engine, config(tmp_path, synthetic_share=0.5))
    assert (balanced.count(source=0), balanced.count(source=1)) == (5, 5)
    assert not any("under 10%" in w for w in balanced.warnings)


def test_a_share_that_would_drop_real_rows_is_an_error_unless_allowed(engine, tmp_path):
    add_batch(engine, "syn", synthetic_rows(100))
    add_batch(engine, "real", real_rows(40), origin="real")
    plan = plan_export(engine, config(tmp_path, synthetic_share=0.9))
    assert not plan.ok
    assert "needs 360 synthetic rows to keep all 40 real rows" in plan.errors[0]
    with pytest.raises(ValueError, match="allow dropping real rows"):
        run_export(engine, ADMIN, config(tmp_path, synthetic_share=0.9))
    assert not (tmp_path / "out").exists()

    result = run_export(engine, ADMIN, config(tmp_path, synthetic_share=0.9, allow_dropping_real=True))
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["allow_dropping_real"] is True and manifest["config"]["allow_dropping_real"] is True
    assert (result.counts["synthetic"], result.counts["real"]) == (100, 11)
    assert result.counts["dropped"]["real_for_share"] == {"real": 29}
    assert any("real rows are dropped" in w for w in manifest["warnings"])


def test_family_shares_apply_per_family(engine, tmp_path):
    add_batch(engine, "syn", synthetic_rows(60) + synthetic_rows(60, family="code", tag="c"))
    add_batch(engine, "real", real_rows(20) + real_rows(30, family="code", tag="rc"), origin="real")
    plan = plan_export(engine, config(tmp_path, synthetic_share=0.5, family_shares={"code": 0.25}))
    assert plan.ok, plan.errors
    assert (plan.count(source=0, family="math"), plan.count(source=1, family="math")) == (20, 20)
    assert (plan.count(source=0, family="code"), plan.count(source=1, family="code")) == (10, 30)


def test_no_real_rows_and_a_share_below_one_is_an_error(engine, tmp_path):
    add_batch(engine, "syn", synthetic_rows(10))
    plan = plan_export(engine, config(tmp_path, synthetic_share="50%"))
    assert plan.errors and "no real rows" in plan.errors[0]


def test_cross_dedup_drops_synthetic_copies_of_real_rows(engine, tmp_path):
    rows = synthetic_rows(10)
    rows[3]["prompt"], rows[3]["response"] = "  [R] HUMAN question 2 on math?", "human   answer 2."
    _, syn_ids = add_batch(engine, "syn", rows)
    add_batch(engine, "real", real_rows(5), origin="real")
    with session_scope(engine) as session:
        session.add(Mark(sample_id=syn_ids[5], kind="copy_of_real", reason="cosine 0.97 to a real row"))
        session.add(
            Mark(
                sample_id=syn_ids[6],
                kind="near_dup",
                reason="jaccard 0.9",
                overridden_by="ada",
                overridden_at=utcnow(),
            )
        )
    result = run_export(engine, ADMIN, config(tmp_path))
    dropped = result.counts["dropped"]
    assert dropped["copy_of_real"] == {"synthetic": 1}
    assert dropped["mark:copy_of_real"] == {"synthetic": 1}
    exported = {
        json.loads(line)["provenance"]["sample_id"] for line in (tmp_path / "out" / "data.jsonl").open()
    }
    assert syn_ids[3] not in exported and syn_ids[5] not in exported and syn_ids[6] in exported
    assert (result.counts["synthetic"], result.counts["real"]) == (8, 5)
    manifest = json.loads(result.manifest_path.read_text())
    assert {d["code"]: d["reason"] for d in manifest["dropped"]}["copy_of_real"] == "same text as a real row"


def test_exact_duplicates_among_synthetic_rows_keep_the_first(engine, tmp_path):
    rows = synthetic_rows(4)
    rows[2]["prompt"], rows[2]["response"] = rows[0]["prompt"].upper(), rows[0]["response"]
    _, ids = add_batch(engine, "syn", rows)
    plan = plan_export(engine, config(tmp_path))
    assert plan.dropped["duplicate"] == {"synthetic": 1}
    assert ids[2] in plan.dropped_ids["duplicate"].tolist() and ids[0] in plan.ids.tolist()


@pytest.mark.parametrize("fallback", [False, True])
def test_thirteen_gram_index_finds_overlaps_only(fallback):
    index = NgramIndex([EVAL_SENTENCE])
    if fallback:
        index.use_fallback()
    words = EVAL_SENTENCE.split()
    texts = [
        "Intro. " + " ".join(words[2:15]) + " and more",
        "Intro " + " ".join(words[2:14]) + " end",
        "unrelated text",
    ]
    assert [position for position, _, _ in index.matches(texts)] == [0]


def test_decontamination_drops_a_planted_thirteen_gram_overlap(engine, tmp_path):
    rows = synthetic_rows(6)
    words = EVAL_SENTENCE.split()
    rows[1]["prompt"] = "Consider this: " + " ".join(words[:13]).upper() + "?"
    rows[2]["prompt"] = "Consider this: " + " ".join(words[:12]) + "?"
    _, ids = add_batch(engine, "syn", rows)
    add_batch(
        engine, "gsm-test", [{"family": "math", "prompt": EVAL_SENTENCE, "response": ""}], origin="eval"
    )
    plan = plan_export(engine, config(tmp_path))
    assert plan.dropped == {"contamination": {"synthetic": 1}}
    assert plan.dropped_ids["contamination"].tolist() == [ids[1]]
    assert plan.contamination_examples[0]["ngram"] == " ".join(words[:13])
    assert plan_export(engine, config(tmp_path, eval_sets=[])).dropped == {}


def test_shuffle_is_deterministic_by_seed_and_the_file_follows_the_plan(engine, tmp_path):
    add_batch(engine, "syn", synthetic_rows(40))
    add_batch(engine, "real", real_rows(10), origin="real")
    first = plan_export(engine, config(tmp_path, seed=7)).ids.tolist()
    assert plan_export(engine, config(tmp_path, seed=7)).ids.tolist() == first
    assert plan_export(engine, config(tmp_path, seed=8)).ids.tolist() != first
    assert sorted(first) != first
    run_export(engine, ADMIN, config(tmp_path, seed=7))
    written = [
        json.loads(line)["provenance"]["sample_id"] for line in (tmp_path / "out" / "data.jsonl").open()
    ]
    assert written == first


def test_validation_split_is_stratified_by_family_and_source(engine, tmp_path):
    add_batch(engine, "syn", synthetic_rows(50) + synthetic_rows(30, family="code", tag="c"))
    add_batch(engine, "real", real_rows(20), origin="real")
    result = run_export(engine, ADMIN, config(tmp_path, validation_fraction=0.2))
    assert result.counts["splits"] == {
        "train": {"synthetic": 64, "real": 16},
        "validation": {"synthetic": 16, "real": 4},
    }
    validation = pd.read_json(tmp_path / "out" / "validation.jsonl", lines=True)
    families = validation["family"].value_counts().to_dict()
    assert families == {"math": 14, "code": 6}
    with session_scope(engine, write=False) as session:
        splits = dict(
            session.execute(
                select(ExportRow.sample_id, ExportRow.split).where(ExportRow.export_id == result.export_id)
            ).all()
        )
    assert {splits[p["sample_id"]] for p in validation["provenance"]} == {"validation"}
    assert sum(1 for s in splits.values() if s == "train") == 80


def _load(fmt: str, out: Path) -> list[dict[str, Any]]:
    if fmt == "hf":
        from datasets import load_from_disk

        dataset = load_from_disk(str(out))
        rows = [dict(row) for split in dataset for row in dataset[split]]
    elif fmt in ("jsonl", "chat"):
        frames = [
            pd.read_json(path, lines=True, dtype=False, precise_float=True)
            for path in sorted(out.glob("*.jsonl"))
        ]
        rows = pd.concat(frames).to_dict("records")
    elif fmt == "csv":
        rows = pd.concat(
            [pd.read_csv(p, keep_default_na=False, dtype=str) for p in sorted(out.glob("*.csv"))]
        ).to_dict("records")
    else:
        rows = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))]).to_dict("records")
    for row in rows:
        for key in ("provenance", "reference", "metadata"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return rows


@pytest.mark.parametrize("fmt", ["jsonl", "chat", "parquet", "csv", "hf"])
def test_every_format_loads_back_and_provenance_resolves_to_the_store(engine, tmp_path, fmt):
    add_batch(engine, "syn", synthetic_rows(12))
    add_batch(engine, "real", real_rows(6), origin="real")
    result = run_export(
        engine, ADMIN, config(tmp_path, format=fmt, synthetic_share=0.5, validation_fraction=0.25, seed=1)
    )
    out = tmp_path / "out"
    rows = _load(fmt, out)
    assert len(rows) == result.rows == 12
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == result.files
    for name, digest in manifest["files"].items():
        assert sha256_file(out / name) == digest
    with session_scope(engine, write=False) as session:
        for row in rows:
            provenance = row["provenance"]
            sample = session.get(Sample, provenance["sample_id"])
            batch = session.get(Batch, sample.batch_id)
            assert sample.content_hash == provenance["content_hash"]
            assert provenance["source"] == batch.origin and provenance["batch"] == batch.name
            verdicts = session.execute(
                select(Verdict.verifier, Verdict.version).where(Verdict.sample_id == sample.id)
            ).all()
            assert sorted((v["verifier"], v["version"]) for v in provenance["verdicts"]) == sorted(
                tuple(v) for v in verdicts
            )
            if batch.origin == "synthetic":
                assert provenance["decision"]["action"] == sample.decision == "accept"
                assert provenance["teacher"] == "simulated" and provenance["model"] == "sim-1"
                assert provenance["generation_params"]["sampling"] == {"temperature": 0.7, "max_tokens": 512}
                assert "api_key_env" not in json.dumps(provenance)
            else:
                assert provenance["decision"] is None and provenance["teacher"] is None
            if fmt == "chat":
                assert row["messages"][-2:] == [
                    {"role": "user", "content": sample.prompt},
                    {"role": "assistant", "content": sample.response},
                ]
            else:
                assert (row["prompt"], row["response"]) == (sample.prompt, sample.response)
                assert row["reference"] == (sample.reference or {}) and row["metadata"] == (sample.meta or {})
    assert {r["provenance"]["split"] for r in rows} == {"train", "validation"}


def test_chat_rows_carry_the_system_prompt_from_metadata(sqlite_engine, tmp_path):
    rows = synthetic_rows(2)
    rows[0]["metadata"] = {"system": "You are terse."}
    add_batch(sqlite_engine, "syn", rows)
    run_export(sqlite_engine, ADMIN, config(tmp_path, format="chat", seed=0))
    lines = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").open()]
    by_prompt = {line["messages"][-2]["content"]: line["messages"] for line in lines}
    assert by_prompt[rows[0]["prompt"]][0] == {"role": "system", "content": "You are terse."}
    assert [m["role"] for m in by_prompt[rows[1]["prompt"]]] == ["user", "assistant"]


def test_manifest_and_dataset_card_describe_the_export(sqlite_engine, tmp_path):
    add_batch(sqlite_engine, "syn", synthetic_rows(30) + synthetic_rows(5, tag="x", decision="reject"))
    add_batch(sqlite_engine, "real", real_rows(10), origin="real")
    add_batch(
        sqlite_engine,
        "gsm-test",
        [{"family": "math", "prompt": EVAL_SENTENCE, "response": ""}],
        origin="eval",
    )
    result = run_export(
        sqlite_engine, ADMIN, config(tmp_path, format="parquet", synthetic_share=0.5, created_by="ada")
    )
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["counts"]["rows"] == 20
    assert manifest["counts"]["not_accepted"] == {"reject": 5}
    rates = manifest["metrics"]["verifier_pass_rates"]
    assert set(rates) == {"math@1.2", "heuristics@0.4"} and rates["heuristics@0.4"]["pass_rate"] == 1.0
    assert manifest["config"]["batches_resolved"]["eval"] == ["gsm-test"]
    bound = manifest["metrics"]["acceptance_sampling"]["syn"]
    assert (bound["max_error"], bound["confidence"], bound["holds"]) == (0.05, 0.95, False)
    card = result.card_path.read_text()
    assert card.startswith("---\nlicense: other\n")
    for text in (
        "task_categories:",
        "size_categories:",
        '- "n<1K"',
        "## Rows by source and family",
        "simulated (sim-1)",
        "| math | 10 | 10 | 50.0% |",
        "not needed for the synthetic share",
        "gsm-test",
        "## Acceptance sampling",
        "pd.read_parquet",
        "`content_hash`",
    ):
        assert text in card, text


def test_a_file_path_writes_one_file_and_a_manifest_beside_it(sqlite_engine, tmp_path):
    add_batch(sqlite_engine, "syn", synthetic_rows(3))
    result = run_export(sqlite_engine, ADMIN, ExportConfig(out=str(tmp_path / "x.parquet"), format="parquet"))
    assert set(result.files) == {"x.parquet"} and (tmp_path / "x.manifest.json").exists()
    assert len(pd.read_parquet(tmp_path / "x.parquet")) == 3
    with pytest.raises(ValueError, match="needs an output folder"):
        run_export(
            sqlite_engine, ADMIN,
            ExportConfig(out=str(tmp_path / "y.parquet"), format="parquet", validation_fraction=0.5),
        )


def test_cli_plans_and_exports(store_url, tmp_path):
    from curation.store import open_store
    from tests.helpers import cli

    engine = open_store(store_url)
    add_batch(engine, "syn", synthetic_rows(20))
    add_batch(engine, "real", real_rows(10), origin="real")
    plan = cli("export", "--out", str(tmp_path / "o"), "--synthetic-share", "90%", "--plan", db=store_url)
    assert plan.returncode == 1 and "needs 90 synthetic rows" in plan.stderr
    assert not (tmp_path / "o").exists()
    done = cli(
        "export",
        "--out",
        str(tmp_path / "o"),
        "--format",
        "csv",
        "--synthetic-share",
        "0.5",
        "--seed",
        "3",
        "--validation-fraction",
        "0.2",
        "--batch",
        "syn",
        "--families",
        "math",
        db=store_url,
    )
    assert done.returncode == 0, done.stderr
    assert "exported 20 rows (10 synthetic, 10 real)" in done.stdout
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "README.md",
        "manifest.json",
        "train.csv",
        "validation.csv",
    ]
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(Batch.id).where(Batch.name == "syn")) is not None
    rows = pd.read_csv(tmp_path / "o" / "train.csv", keep_default_na=False)
    assert list(rows.columns) == ["id", "family", "prompt", "response", "reference", "metadata", "provenance"]


def test_bulk_links_are_written_for_every_row(sqlite_engine, tmp_path):
    with session_scope(sqlite_engine) as session:
        batch = Batch(name="bulk", origin="synthetic", generation_config={"teacher": "t", "model": "m"})
        session.add(batch)
        session.flush()
        session.execute(
            insert(Sample),
            [
                {
                    "batch_id": batch.id,
                    "item_index": i,
                    "family": "open",
                    "prompt": f"p{i}",
                    "response": f"r{i}",
                    "content_hash": content_hash("open", f"p{i}", f"r{i}"),
                    "decision": "accept",
                }
                for i in range(4500)
            ],
        )
    result = run_export(sqlite_engine, ADMIN, config(tmp_path, format="parquet"))
    assert result.rows == 4500
    with session_scope(sqlite_engine, write=False) as session:
        linked = session.scalars(
            select(ExportRow.sample_id).where(ExportRow.export_id == result.export_id)
        ).all()
    assert len(set(linked)) == 4500
    assert (
        pd.read_parquet(tmp_path / "out" / "data.parquet")["provenance"]
        .map(json.loads)
        .map(lambda p: p["decision"])
        .isna()
        .all()
    )


@pytest.mark.parametrize("fmt", ["jsonl", "chat", "csv", "parquet", "hf"])
def test_worker_processes_write_the_same_rows_as_the_serial_path(engine, tmp_path, monkeypatch, fmt):
    import curation.export.parallel as parallel

    add_batch(engine, "syn", synthetic_rows(40))
    add_batch(engine, "real", real_rows(15), origin="real")
    serial = run_export(
        engine, ADMIN, config(tmp_path, out=str(tmp_path / "serial"), format=fmt, validation_fraction=0.2, seed=5)
    )
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(parallel, "PIECE_ROWS", 7)
    monkeypatch.setattr(parallel, "BUCKET_ROWS", 9)
    assert parallel.can_parallelise(engine, 55, WRITERS.get(fmt)())
    forked = run_export(
        engine, ADMIN, config(tmp_path, out=str(tmp_path / "forked"), format=fmt, validation_fraction=0.2, seed=5)
    )
    assert forked.counts == serial.counts and forked.rows == 55
    manifests = [json.loads(r.manifest_path.read_text()) for r in (serial, forked)]
    assert manifests[0]["metrics"]["verifier_pass_rates"] == manifests[1]["metrics"]["verifier_pass_rates"]
    for name in serial.files:
        if fmt == "parquet":
            assert pd.read_parquet(tmp_path / "forked" / name).equals(
                pd.read_parquet(tmp_path / "serial" / name)
            )
        elif fmt == "hf":
            from datasets import load_from_disk

            loaded = [load_from_disk(str(tmp_path / run)) for run in ("serial", "forked")]
            assert list(loaded[0]) == list(loaded[1]) == ["train", "validation"]
            assert all(loaded[0][s].to_list() == loaded[1][s].to_list() for s in loaded[0])
            break
        else:
            assert forked.files[name] == serial.files[name]
