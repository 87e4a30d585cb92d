"""Built-in sources that need no files: instructions with IFEval-style constraints,
open prompts, and writing tasks for the write mode."""

from __future__ import annotations

import random
from typing import Any

from curation.generation.constraints import describe, draw_constraints
from curation.sources.base import Problem, ProblemSource

_INSTRUCTION_TOPICS = (
    "sleep",
    "gardening",
    "learning a language",
    "cycling to work",
    "saving money",
    "cooking at home",
    "running a meeting",
    "reading more books",
    "moving to a new city",
    "keeping a journal",
    "caring for a dog",
    "starting to paint",
    "drinking more water",
    "visiting a museum",
)
_INSTRUCTION_FORMS = (
    "Write a short guide about {topic}.",
    "Give advice to a friend who asks about {topic}.",
    "Write a brief blog post about {topic}.",
    "Explain to a beginner how to get started with {topic}.",
)
_OPEN_STEMS = (
    "Explain {topic} to a curious teenager.",
    "What are the most common misconceptions about {topic}?",
    "Give practical advice on {topic} for a complete beginner.",
    "What are the pros and cons of getting into {topic}?",
    "How has {topic} changed over the last fifty years?",
    "Describe a good first weekend project related to {topic}.",
)
_OPEN_TOPICS = (
    "astronomy",
    "home repair",
    "public speaking",
    "photography",
    "nutrition",
    "local history",
    "birdwatching",
    "chess",
    "budgeting",
    "container gardening",
)
MAX_COUNT = 100_000


class _CountedSource(ProblemSource):
    """A built-in source of `count` problems ({"kind": name, "count": n})."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.count = int(config.get("count") or 0)
        if not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"{self.name} source: count must be between 1 and {MAX_COUNT:,}")

    def describe(self) -> str:
        return f"{self.name}:{self.count}"

    def indices(self, limit: int | None) -> range:
        """The problem indices to make: all `count`, or the first `limit`."""
        return range(min(self.count, limit or self.count))


class InstructionSource(_CountedSource, name="ifeval"):
    """Instructions with 1-3 verifiable constraints (reference: instruction_id_list + kwargs)."""

    families = ("instruction",)
    label = "instructions with IFEval-style constraints (built in)"

    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        out = []
        for index in self.indices(limit):
            rng = random.Random(f"ifeval:{seed}:{index}")
            topic = rng.choice(_INSTRUCTION_TOPICS)
            ids, kwargs = draw_constraints(rng, rng.randint(1, 3))
            text = (
                rng.choice(_INSTRUCTION_FORMS).format(topic=topic)
                + " "
                + " ".join(describe(i, k) for i, k in zip(ids, kwargs, strict=True))
            )
            out.append(
                Problem(
                    family="instruction",
                    prompt=text,
                    reference={"instruction_id_list": ids, "kwargs": kwargs},
                    metadata={"source": "ifeval", "source_index": index},
                    id=f"ifeval:{seed}:{index}",
                    hints={"topic": topic},
                )
            )
        return out


class OpenPromptSource(_CountedSource, name="open_prompts"):
    families = ("open",)
    label = "open-ended prompts (built in)"

    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        combos = [(s, t) for t in _OPEN_TOPICS for s in _OPEN_STEMS]
        random.Random(f"open:{seed}").shuffle(combos)
        out = []
        for index in self.indices(limit):
            stem, topic = combos[index % len(combos)]
            out.append(
                Problem(
                    family="open",
                    prompt=stem.format(topic=topic),
                    metadata={"source": "open_prompts", "source_index": index},
                    id=f"open_prompts:{seed}:{index}",
                    hints={"topic": topic},
                )
            )
        return out


class TopicSource(_CountedSource, name="topics"):
    """`count` writing tasks for the write mode; the levers (topics, personas,
    difficulty) fill each one's template variables."""

    modes = ("write",)
    label = "new problems written by the teacher"

    def problems(self, family: str, seed: int, limit: int | None = None) -> list[Problem]:
        return [
            Problem(family=family, metadata={"source": "topics", "source_index": index}, id=None)
            for index in self.indices(limit)
        ]
