"""Export: plan a mixed dataset (accepted synthetic + real reference data), write it
in a chosen format with provenance on every row, a manifest and a dataset card.

* `config` — `ExportConfig`, the parameters of one export.
* `plan` — `plan_export`: selection, cross-dedup, decontamination, share, shuffle, split (no files).
* `rows` — rows with provenance, streamed from the store in chunks.
* `run` — `run_export`: files, Export/ExportRow rows, manifest, card.
* `card` — the Hugging Face style dataset card.
* `textmatch` — normalised-text keys and the 13-gram decontamination index.
* `jobs` — the "export" job kind; `archive` — one zip of an export folder.
* `reconcile` — requested → generated → verified → deduplicated → reviewed → exported,
  every difference explained; the cost per accepted sample.
* `cli` — the `export` and `reconcile` commands.
"""

from curation.export.config import ExportConfig, parse_share
from curation.export.plan import ExportPlan, plan_export, reason_label
from curation.export.run import ExportResult, run_export, sha256_file

__all__ = [
    "ExportConfig",
    "ExportPlan",
    "ExportResult",
    "parse_share",
    "plan_export",
    "reason_label",
    "run_export",
    "sha256_file",
]
