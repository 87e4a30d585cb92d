"""The dataset card (README.md) of an export, in Hugging Face dataset-card style:
a YAML header, then statistics tables, how to load the data, and the provenance fields."""

from __future__ import annotations

import json
from typing import Any

from curation.export.plan import reason_label
from curation.export.rows import PROVENANCE_FIELDS, BatchInfo

TASK_CATEGORIES = {
    "math": "question-answering",
    "code": "text-generation",
    "instruction": "text-generation",
    "open": "text-generation",
}


def size_category(n: int) -> str:
    """The Hugging Face `size_categories` bucket for n rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]
    for bound, label in bounds:
        if n < bound:
            return label
    return "10M<n<100M"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1%}"
        if isinstance(value, int):
            return f"{value:,}"
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _yaml_list(key: str, values: list[str]) -> list[str]:
    return [f"{key}:"] + [f"- {json.dumps(v)}" for v in values]


def dataset_card(
    manifest: dict[str, Any], writer: Any, batches: dict[int, BatchInfo], files: list[str]
) -> str:
    """Markdown text of README.md for the export described by `manifest`."""
    counts = manifest["counts"]
    families = counts["families"]
    tasks = sorted({TASK_CATEGORIES.get(f, "text-generation") for f in families}) or ["text-generation"]
    header = [
        "---",
        "license: other",
        "license_name: unknown",
        "license_details: >-",
        "  Unknown: synthetic rows inherit the terms of the teacher model's provider and of the",
        "  problem sources; real rows keep the licence of their reference set.",
        *_yaml_list("task_categories", tasks),
        *_yaml_list("size_categories", [size_category(counts["rows"])]),
        *_yaml_list("tags", ["synthetic", "assay", "provenance"]),
        f"pretty_name: {json.dumps('Assay export ' + str(manifest['export_id']))}",
    ]
    if not writer.folder:
        header.append("configs:")
        header.append("- config_name: default")
        header.append("  data_files:")
        for split, name in zip(counts["splits"], files, strict=False):
            header.append(f"  - split: {split}")
            header.append(f"    path: {json.dumps(name)}")
    header.append("---")

    share = counts["synthetic_share"]
    body = [
        f"# Assay export {manifest['export_id']}",
        "",
        f"{counts['rows']:,} rows: {counts['synthetic']:,} accepted synthetic samples and {counts['real']:,} real "
        f"(human-written) rows; synthetic share {share:.1%}."
        if share is not None
        else "An empty export.",
        f"Exported {manifest['created_at']} by {manifest['created_by'] or 'unknown'} with Assay {manifest['assay_version']}, "
        f"format `{manifest['format']}`, seed {manifest['config']['seed']}.",
        "",
        "## Rows by source and family",
        "",
        _table(
            ["family", "synthetic", "real", "synthetic share"],
            [
                [f, n["synthetic"], n["real"], counts["family_shares"].get(f)]
                for f, n in sorted(families.items())
            ]
            + [["**all**", counts["synthetic"], counts["real"], share]],
        ),
        "",
        "## Splits",
        "",
        _table(
            ["split", "synthetic", "real"],
            [[s, n["synthetic"], n["real"]] for s, n in counts["splits"].items()],
        ),
        "",
        "## Batches and teachers",
        "",
    ]
    by_name = {info.name: info for info in batches.values()}
    body.append(
        _table(
            ["batch", "source", "rows", "teacher", "model"],
            [
                [
                    name,
                    (by_name[name].origin if name in by_name else ""),
                    n,
                    by_name[name].teacher if name in by_name else "",
                    by_name[name].model if name in by_name else "",
                ]
                for name, n in sorted(counts["batches"].items())
            ],
        )
    )
    teachers = sorted(
        {f"{i.teacher} ({i.model})" for i in by_name.values() if i.teacher and i.name in counts["batches"]}
    )
    body += ["", "Teachers used: " + (", ".join(teachers) if teachers else "none (no synthetic rows)") + "."]
    rates = manifest["metrics"]["verifier_pass_rates"]
    body += ["", "## Verifiers (exported synthetic rows)", ""]
    if rates:
        body.append(
            _table(
                ["verifier", "version", "passed", "failed", "unknown", "pass rate"],
                [
                    [r["verifier"], r["version"], r["passed"], r["failed"], r["unknown"], r["pass_rate"]]
                    for r in rates.values()
                ],
            )
        )
    else:
        body.append("No verifier verdicts on the exported rows.")
    bounds = manifest["metrics"].get("acceptance_sampling") or {}
    if bounds:
        body += ["", "## Acceptance sampling (random spot-check by reviewers)", ""]
        body.append(
            _table(
                ["batch", "claim", "reviewed", "failures", "upper bound", "holds"],
                [
                    [
                        name,
                        f"error rate ≤ {b['max_error']:.0%} at {b['confidence']:.0%}",
                        b["reviewed"],
                        b["failures"],
                        b["upper_bound"],
                        "yes" if b["holds"] else f"not yet ({b['remaining']:,} more to read)",
                    ]
                    for name, b in sorted(bounds.items())
                ],
            )
        )
    body += ["", "## Rows left out (deduplication, decontamination, mix)", ""]
    dropped = manifest["dropped"]
    if dropped:
        body.append(
            _table(
                ["reason", "synthetic", "real"],
                [[reason_label(d["code"]), d.get("synthetic", 0), d.get("real", 0)] for d in dropped],
            )
        )
    else:
        body.append("None.")
    not_accepted = counts.get("not_accepted") or {}
    if not_accepted:
        body += [
            "",
            "Synthetic samples not accepted by a reviewer (never exported): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(not_accepted.items()))
            + ".",
        ]
    evals = manifest["config"].get("batches_resolved", {}).get("eval", [])
    body += [
        "",
        "Decontamination: "
        + (
            f"word 13-gram overlap against {', '.join(evals)}."
            if evals
            else "none (no evaluation set chosen)."
        ),
    ]
    if manifest.get("allow_dropping_real"):
        body += ["", "**Real rows were allowed to be dropped to reach the synthetic share.**"]
    if manifest["warnings"]:
        body += ["", "## Warnings", ""] + [f"- {w}" for w in manifest["warnings"]]
    body += ["", "## How to load", "", "```python", writer.load_snippet(files), "```", ""]
    body += [
        "## Provenance",
        "",
        "Every row carries a `provenance` object (a JSON string in CSV, Parquet and Hugging Face formats):",
        "",
        _table(["field", "meaning"], [[f"`{k}`", v] for k, v in PROVENANCE_FIELDS.items()]),
        "",
        "`manifest.json` beside this card holds the full configuration, counts, dropped rows by reason,",
        "metric summaries and the sha256 of every data file.",
        "",
    ]
    return "\n".join(header) + "\n\n" + "\n".join(body)
