"""What an export should contain: the selection, the mix rule, the split and the format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from curation.data import FAMILIES
from curation.export.candidates import CANDIDATE_RULES
from curation.settings import from_dict

#: Under this share of real rows the plan warns (model-collapse risk grows with the synthetic share).
MIN_REAL_SHARE = 0.10


def parse_share(value: Any) -> float | None:
    """A share as a fraction in [0, 1]: 0.3, "0.3" or "30%" (None and "" mean unset)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    else:
        share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a synthetic share must be between 0 and 1 (or 0% and 100%), got {value!r}")
    return share


@dataclass
class ExportConfig:
    """The parameters of one export (the "export" job's params, and the manifest's config).

    `batches` are synthetic batch names (None: every visible synthetic batch);
    `reference_sets` real batches (None: every real batch — the accumulate rule keeps
    all real data); `eval_sets` evaluation batches to decontaminate against (None:
    every evaluation batch). A synthetic share S means S of the exported rows are
    synthetic; families in `family_shares` get their own share, the others share the
    overall one as one pool. None keeps every eligible synthetic row. `candidates`
    is the best-of-n rule (`first`, `all`, `best`; see `curation.export.candidates`);
    None keeps every accepted candidate."""

    out: str = ""
    format: str = "jsonl"
    batches: list[str] | None = None
    families: list[str] | None = None
    reference_sets: list[str] | None = None
    eval_sets: list[str] | None = None
    synthetic_share: float | None = None
    family_shares: dict[str, float] = field(default_factory=dict)
    allow_dropping_real: bool = False
    seed: int = 0
    validation_fraction: float = 0.0
    candidates: str | None = None
    created_by: str = ""

    def __post_init__(self) -> None:
        self.synthetic_share = parse_share(self.synthetic_share)
        self.family_shares = {
            str(k): parse_share(v) for k, v in (self.family_shares or {}).items() if v is not None
        }
        for family in [*(self.families or []), *self.family_shares]:
            if family not in FAMILIES:
                raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
        self.validation_fraction = float(self.validation_fraction or 0.0)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"the validation fraction must be in [0, 1), got {self.validation_fraction}")
        self.seed = int(self.seed)
        if self.candidates is not None and self.candidates not in CANDIDATE_RULES:
            raise ValueError(
                f"unknown candidate rule {self.candidates!r} (known: {', '.join(CANDIDATE_RULES)})"
            )
        for name in ("batches", "families", "reference_sets", "eval_sets"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, list(dict.fromkeys(str(v) for v in value)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportConfig:
        return from_dict(cls, data, "export parameters")

    def share_for(self, family: str) -> float | None:
        return self.family_shares.get(family, self.synthetic_share)
