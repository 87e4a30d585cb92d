"""Model-collapse monitor: metric trends across the generations of a lineage.

A batch whose few-shot examples or seeds came from accepted synthetic samples is
the next generation of its lineage (Batch.generation, Batch.parent_batch_id,
Batch.lineage["few_shot_from"] == "accepted", written by the generation code).
Each generation is compared with the same reference set; the monitor warns when

* Vendi (relative to the reference), coverage or spread trends downward: the
  least-squares slope over ≥ 3 generations, divided by the first generation's
  value, is below −``collapse_slope_tolerance`` per generation;
* any of them drops by more than ``collapse_max_drop`` from one generation to the next;
* real data is being replaced rather than accumulated: the share of real data in
  the few-shot sources (or export plan) falls by more than ``real_share_drop``.

Real share of a generation, read from its lineage (first found wins):
``lineage["real_share"]`` (0..1); ``lineage["few_shot_sources"]`` or
``lineage["sources"]`` as counts ``{"real": n, "synthetic"|"accepted": m}``;
``lineage["export_plan"]["real_share"]``; else ``few_shot_from`` "real" → 1.0,
"accepted" → 0.0; else unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.data import record_dict
from curation.diversity.metrics import DiversityWarning
from curation.diversity.thresholds import DiversityThresholds

#: Metrics followed across generations: (key in a generation's metrics, label).
TRACKED = (
    ("vendi_ratio", "Vendi (÷ reference)"),
    ("coverage", "coverage"),
    ("spread_ratio", "spread (÷ reference)"),
)


@dataclass
class GenerationPoint:
    generation: int
    batch_ids: list[int]
    batch_names: list[str]
    metrics: dict[str, float | None]
    real_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)


@dataclass
class CollapseReport:
    root_id: int | None
    root_name: str
    points: list[GenerationPoint]
    trends: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[DiversityWarning] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root_id": self.root_id,
            "root_name": self.root_name,
            "points": [p.to_dict() for p in self.points],
            "trends": self.trends,
            "warnings": [w.to_dict() for w in self.warnings],
        }


def real_share_of(lineage: dict[str, Any] | None) -> float | None:
    """The share of real data among a generation's few-shot sources (see the module docstring)."""
    lineage = lineage or {}
    share = lineage.get("real_share")
    if isinstance(share, int | float):
        return float(share)
    for key in ("few_shot_sources", "sources"):
        counts = lineage.get(key)
        if isinstance(counts, dict):
            real = float(counts.get("real", 0) or 0)
            total = sum(float(v) for v in counts.values() if isinstance(v, int | float))
            if total > 0:
                return real / total
    plan = lineage.get("export_plan")
    if isinstance(plan, dict) and isinstance(plan.get("real_share"), int | float):
        return float(plan["real_share"])
    source = lineage.get("few_shot_from")
    if source == "real":
        return 1.0
    if source == "accepted":
        return 0.0
    return None


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0
    return float(np.polyfit(x, y, 1)[0])


def collapse_report(
    points: Sequence[GenerationPoint],
    *,
    root_id: int | None = None,
    root_name: str = "",
    thresholds: DiversityThresholds | None = None,
) -> CollapseReport:
    """Trends and warnings over the generation points of one lineage."""
    t = thresholds or DiversityThresholds()
    points = sorted(points, key=lambda p: p.generation)
    report = CollapseReport(root_id, root_name, list(points))
    for key, label in TRACKED:
        series = [(p.generation, p.metrics.get(key)) for p in points if p.metrics.get(key) is not None]
        if not series:
            continue
        gens = [g for g, _ in series]
        values = [float(v) for _, v in series]
        s = slope(gens, values)
        first = values[0]
        relative = s / first if first else 0.0
        drops = []
        for (g0, v0), (g1, v1) in zip(series, series[1:], strict=False):
            if v0 > 0 and (v0 - v1) / v0 > t.collapse_max_drop:
                drops.append({"from": g0, "to": g1, "drop": (v0 - v1) / v0})
        report.trends[key] = {
            "label": label,
            "generations": gens,
            "values": values,
            "slope": s,
            "relative_slope": relative,
            "drops": drops,
        }
        if len(series) >= t.collapse_min_generations and relative < -t.collapse_slope_tolerance:
            report.warnings.append(
                DiversityWarning(
                    f"collapse_trend:{key}",
                    f"{label} falls across {len(series)} generations: {relative:+.1%} of generation "
                    f"{gens[0]}'s value per generation (warn below {-t.collapse_slope_tolerance:+.0%}).",
                    relative,
                    -t.collapse_slope_tolerance,
                )
            )
        for drop in drops:
            report.warnings.append(
                DiversityWarning(
                    f"collapse_drop:{key}",
                    f"{label} dropped {drop['drop']:.0%} from generation {drop['from']} to {drop['to']} "
                    f"(warn above {t.collapse_max_drop:.0%}).",
                    drop["drop"],
                    t.collapse_max_drop,
                )
            )
    shares = [(p.generation, p.real_share) for p in points if p.real_share is not None]
    if len(shares) >= 2:
        report.trends["real_share"] = {
            "label": "real share of few-shot sources",
            "generations": [g for g, _ in shares],
            "values": [v for _, v in shares],
        }
        fall = shares[0][1] - shares[-1][1]
        if fall > t.real_share_drop:
            report.warnings.append(
                DiversityWarning(
                    "real_replaced",
                    f"The share of real data in the few-shot sources fell from {shares[0][1]:.0%} (generation "
                    f"{shares[0][0]}) to {shares[-1][1]:.0%} (generation {shares[-1][0]}): real data is being "
                    "replaced by synthetic data rather than accumulated.",
                    fall,
                    t.real_share_drop,
                )
            )
    return report
