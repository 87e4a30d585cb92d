"""The teacher interface: an async chat-completion call and its failure kinds.

A teacher is configured by a `TeacherConfig`, which is stored with the batch and
in job parameters. It never holds the API key: only the name of the environment
variable to read it from (`api_key_env`). The key itself is passed at run time
and scrubbed from every error text (`Scrubber`).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from curation.registry import Registry

#: Failure kinds, as recorded in GenerationRequest.error_kind and Batch.stats.
ERROR_KINDS: tuple[str, ...] = (
    "rate_limit",
    "quota",
    "auth",
    "not_found",
    "bad_request",
    "server_error",
    "timeout",
    "connection",
    "malformed",
    "unexpected",
)
#: Kinds that mean every further request will fail the same way.
FATAL_KINDS: frozenset[str] = frozenset({"auth", "not_found", "quota"})

SECRET_FIELD_NAMES = frozenset({"api_key", "key", "secret", "token", "password"})


def check_endpoint_settings(data: Any, config_class: type, what: str) -> None:
    """Refuse settings for an endpoint config (teacher, judge) that carry a secret
    (keys are named by environment variable, never stored) or a field it does not have."""
    secret = SECRET_FIELD_NAMES & set(data)
    if secret:
        raise ValueError(
            "API keys are never stored: give the name of an environment variable in 'api_key_env' "
            f"instead of {', '.join(sorted(secret))}"
        )
    unknown = set(data) - {f.name for f in fields(config_class)}
    if unknown:
        raise ValueError(f"unknown {what} settings: {', '.join(sorted(unknown))}")


@dataclass
class ChatRequest:
    """One call to the teacher. `candidates` are the candidate indices the choices fill
    (len == n); `context` carries facts about the item for offline teachers (the
    simulated one) and is never sent to an endpoint."""

    messages: list[dict[str, str]]
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    candidates: list[int] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    #: OpenAI's `response_format` (structured output), sent as is.
    response_format: dict[str, Any] | None = None


@dataclass
class Choice:
    text: str
    finish_reason: str | None = None
    #: Facts to merge into the sample's metadata (e.g. simulated_fault).
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    choices: list[Choice]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {
            "choices": [
                {"text": c.text, "finish_reason": c.finish_reason, "meta": c.meta} for c in self.choices
            ],
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model": self.model,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Completion:
        return cls(
            choices=[
                Choice(
                    text=c.get("text", ""),
                    finish_reason=c.get("finish_reason"),
                    meta=dict(c.get("meta") or {}),
                )
                for c in payload.get("choices", [])
            ],
            prompt_tokens=int(payload.get("prompt_tokens") or 0),
            completion_tokens=int(payload.get("completion_tokens") or 0),
            model=str(payload.get("model") or ""),
        )


class TeacherError(Exception):
    """A failed call. `retryable` errors are retried with backoff; `retry_after` (seconds)
    is the server's own hint (429). The message is already scrubbed of secrets."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.message}"
            if self.status is None
            else f"{self.kind} ({self.status}): {self.message}"
        )


@dataclass
class TeacherConfig:
    """How to reach and sample a teacher. Stored with the batch: no secrets here."""

    kind: str = "simulated"
    base_url: str = ""
    model: str = ""
    #: Name of the environment variable holding the API key (never the key).
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float | None = 0.7
    top_p: float | None = None
    max_tokens: int | None = 1024
    #: "max_tokens" or "max_completion_tokens" (newer OpenAI reasoning models want the latter).
    max_tokens_param: str = "max_tokens"
    seed: int | None = None
    system_prompt: str | None = None
    #: Seconds per request before it counts as a timeout.
    timeout: float = 60.0
    #: Upper bound of concurrent requests (the limiter adapts below it).
    concurrency: int = 16
    #: Retries per request on 5xx, timeouts, dropped connections and malformed answers.
    max_retries: int = 6
    #: One request per candidate instead of one request with `n` choices.
    split_candidates: bool = False
    #: Processes to spread a run over (0: automatic, 2 for concurrency >= 128 on 2+ cores).
    processes: int = 0
    #: Simulated teacher: share of candidates with an injected fault, and latency per call.
    fault_rate: float = 0.2
    latency: float = 0.0
    #: A template's JSON schema goes as `response_format` ("json_schema") or into the prompt ("prompt").
    structured_output: str = "json_schema"

    def __post_init__(self) -> None:
        if self.structured_output not in ("json_schema", "prompt"):
            raise ValueError("structured_output must be 'json_schema' or 'prompt'")
        if self.concurrency < 1:
            raise ValueError("teacher concurrency must be at least 1")
        if self.timeout <= 0:
            raise ValueError("teacher timeout must be positive")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if self.max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ValueError("max_tokens_param must be 'max_tokens' or 'max_completion_tokens'")
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError(
                f"api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), not a key"
                f" ({len(self.api_key_env)} characters given)"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherConfig:
        check_endpoint_settings(data, cls, "teacher")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scrubber:
    """Removes secrets (and the masked fragments servers echo back) from text."""

    def __init__(self, secrets: list[str | None] | None = None) -> None:
        self.secrets = sorted({s for s in (secrets or []) if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
            # Fragments of 8+ characters (e.g. "sk-abc12***wxyz" style echoes).
            if len(secret) >= 12:
                for size in (len(secret) // 2, 8):
                    for start in range(0, len(secret) - size + 1):
                        piece = secret[start : start + size]
                        if piece in text:
                            text = text.replace(piece, "[redacted]")
        # Whatever a server echoes after "API key provided:" is a (masked) key.
        text = re.sub(r"(?i)(api key provided:?\s*)\S+", r"\1[redacted]", text)
        text = re.sub(r"(?i)(bearer\s+)\S+", r"\1[redacted]", text)
        return text


def resolve_api_key(config: TeacherConfig, api_key: str | None = None) -> str | None:
    """The key passed in, else the environment variable named in the config, else None."""
    if api_key:
        return api_key
    if config.api_key_env:
        return os.environ.get(config.api_key_env) or None
    return None


TEACHERS: Registry[type[Teacher]] = Registry("teacher")


class Teacher(ABC):
    """A source of completions; `class SimulatedTeacher(Teacher, name="simulated")` names
    it and registers it in TEACHERS."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: True for the offline simulated teacher: shown as "simulated" everywhere.
    simulated: ClassVar[bool] = False
    #: True if `complete` itself gives up after `config.timeout` (else the engine adds a guard).
    enforces_timeout: ClassVar[bool] = False

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            TEACHERS.register(name)(cls)

    def __init__(self, config: TeacherConfig, api_key: str | None = None) -> None:
        self.config = config
        self.scrub = Scrubber([api_key])
        self._api_key = api_key

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Completion:
        """One call; raises TeacherError."""

    async def list_models(self) -> list[str]:
        return [self.config.model] if self.config.model else []

    async def aclose(self) -> None:
        return None

    def endpoint(self) -> str:
        """Where completions come from (part of the cache key and Batch.source)."""
        return self.config.base_url.rstrip("/")

    def cache_identity(self, request: ChatRequest) -> dict[str, Any]:
        """What, besides endpoint, model, messages and sampling parameters, shapes the answer."""
        return {}

    def source_label(self) -> str:
        return f"{self.name}:{self.config.model}"
