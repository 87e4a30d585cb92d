"""The parameters of a generation run (the "generate" job's params), validated.

    {
      "batch": "math round 1",
      "family": "math" | "code" | "instruction" | "open",
      "mode": "solve" | "write",
      "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 50}}
              | {"kind": "humaneval", "limit": 40}
              | {"kind": "file", "path": "problems.jsonl"}
              | {"kind": "ifeval", "count": 60} | {"kind": "open_prompts", "count": 40}
              | {"kind": "topics", "count": 60},                    # write mode
      "teacher": TeacherConfig.to_dict() (no secrets; api_key_env names the variable),
      "template": {"system": str | None, "user": str} | None,   # None: the default
      "levers": {"topics": [...], "personas": [...], "difficulty": str | [...],
                 "few_shot": {"from": "reference" | "accepted", "k": 2, "pool": 20,
                              "batch_ids": [...]?} | None},
      "n": 1,                 # candidates per problem
      "seed": 0,
      "cache": true,
      "prices": {"prompt_per_million": 0.0, "completion_per_million": 0.0,
                 "batch_prompt_per_million": 0.0, "batch_completion_per_million": 0.0},
      "batch_api": false,     # send through the provider's Batch API (/v1/files + /v1/batches)
      "batch_poll_seconds": 60.0,  # longest wait between two polls of a provider batch
      "max_cost": null,       # spend cap in USD over the whole batch (see curation.generation.cost)
      "error_rate_threshold": 0.5, "error_window": 50,
      "consistency": false,   # majority answer and agreement over the n candidates (math)
      "turns": 1,             # >1: multi-turn conversations (open, instruction; solve mode)
      "user_persona": str,    # who writes the user's follow-ups (the teacher plays them)
      "followups": [str] | None   # or the follow-ups themselves (e.g. read from a file)
    }

Parameters that define what is generated (everything except concurrency,
timeouts, retries, cache, prices, batch mode, the spend cap and the breaker) are fingerprinted; a rerun
with the same name continues the batch only if the fingerprint matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from curation.data import FAMILIES
from curation.generation.cost import PRICE_KEYS
from curation.generation.templates import PromptTemplate, TemplateError, check_template, default_template
from curation.settings import unknown_keys
from curation.teachers.base import TeacherConfig

MODES = ("solve", "write")
MAX_TURNS = 16
CONVERSATION_FAMILIES = ("open", "instruction")
DEFAULT_USER_PERSONA = "a curious user who asks natural follow-up questions"
#: Teacher settings that change how, not what, is generated.
_RUNTIME_TEACHER_FIELDS = ("concurrency", "timeout", "max_retries", "api_key_env", "latency", "processes")


@dataclass
class GenerationParams:
    batch: str
    family: str
    mode: str = "solve"
    source: dict[str, Any] = field(default_factory=dict)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    template: PromptTemplate | None = None
    levers: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    seed: int = 0
    cache: bool = True
    prices: dict[str, float] = field(default_factory=dict)
    error_rate_threshold: float = 0.5
    error_window: int = 50
    consistency: bool = False
    batch_api: bool = False
    batch_poll_seconds: float = 60.0
    max_cost: float | None = None
    turns: int = 1
    user_persona: str = DEFAULT_USER_PERSONA
    followups: list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.batch, str) or not self.batch.strip():
            raise ValueError("a batch name is required")
        if len(self.batch) > 200:
            raise ValueError("batch names are at most 200 characters")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)} (got {self.family!r})")
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'solve' or 'write' (got {self.mode!r})")
        if not isinstance(self.source, dict) or "kind" not in self.source:
            raise ValueError("source must be an object with a 'kind'")
        if not 1 <= int(self.n) <= 64:
            raise ValueError("n (candidates per problem) must be between 1 and 64")
        if not 0.0 < self.error_rate_threshold <= 1.0:
            raise ValueError("error_rate_threshold must be in (0, 1]")
        if self.error_window < 1:
            raise ValueError("error_window must be at least 1")
        for key, value in self.prices.items():
            if key not in PRICE_KEYS:
                raise ValueError(f"unknown price {key!r} (use {', '.join(PRICE_KEYS)})")
            if float(value) < 0:
                raise ValueError("prices cannot be negative")
        if self.batch_api and self.teacher.kind != "openai":
            raise ValueError("the Batch API needs an OpenAI-compatible teacher (teacher kind 'openai')")
        if self.batch_poll_seconds <= 0:
            raise ValueError("batch_poll_seconds must be positive")
        if self.max_cost is not None and float(self.max_cost) < 0:
            raise ValueError("max_cost (the spend cap in USD) cannot be negative")
        unknown_levers = set(self.levers) - {"topics", "personas", "difficulty", "few_shot"}
        if unknown_levers:
            raise ValueError(f"unknown levers: {', '.join(sorted(unknown_levers))}")
        few_shot = self.levers.get("few_shot")
        if few_shot:
            if few_shot.get("from") not in ("reference", "accepted"):
                raise ValueError("levers.few_shot.from must be 'reference' or 'accepted'")
            if not 1 <= int(few_shot.get("k", 2)) <= 16:
                raise ValueError("levers.few_shot.k must be between 1 and 16")
        self.n = int(self.n)
        self.turns = int(self.turns)
        if not 1 <= self.turns <= MAX_TURNS:
            raise ValueError(f"turns must be between 1 and {MAX_TURNS}")
        if self.turns > 1 and (self.family not in CONVERSATION_FAMILIES or self.mode != "solve"):
            raise ValueError("multi-turn conversations are for open and instruction batches in solve mode")
        if self.turns > 1 and self.batch_api:
            raise ValueError(
                "multi-turn conversations need online requests (each turn waits for the last answer); "
                "drop --batch-api or --turns"
            )
        if self.turns > 1 and self.effective_template().schema is not None:
            raise ValueError(
                "structured output (a template schema) and multi-turn conversations do not combine"
            )
        if self.followups is not None:
            self.followups = [str(line).strip() for line in self.followups if str(line).strip()]
            if not self.followups:
                raise ValueError("the follow-ups file has no messages")
        try:
            check_template(self.effective_template(), self.mode)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None

    def effective_template(self) -> PromptTemplate:
        return self.template or default_template(self.family, self.mode)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        data = dict(data)
        unknown = unknown_keys(data, cls)
        if unknown:
            raise ValueError(f"unknown generation parameters: {', '.join(unknown)}")
        teacher = data.get("teacher")
        if isinstance(teacher, dict):
            data["teacher"] = TeacherConfig.from_dict(teacher)
        elif teacher is None:
            data.pop("teacher", None)
        template = data.get("template")
        if isinstance(template, dict):
            try:
                data["template"] = PromptTemplate.from_dict(template)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["teacher"] = self.teacher.to_dict()
        out["template"] = self.template.to_dict() if self.template else None
        return out

    def fingerprint(self) -> str:
        """A hash of what defines the batch's content (see module docstring)."""
        teacher = {k: v for k, v in self.teacher.to_dict().items() if k not in _RUNTIME_TEACHER_FIELDS}
        if self.effective_template().schema is None:
            del teacher[
                "structured_output"
            ]  # only shapes a run with a schema; earlier batches keep their fingerprint
        defining = {
            "family": self.family,
            "mode": self.mode,
            "source": self.source,
            "teacher": teacher,
            "template": self.effective_template().to_dict(),
            "levers": self.levers,
            "n": self.n,
            "seed": self.seed,
            "consistency": self.consistency,
        }
        if self.turns > 1:  # single-turn batches keep their earlier fingerprints
            defining.update(turns=self.turns, user_persona=self.user_persona, followups=self.followups)
        return hashlib.sha256(json.dumps(defining, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def slots_per_item(self) -> int:
        return self.n
