"""The CLI runs the same library functions, in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import as_user, cli, write_jsonl


def _commands(help_text: str) -> list[str]:
    """The command names listed in an argparse help text (indented four spaces)."""
    return [
        line.split()[0]
        for line in help_text.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]


def test_the_assay_console_script_has_the_same_commands(store_url):
    script = Path(sys.executable).parent / "assay"
    if not script.exists():
        pytest.skip(f"{script} is not installed (make install puts it there with pip install -e .)")
    assay = subprocess.run(
        [str(script), "--db", store_url, "--help"], capture_output=True, text=True, timeout=120
    )
    module = cli("--help", db=store_url)
    assert assay.returncode == module.returncode == 0
    assert assay.stdout.startswith("usage: assay") and module.stdout.startswith("usage: python -m curation")
    assert _commands(assay.stdout) == _commands(module.stdout)
    assert {"import", "generate", "verify", "review-stats", "embed", "export", "reconcile", "demo"} <= set(
        _commands(assay.stdout)
    )


def test_help_lists_the_commands(store_url):
    result = cli("--help", db=store_url)
    assert result.returncode == 0
    for command in ("import", "export", "jobs"):
        assert command in result.stdout


def test_import_then_export_round_trip(store_url, records_file, tmp_path):
    assert cli("import", str(records_file(6)), "--batch", "b", db=store_url).returncode == 0
    from curation.review.decisions import record_decision
    from curation.store import open_store
    from curation.store.queries import SampleFilter, query_samples

    engine = open_store(store_url)
    rows, _ = query_samples(engine, SampleFilter())
    for row in rows[:2]:
        record_decision(engine, as_user("ada"), row.id, "accept")
    out = tmp_path / "accepted.jsonl"
    result = cli("export", "--out", str(out), db=store_url)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["provenance"]["sample_id"] for line in lines) == sorted([rows[0].id, rows[1].id])
    assert (tmp_path / "accepted.manifest.json").exists()


def test_bad_import_exits_nonzero_naming_line_and_field(store_url, tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl", [{"family": "math", "prompt": "p", "response": "r"}, {"family": "math"}]
    )
    result = cli("import", str(path), "--batch", "b", db=store_url)
    assert result.returncode == 1
    assert "line 2, field 'prompt': missing" in result.stderr
    jobs = cli("jobs", db=store_url)
    assert jobs.returncode == 0
