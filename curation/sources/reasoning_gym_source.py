"""Problems with ground truth from reasoning-gym's procedural generators."""

from __future__ import annotations

import json
import zlib
from typing import Any

from curation.sources.base import Problem, ProblemSource

#: Datasets whose answers are mathematical values: family "math" (others: family "open").
MATH_DATASETS = frozenset(
    {
        "basic_arithmetic",
        "bitwise_arithmetic",
        "calendar_arithmetic",
        "chain_sum",
        "complex_arithmetic",
        "count_bits",
        "count_primes",
        "decimal_arithmetic",
        "decimal_chain_sum",
        "fraction_simplification",
        "gcd",
        "gsm_symbolic",
        "lcm",
        "leg_counting",
        "number_format",
        "polynomial_equations",
        "power_function",
        "prime_factorization",
        "products",
        "simple_equations",
        "simple_geometry",
        "time_intervals",
        "base_conversion",
        "dice",
        "intermediate_integration",
        "simple_integration",
        "polynomial_multiplication",
    }
)
MAX_ITEMS = 100_000


def suggest_family(dataset: str) -> str:
    return "math" if dataset in MATH_DATASETS else "open"


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class ReasoningGymSource(ProblemSource, name="reasoning_gym"):
    families = ("math", "open")
    label = "reasoning-gym procedural problems"
    requires = ("reasoning_gym", "reasoning_gym")

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        datasets = config.get("datasets")
        if isinstance(datasets, list):
            datasets = {str(name): int(size) for name, size in datasets}
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError("reasoning_gym source: give datasets, e.g. {'basic_arithmetic': 50}")
        if sum(int(size) for size in datasets.values()) > MAX_ITEMS:
            raise ValueError(f"reasoning_gym source: at most {MAX_ITEMS:,} problems per batch")
        self.datasets: dict[str, int] = {str(k): int(v) for k, v in datasets.items()}
        self.dataset_config: dict[str, dict[str, Any]] = dict(config.get("config") or {})

    def check(self, family: str, mode: str) -> None:
        super().check(family, mode)
        from reasoning_gym.factory import DATASETS  # heavy optional package: loaded when this source runs

        for name in self.datasets:
            if name not in DATASETS:
                raise ValueError(f"reasoning_gym has no dataset {name!r}")
            if family == "math" and name not in MATH_DATASETS:
                raise ValueError(f"reasoning_gym dataset {name!r} is not arithmetic-like: use family 'open'")

    def describe(self) -> str:
        return "reasoning_gym:" + ",".join(f"{name}={size}" for name, size in self.datasets.items())

    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        import reasoning_gym  # heavy optional package: loaded when this source runs

        out: list[Problem] = []
        for name, size in self.datasets.items():
            if limit is not None and len(out) >= limit:
                break
            dataset_seed = (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)
            take = size if limit is None else min(size, limit - len(out))
            dataset = reasoning_gym.create_dataset(
                name, size=size, seed=dataset_seed, **self.dataset_config.get(name, {})
            )
            for index in range(take):
                entry = dataset[index]
                metadata = _json_safe(entry.get("metadata") or {})
                answer = str(entry["answer"])
                out.append(
                    Problem(
                        family=family,
                        prompt=str(entry["question"]),
                        reference={"answer": answer},
                        metadata={
                            "source": "reasoning_gym",
                            "dataset": name,
                            "source_index": index,
                            "source_seed": dataset_seed,
                        },
                        id=f"reasoning_gym:{name}:{dataset_seed}:{index}",
                        hints={"answer": answer, "expression": metadata.get("expression")},
                    )
                )
        return out
