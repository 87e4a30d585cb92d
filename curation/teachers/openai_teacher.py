"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, TGI, ...).

Uses `openai.AsyncOpenAI` with its own retries off (`max_retries=0`): the
generation engine does the retrying, with backoff, the adaptive limiter and the
error-rate breaker. Requests go through `client.request` with a plain body and the
response is read as JSON by hand, which skips the SDK's per-call type transforms
and pydantic parsing (most of its CPU cost) and lets a malformed body be a
retryable error rather than a crash.
"""

from __future__ import annotations

import email.utils
import functools
import json
import os
import time
from typing import Any
from urllib.parse import urlparse

import httpx2

from curation.teachers.base import (
    ChatRequest,
    Choice,
    Completion,
    Teacher,
    TeacherConfig,
    TeacherError,
    resolve_api_key,
)
from curation.teachers.transport import LeanAsyncTransport

#: Sent when no key is configured: local servers (vLLM, llama.cpp) accept anything.
NO_KEY = "no-key"
#: The endpoint a batch's requests go to (OpenAI's name for chat completions in a batch).
BATCH_ENDPOINT = "/v1/chat/completions"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


@functools.cache
def templated_client_class() -> Any:
    """`openai.AsyncOpenAI` that reuses the request it built for the same options.

    Why: the SDK builds every request from scratch (headers merged, validated and
    normalised three times over, the URL parsed twice): about 110 µs of CPU, a sixth
    of a request's whole cost at hundreds of requests/s. The engine's requests
    differ only in their body, so the first request built for a given set of
    options (everything but the body and the idempotency key) becomes a template,
    and the next ones are the same method, URL, headers and extensions with the new
    body (about 12 µs). Anything else (a JSON body, files, a provider runtime or an
    API-key provider that can change the headers) goes through the SDK's own path."""
    import openai  # heavy: the SDK is loaded only when an OpenAI teacher is used

    class TemplatedAsyncOpenAI(openai.AsyncOpenAI):
        @property
        def user_agent(self) -> str:
            return f"AsyncOpenAI/Python {self._version}"  # as the SDK's own class sends

        def _build_request(self, options: Any, *, retries_taken: int = 0) -> httpx2.Request:
            content = options.content
            if (
                not isinstance(content, bytes)
                or options.json_data is not None
                or options.files is not None
                or options.extra_json is not None
                or getattr(self, "_provider_runtime", None) is not None
                or getattr(self, "_api_key_provider", None) is not None
                or self._idempotency_header
            ):
                return super()._build_request(options, retries_taken=retries_taken)
            key = repr(
                (
                    options.method,
                    options.url,
                    options.params,
                    options.headers,
                    options.timeout,
                    options.follow_redirects,
                    options.security,
                    retries_taken,
                    self.api_key,
                )
            )
            templates = self.__dict__.setdefault("_assay_request_templates", {})
            template = templates.get(key)
            if template is None:
                built = super()._build_request(options, retries_taken=retries_taken)
                headers = httpx2.Headers(
                    [(name, value) for name, value in built.headers.raw if name.lower() != b"content-length"]
                )
                if len(templates) > 64:
                    templates.clear()
                templates[key] = (built.method, built.url, headers, dict(built.extensions))
                return built
            method, url, headers, extensions = template
            headers = httpx2.Headers(headers)
            headers["Content-Length"] = str(len(content))
            # stream= (httpx's way of copying a request) skips re-deriving the
            # content headers, which costs more than the rest of building it.
            request = httpx2.Request(
                method, url, headers=headers, stream=httpx2.ByteStream(content), extensions=dict(extensions)
            )
            request.read()
            return request

    return TemplatedAsyncOpenAI


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class OpenAITeacher(Teacher, name="openai"):
    label = "OpenAI-compatible endpoint"
    enforces_timeout = True

    def __init__(self, config: TeacherConfig, api_key: str | None = None) -> None:
        key = resolve_api_key(config, api_key)
        super().__init__(config, api_key=key)
        if not config.base_url:
            raise ValueError(
                "the OpenAI-compatible teacher needs a base URL (e.g. https://api.openai.com/v1)"
            )
        if urlparse(config.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base URL must start with http:// or https:// (got {config.base_url[:80]!r})")
        self._key_missing = key is None
        self._client = self._make_client(key or NO_KEY)
        # Per-request CPU matters at hundreds of requests/s: an absolute URL spares the
        # client merging it with the base URL on every call (unless the base URL has a
        # query), and options equal to the client's own settings spare it copying defaults.
        parsed = urlparse(config.base_url)
        self._chat_url = (
            "/chat/completions"
            if parsed.query or parsed.fragment
            else config.base_url.rstrip("/") + "/chat/completions"
        )
        # The request options, built once: `client.post` would build them (a pydantic
        # model with a dozen defaults) on every call; `client.request` takes them ready.
        from openai._models import FinalRequestOptions  # heavy: the SDK, only for an OpenAI teacher

        self._request_options = FinalRequestOptions.construct(
            method="post", url=self._chat_url, max_retries=0, timeout=config.timeout, headers={}
        )

    def _make_client(self, key: str) -> Any:
        import openai  # heavy: the SDK is loaded only when an OpenAI teacher is used

        if any(os.environ.get(name) for name in PROXY_VARIABLES):
            limits = httpx2.Limits(
                max_connections=self.config.concurrency + 8,
                max_keepalive_connections=self.config.concurrency + 8,
            )
            http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.config.timeout)
        else:
            http_client = httpx2.AsyncClient(transport=LeanAsyncTransport(), timeout=self.config.timeout)
        return templated_client_class()(
            base_url=self.config.base_url,
            api_key=key,
            max_retries=0,
            timeout=self.config.timeout,
            http_client=http_client,
        )

    def source_label(self) -> str:
        host = urlparse(self.config.base_url).netloc or self.config.base_url
        return f"openai:{self.config.model}@{host}"

    async def aclose(self) -> None:
        await self._client.close()

    async def list_models(self) -> list[str]:
        try:
            page = await self._client.models.list()
            return sorted(model.id for model in page.data)
        except Exception as exc:  # noqa: BLE001 - mapped to a TeacherError with a scrubbed message
            raise self._map_error(exc) from None

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "messages": request.messages}
        if request.n != 1:
            body["n"] = request.n
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body[self.config.max_tokens_param] = request.max_tokens
        if request.seed is not None:
            body["seed"] = request.seed
        if request.response_format is not None:
            body["response_format"] = request.response_format
        return body

    def _encode(self, request: ChatRequest) -> bytes:
        """The JSON body, serialized here: the client sends bytes as they are, which skips
        its own (slower, general-purpose) serializer."""
        return json.dumps(self._body(request), ensure_ascii=False, separators=(",", ":")).encode()

    async def complete(self, request: ChatRequest) -> Completion:
        try:
            options = self._request_options.model_copy(update={"content": self._encode(request)})
            response = await self._client.request(httpx2.Response, options)
            content = response.content
        except Exception as exc:  # noqa: BLE001 - every failure becomes a classified TeacherError
            raise self._map_error(exc) from None
        return self._parse(content, request.n)

    def _parse(self, content: bytes, expected: int) -> Completion:
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise self._malformed(exc, content) from None
        return self.completion_from_body(data, expected, content)

    def _malformed(self, exc: Exception, content: bytes) -> TeacherError:
        preview = content[:120].decode("utf-8", "replace")
        return TeacherError(
            "malformed", self.scrub(f"unreadable response ({exc}): {preview!r}"), retryable=True
        )

    def completion_from_body(self, data: Any, expected: int, content: bytes | None = None) -> Completion:
        """The Completion in a chat.completion body (already decoded from JSON); `content`,
        the raw bytes if at hand, previews a malformed one."""
        try:
            raw_choices = data["choices"]
            if not isinstance(raw_choices, list) or not raw_choices:
                raise ValueError("no choices")
            choices: list[Choice] = []
            for raw in sorted(raw_choices, key=lambda c: c.get("index", 0)):
                message = raw.get("message") or {}
                text = message.get("content")
                meta: dict[str, Any] = {}
                if text is None:
                    text = message.get("refusal") or ""
                    if message.get("refusal"):
                        meta["refusal"] = True
                reasoning = message.get("reasoning_content") or message.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    meta["reasoning"] = reasoning
                if not isinstance(text, str):
                    raise ValueError("content is not text")
                choices.append(Choice(text=text, finish_reason=raw.get("finish_reason"), meta=meta))
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._malformed(
                exc, content if content is not None else json.dumps(data).encode()
            ) from None
        if len(choices) < expected:
            raise TeacherError(
                "malformed", f"asked for {expected} choices, got {len(choices)}", retryable=True
            )
        return Completion(
            choices=choices[:expected],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=str(data.get("model") or self.config.model),
        )

    # -- the Batch API (/v1/files + /v1/batches) --

    def batch_line(self, custom_id: str, request: ChatRequest) -> str:
        """One line of a batch input file: the chat request `complete` would send."""
        line = {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": self._body(request)}
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))

    async def upload_batch_input(self, content: bytes) -> str:
        """Upload a batch input file (JSONL); its file id."""
        try:
            uploaded = await self._client.files.create(file=("assay-batch.jsonl", content), purpose="batch")
        except Exception as exc:  # noqa: BLE001 - mapped to a TeacherError with a scrubbed message
            raise self._map_error(exc) from None
        return str(uploaded.id)

    async def create_batch(self, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        try:
            batch = await self._client.batches.create(
                input_file_id=input_file_id,
                endpoint=BATCH_ENDPOINT,
                completion_window="24h",
                metadata=metadata,
            )
        except Exception as exc:  # noqa: BLE001 - mapped to a TeacherError with a scrubbed message
            raise self._map_error(exc) from None
        return batch.model_dump()

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        try:
            batch = await self._client.batches.retrieve(batch_id)
        except Exception as exc:  # noqa: BLE001 - mapped to a TeacherError with a scrubbed message
            raise self._map_error(exc) from None
        return batch.model_dump()

    async def list_batches(self) -> list[dict[str, Any]]:
        """The provider's batches (newest first, as far as one page of 100 goes)."""
        try:
            page = await self._client.batches.list(limit=100)
        except Exception as exc:  # noqa: BLE001 - mapped to a TeacherError with a scrubbed message
            raise self._map_error(exc) from None
        return [batch.model_dump() for batch in page.data]

    async def file_content(self, file_id: str) -> bytes:
        try:
            response = await self._client.files.content(file_id)
        except Exception as exc:  # noqa: BLE001 - mapped to a TeacherError with a scrubbed message
            raise self._map_error(exc) from None
        return response.content

    def _map_error(self, exc: BaseException) -> TeacherError:
        import openai  # heavy: the SDK is loaded only when an OpenAI teacher is used

        if isinstance(exc, TeacherError):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            return TeacherError("timeout", f"no response within {self.config.timeout:g}s", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            return TeacherError(
                "connection", self.scrub(f"connection failed ({detail})"[:500]), retryable=True
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        return TeacherError("unexpected", self.scrub(f"{type(exc).__name__}: {exc}"[:500]))

    def _status_error(self, exc: Any) -> TeacherError:
        status = int(exc.status_code)
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body) if isinstance(body, dict) else {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = str(error.get("code") or "")
        message = self.scrub(str(error.get("message") or exc.message or "")[:500])
        headers = getattr(exc.response, "headers", None)
        if status == 429:
            if code == "insufficient_quota" or "quota" in message.lower():
                return TeacherError("quota", f"out of quota: {message}", status=status)
            return TeacherError(
                "rate_limit",
                message or "rate limited",
                status=status,
                retryable=True,
                retry_after=parse_retry_after(headers),
            )
        if status in (401, 403):
            hint = (
                f"no API key was given (${self.config.api_key_env} is not set)"
                if self._key_missing
                else f"the endpoint rejected the API key from ${self.config.api_key_env or 'the run'}"
            )
            return TeacherError("auth", f"{hint}: {message}", status=status)
        if status == 404:
            return TeacherError(
                "not_found",
                f"model {self.config.model!r} or route not found at the endpoint: {message}",
                status=status,
            )
        if status in (408, 409, 425) or status >= 500:
            return TeacherError("server_error", message or f"HTTP {status}", status=status, retryable=True)
        return TeacherError("bad_request", message or f"HTTP {status}", status=status)
