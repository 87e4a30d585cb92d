"""Foundation figures: import throughput of a 100k-line file, and the time from
opening the Samples page to the first sample with 100k samples in the store.

    .venv/bin/python benchmarks/foundation.py [--rows 100000] [--db URL]

Prints a table; record it in BENCHMARKS.md. Not a test: nothing here asserts a time."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation.auth import Actor, Role
from curation.io.importer import import_file  # noqa: E402
from curation.store import open_store  # noqa: E402
from curation.store.queries import SampleFilter, count_samples, get_sample, list_batches, query_samples  # noqa: E402

#: Benchmarks act as an admin.
ADMIN = Actor("bench", Role.ADMIN)


def make_file(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            record = {
                "id": f"q{i}",
                "family": ("math", "code", "instruction", "open")[i % 4],
                "prompt": f"Problem {i}: what is {i} times {i % 97}? Explain your reasoning step by step.",
                "response": f"We multiply {i} by {i % 97}. " * 8 + f"\\boxed{{{i * (i % 97)}}}",
                "reference": {"answer": str(i * (i % 97))} if i % 4 == 0 else {},
                "metadata": {"topic": f"t{i % 50}"},
            }
            if record["family"] == "code":
                record["reference"] = {"tests": "assert f(1) == 1", "entry_point": "f"}
            elif record["family"] == "instruction":
                record["reference"] = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
            handle.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.db"
        engine = open_store(url)
        path = Path(tmp) / "batch.jsonl"
        make_file(path, args.rows)
        size_mb = path.stat().st_size / 1e6

        start = time.perf_counter()
        import_file(engine, ADMIN, path, "bench")
        import_s = time.perf_counter() - start

        # What the Samples page does before it can show the first sample.
        start = time.perf_counter()
        list_batches(engine)
        filters = SampleFilter()
        count_samples(engine, filters)
        rows, _ = query_samples(engine, filters, limit=50)
        get_sample(engine, rows[0].id)
        first_sample_s = time.perf_counter() - start

        os.environ["ASSAY_DATABASE_URL"] = url
        os.environ["ASSAY_AUTH"] = "none"  # the page as the demo opens it, without a sign-in
        from streamlit.testing.v1 import AppTest

        app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
        app.session_state["open_sample"] = rows[0].id
        app.run()
        start = time.perf_counter()
        app.switch_page("pages/samples.py").run()
        page_s = time.perf_counter() - start
        assert not app.exception

    print(f"{'measure':<52} {'value':>14}")
    print(f"{'rows in file':<52} {args.rows:>14,}")
    print(f"{'file size (MB)':<52} {size_mb:>14.1f}")
    print(f"{'import: validate + insert (s)':<52} {import_s:>14.2f}")
    print(f"{'import throughput (rows/s)':<52} {args.rows / import_s:>14,.0f}")
    print(f"{'Samples page queries to first sample (s)':<52} {first_sample_s:>14.3f}")
    print(f"{'Samples page full script run with a sample open (s)':<52} {page_s:>14.3f}")


if __name__ == "__main__":
    main()
