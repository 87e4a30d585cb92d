"""`verify-file`: verify an interchange file without a store.

Reads IN (JSONL, CSV or Parquet, streamed and validated by
`curation.io.interchange.iter_records`) and writes OUT as JSONL: each record as
read, plus

    "verdicts": [{"verifier", "version", "passed", "score", "reason"}, ...],
    "passed": true | false | null          # the overall outcome (`chains.overall_outcome`)

in input order. Chunks are verified in parallel (`ChainPipeline`) with a bounded
number in flight, so memory does not grow with the file. The output is written
to a temporary file next to OUT and renamed at the end: a bad input line or an
interruption leaves no partial OUT behind. With ``executor`` naming Ray, the verifiers
run as Ray tasks (`curation.verification.distributed`) and this process writes OUT.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curation.data import SampleRecord
from curation.executors import ExecutorChoice
from curation.io.interchange import iter_records
from curation.verification.chains import overall_outcome
from curation.verification.distributed import open_pipeline
from curation.verification.pipeline import default_jobs
from curation.verification.runner import OUTCOME_NAMES, VerifyParams, plan_verification


def _chunks(records: Iterator[SampleRecord], size: int) -> Iterator[list[SampleRecord]]:
    chunk: list[SampleRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _number(value: Any) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    ):
        return value
    return None


def verify_file(
    in_path: str | Path,
    out_path: str | Path,
    *,
    jobs: int | None = None,
    verifiers: list[str] | None = None,
    judge: dict[str, Any] | None = None,
    chunk_size: int = 256,
    progress: Callable[[int, str], None] | None = None,
    executor: ExecutorChoice | None = None,
) -> dict[str, Any]:
    """Verify every record of `in_path` into `out_path` (JSONL); returns counts."""
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.resolve() == out_path.resolve():
        raise ValueError("the output file must differ from the input file")
    params = VerifyParams(verifiers=verifiers, jobs=jobs, judge=judge, chunk_size=chunk_size)
    plan = plan_verification(params)
    jobs = params.jobs or default_jobs()
    started = time.perf_counter()
    counts = {"records": 0, "passed": 0, "failed": 0, "unknown": 0}
    by_verifier: dict[str, dict[str, int]] = {}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part", dir=out_path.parent)
    try:
        with (
            os.fdopen(handle, "w", encoding="utf-8") as out,
            open_pipeline(executor or ExecutorChoice(), jobs, judge_config=plan.judge) as (pipeline, where),
        ):
            jobs = pipeline.jobs
            chunks = (
                (records, [plan.chains.get(record.family, ()) for record in records], ())
                for records in _chunks(iter_records(in_path), chunk_size)
            )
            for chunk, results in pipeline.in_order(chunks):
                for record, verdicts in zip(chunk.records, results, strict=True):
                    row = record.to_dict()
                    row["verdicts"] = [
                        {
                            "verifier": name,
                            "version": plan.versions[name],
                            "passed": verdict.passed if isinstance(verdict.passed, bool) else None,
                            "score": _number(verdict.score),
                            "reason": str(verdict.reason or ""),
                        }
                        for name, verdict in verdicts.items()
                    ]
                    outcome = overall_outcome(
                        record.family,
                        {n: v["passed"] for n, v in zip(verdicts, row["verdicts"], strict=True)},
                    )
                    row["passed"] = outcome
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts["records"] += 1
                    counts[OUTCOME_NAMES[outcome]] += 1
                    for verdict in row["verdicts"]:
                        tally = by_verifier.setdefault(
                            verdict["verifier"], {"passed": 0, "failed": 0, "unknown": 0}
                        )
                        tally[OUTCOME_NAMES[verdict["passed"]]] += 1
                if progress is not None:
                    progress(counts["records"], f"verified {counts['records']:,} records")
        os.replace(temp_name, out_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    return {
        **counts,
        "by_verifier": by_verifier,
        "versions": plan.versions,
        "skipped_verifiers": plan.skipped,
        "jobs": jobs,
        "executor": where,
        "seconds": round(seconds, 3),
        "records_per_s": round(counts["records"] / seconds, 1) if seconds > 0 else None,
        "out": str(out_path),
    }


__all__ = ["verify_file"]
