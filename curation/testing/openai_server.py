"""A real HTTP server speaking the OpenAI chat-completions protocol, for tests and benchmarks.

An asyncio HTTP/1.1 server with keep-alive (one event loop, `asyncio.Protocol`,
no framework) so that a single process serves hundreds of concurrent requests
with a configurable latency. It injects faults by rate or by schedule:

    rate_limit    429 with Retry-After / retry-after-ms
    server_error  500
    hang          no answer for `hang_seconds` (longer than the client timeout), then close
    malformed     200 with a body that is not valid JSON
    truncated     200 with finish_reason "length" and a cut-off text
    drop          the connection is closed without an answer

plus 401 for a wrong API key (the message echoes the key, like real endpoints do,
so that tests can check the client scrubs it) and 404 for an unknown model.

The Batch API (`/v1/files`, `/v1/batches`) is served too, with parts of a batch
expiring or failing at set rates (`curation.testing.openai_batches`).

Answers are deterministic: a math prompt whose arithmetic it can parse gets the
worked result in ``\\boxed{}``, a prompt asking for code gets a fenced code
block, anything else a canned text naming a hash of the prompt.

Use in-process (`with OpenAICompatServer(...) as server: server.base_url`) or as a
subprocess: ``python -m curation.testing.openai_server --port 0 --latency 0.1``
prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import math
import operator
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curation import aio
from curation.generation.structured import example_instance, schema_in_prompt
from curation.testing.openai_batches import BatchService

FAULT_KINDS: tuple[str, ...] = ("rate_limit", "server_error", "hang", "malformed", "truncated", "drop")

#: A custom answer: (messages, choice index) -> text. Overrides the built-in answers.
Responder = Callable[[list[dict[str, Any]], int], str]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
MAX_BODY = 8_000_000


@dataclass
class RequestLogEntry:
    number: int
    model: str
    outcome: str
    n: int
    prompt_hash: str


@dataclass
class ServerStats:
    """Counts since start (or `reset`). `completions_ok` counts 200 answers with valid content
    (including truncated ones); `chat_requests` every POST to chat/completions."""

    chat_requests: int = 0
    completions_ok: int = 0
    choices_ok: int = 0
    models_requests: int = 0
    connections_opened: int = 0
    #: Choices answered with broken JSON on purpose (`invalid_json_rate`).
    invalid_json: int = 0
    outcomes: Counter = field(default_factory=Counter)
    log: list[RequestLogEntry] = field(default_factory=list)


# -- deterministic answers -------------------------------------------------------------

_ARITH = re.compile(r"[-+*/()\d.\s]*\d[-+*/()\d.\s]*")
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _safe_arith(expression: str) -> float | None:
    """Evaluate + - * / on numbers by walking the AST (never eval)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = walk(node.left), walk(node.right)
            if abs(left) > 1e12 or abs(right) > 1e12:
                raise ValueError("too large")
            return _BINOPS[type(node.op)](left, right)
        raise ValueError("unsupported")

    try:
        return walk(tree.body)
    except (ValueError, ZeroDivisionError, TypeError):
        return None


def _format_number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return f"{value:.6g}"


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def default_answer(messages: list[dict[str, Any]], index: int) -> str:
    """The server's deterministic answer to a conversation (choice `index`)."""
    text = _last_user_text(messages)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    for candidate in sorted(_ARITH.findall(text), key=len, reverse=True):
        if not re.search(r"\d\s*[-+*/]\s*[-(\d]", candidate):
            continue
        value = _safe_arith(candidate.strip().rstrip("."))
        if value is not None:
            expression = " ".join(candidate.split()).rstrip(".")
            result = _format_number(value)
            return (
                f"We evaluate {expression} step by step, respecting the order of operations.\n"
                f"The result is {result}.\n\n\\boxed{{{result}}}"
            )
    if "def " in text or "python" in text.lower() or "function" in text.lower():
        names = re.findall(r"def\s+([A-Za-z_]\w*)\s*\(", text)
        name = names[-1] if names else "solution"
        return (
            f"Here is an implementation (answer {digest}, choice {index}).\n\n"
            f"```python\ndef {name}(*args):\n    return None\n```\n"
        )
    return (
        f"This is a deterministic test answer {digest} (choice {index}). "
        "It restates the request and answers it plainly in a few short sentences. "
        "Nothing in it depends on time or chance."
    )


def _words(text: str) -> int:
    return len(text.split())


# -- the HTTP server ---------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    def __init__(self, server: OpenAICompatServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)
        self.server.stats.connections_opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Parse one complete request from the buffer, if there is one, and handle it."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > 65536:
                self._respond_now(413, {"error": {"message": "headers too large"}}, close=True)
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._respond_now(400, {"error": {"message": "bad request line"}}, close=True)
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._respond_now(411, {"error": {"message": "send Content-Length"}}, close=True)
            return
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            self._respond_now(413, {"error": {"message": "body too large"}}, close=True)
            return
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        keep_alive = headers.get("connection", "").lower() != "close"
        self.busy = True
        task = self.server._loop.create_task(self._handle(method, target, headers, body, keep_alive))
        self.server._tasks.add(task)
        task.add_done_callback(self.server._tasks.discard)

    async def _handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep: bool
    ) -> None:
        try:
            action = await self.server._dispatch(method, target.split("?", 1)[0], headers, body)
        except asyncio.CancelledError:
            self._abort()
            raise
        except Exception as exc:  # noqa: BLE001 - a test server answers 500 rather than dying
            action = ("respond", 500, {"error": {"message": f"test server error: {exc}"}}, {})
        if self.closed:
            return
        if action[0] == "drop":
            self._abort()
            return
        if action[0] == "raw":
            _, status, payload, extra = action
            self._write(status, payload, extra, keep)
        else:
            _, status, payload, extra = action
            self._write(status, json.dumps(payload).encode(), extra, keep)
        self.busy = False
        if keep and not self.closed:
            self._next()

    def _respond_now(self, status: int, payload: dict[str, Any], close: bool) -> None:
        self._write(status, json.dumps(payload).encode(), {}, keep=not close)

    def _write(self, status: int, body: bytes, extra: dict[str, str], keep: bool) -> None:
        if self.transport is None or self.closed:
            return
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        head.append("content-type: application/json")
        head.append(f"content-length: {len(body)}")
        head.extend(f"{name}: {value}" for name, value in extra.items())
        head.append("connection: keep-alive" if keep else "connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        if not keep:
            self.transport.close()

    def _abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


class OpenAICompatServer:
    """The server. Configure it, then `start()` (background thread) or use it as a context manager.

    `faults` maps fault kinds to rates (drawn from a seeded generator in arrival
    order); `schedule` maps 0-based chat-request numbers to a fault kind (or
    "ok") and takes precedence. `api_key=None` accepts any key.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        faults: dict[str, float] | None = None,
        schedule: dict[int, str] | None = None,
        seed: int = 0,
        api_key: str | None = None,
        models: tuple[str, ...] = ("test-model",),
        retry_after: float = 0.05,
        hang_seconds: float = 30.0,
        responder: Responder | None = None,
        record_log: bool = True,
        batch_expire_rate: float = 0.0,
        batch_fail_rate: float = 0.0,
        batch_seconds: float = 0.0,
        json_schema_support: bool = True,
        invalid_json_rate: float = 0.0,
    ) -> None:
        unknown = set(faults or {}) - set(FAULT_KINDS)
        unknown |= set((schedule or {}).values()) - set(FAULT_KINDS) - {"ok"}
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)} (known: {', '.join(FAULT_KINDS)})")
        if sum((faults or {}).values()) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        self.host = host
        self.port = port
        self.latency = latency
        self.faults = dict(faults or {})
        self.schedule = dict(schedule or {})
        self.api_key = api_key
        self.models = tuple(models)
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.responder = responder
        self.record_log = record_log
        #: Honour `response_format` json_schema (else a 400, as from an endpoint without it).
        self.json_schema_support = json_schema_support
        #: Share of structured answers (schema in response_format or in the prompt) sent as broken JSON.
        self.invalid_json_rate = invalid_json_rate
        #: Hold every chat answer until this many chat requests wait at once; then the gate
        #: stays open (0: no gate). A test that must see a second client process at work
        #: then does not depend on how fast that process starts on a loaded machine.
        self.hold_until_concurrent = 0
        self._held = 0
        self._gate_open = False
        self.stats = ServerStats()
        self.batch = BatchService(
            self._answer_batch_request,
            expire_rate=batch_expire_rate,
            fail_rate=batch_fail_rate,
            seed=seed,
            batch_seconds=batch_seconds,
        )
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def serve(self) -> None:
        """Listen and serve until `stop()` (or the task is cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=2048, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._server.close()
            for connection in list(self._connections):
                connection._abort()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.batch.close()

    def start(self) -> OpenAICompatServer:
        """Serve from a daemon thread; returns once the port is bound."""
        self._thread = threading.Thread(target=lambda: aio.run(self.serve()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        if self._stopped is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def idle(self) -> bool:
        """No open connection and no request being handled: every request a client sent
        has been counted (a test waits for this after killing its client)."""
        return not self._connections and not self._tasks

    def reset(self) -> None:
        with self._lock:
            self.stats = ServerStats()

    def configure(self, **changes: Any) -> None:
        """Change latency/faults/schedule/api_key/... between test phases."""
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self, name) or name.startswith("_"):
                    raise AttributeError(name)
                setattr(self, name, value)

    async def _wait_for_company(self, limit_seconds: float = 120.0) -> None:
        """Wait until `hold_until_concurrent` chat requests are held (or `limit_seconds`)."""
        self._held += 1
        try:
            deadline = time.monotonic() + limit_seconds
            while self._held < self.hold_until_concurrent and not self._gate_open:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            self._gate_open = True
        finally:
            self._held -= 1

    # -- requests --

    def _pick_fault(self, number: int) -> str | None:
        with self._lock:
            if number in self.schedule:
                kind = self.schedule[number]
                return None if kind == "ok" else kind
            draw = self._rng.random()
            total = 0.0
            for kind in FAULT_KINDS:
                total += self.faults.get(kind, 0.0)
                if draw < total:
                    return kind
        return None

    def _count(
        self, outcome: str, model: str = "", n: int = 0, prompt_hash: str = "", number: int = -1
    ) -> None:
        with self._lock:
            self.stats.outcomes[outcome] += 1
            if self.record_log and number >= 0:
                self.stats.log.append(RequestLogEntry(number, model, outcome, n, prompt_hash))

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple:
        path = path.rstrip("/")
        if path.endswith("/models") and method == "GET":
            with self._lock:
                self.stats.models_requests += 1
            denied = self._check_key(headers)
            if denied:
                return denied
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.models]
            return ("respond", 200, {"object": "list", "data": data}, {})
        if "/files" in path or "/batches" in path:
            denied = self._check_key(headers)
            batch_action = denied or await self.batch.dispatch(method, path, headers, body)
            if batch_action is not None:
                return batch_action
        if not path.endswith("/chat/completions"):
            return (
                "respond",
                404,
                {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}},
                {},
            )
        if method != "POST":
            return ("respond", 405, {"error": {"message": "use POST"}}, {})
        with self._lock:
            number = self.stats.chat_requests
            self.stats.chat_requests += 1
        try:
            request = json.loads(body or b"{}")
            messages = request["messages"]
            model = str(request.get("model", ""))
            n = int(request.get("n") or 1)
        except (ValueError, KeyError, TypeError):
            self._count("bad_request", number=number)
            return (
                "respond",
                400,
                {"error": {"message": "invalid request body", "type": "invalid_request_error"}},
                {},
            )
        # Only the request log uses the hash (the benchmark server runs without one).
        prompt_hash = (
            hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
            if self.record_log
            else ""
        )
        denied = self._check_key(headers)
        if denied:
            self._count("unauthorized", model, n, prompt_hash, number)
            return denied
        if model not in self.models:
            self._count("unknown_model", model, n, prompt_hash, number)
            message = f"The model `{model}` does not exist or you do not have access to it."
            return (
                "respond",
                404,
                {"error": {"message": message, "type": "invalid_request_error", "code": "model_not_found"}},
                {},
            )
        fault = self._pick_fault(number)
        if fault == "rate_limit":
            self._count("rate_limit", model, n, prompt_hash, number)
            headers_out = {
                "retry-after": str(max(0, math.ceil(self.retry_after))),
                "retry-after-ms": str(int(self.retry_after * 1000)),
            }
            error = {
                "message": "Rate limit reached, please retry later.",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
            return ("respond", 429, {"error": error}, headers_out)
        if fault == "hang":
            self._count("hang", model, n, prompt_hash, number)
            await asyncio.sleep(self.hang_seconds)
            return ("drop",)
        if self.hold_until_concurrent and not self._gate_open:
            await self._wait_for_company()
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if fault == "server_error":
            self._count("server_error", model, n, prompt_hash, number)
            return (
                "respond",
                500,
                {"error": {"message": "The server had an error.", "type": "server_error"}},
                {},
            )
        if fault == "drop":
            self._count("drop", model, n, prompt_hash, number)
            return ("drop",)
        if fault == "malformed":
            self._count("malformed", model, n, prompt_hash, number)
            return (
                "raw",
                200,
                b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess',
                {},
            )
        schema = self._requested_schema(request, messages)
        if schema == "unsupported":
            self._count("bad_request", model, n, prompt_hash, number)
            message = "response_format of type json_schema is not supported by this server"
            return ("respond", 400, {"error": {"message": message, "type": "invalid_request_error"}}, {})
        payload = self.completion_payload(
            request, messages, model, n, truncated=fault == "truncated", schema=schema
        )
        self._count("truncated" if fault == "truncated" else "ok", model, n, prompt_hash, number)
        with self._lock:
            self.stats.completions_ok += 1
            self.stats.choices_ok += n
        payload["id"] = f"chatcmpl-{number}"
        return ("respond", 200, payload, {})

    def completion_payload(
        self,
        request: dict[str, Any],
        messages: list[dict[str, Any]],
        model: str,
        n: int,
        *,
        truncated: bool,
        schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The chat.completion body answering `request` (usage in words, as everywhere here);
        with `schema`, each answer is that schema's JSON (see `_structured_answer`)."""
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens")
        choices = []
        completion_tokens = 0
        for index in range(n):
            text = (self.responder or default_answer)(messages, index)
            if schema is not None:
                text = self._structured_answer(schema, text)
            finish = "stop"
            words = text.split(" ")
            limit = int(max_tokens) if max_tokens else None
            if truncated:
                limit = max(1, min(limit or len(words), len(words) // 2))
            if limit is not None and _words(text) > limit:
                text = " ".join(words[:limit])
                finish = "length"
            completion_tokens += _words(text)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
        prompt_tokens = sum(_words(str(m.get("content", ""))) for m in messages)
        return {
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _answer_batch_request(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """A batch line's answer, as chat/completions would give it (None: unknown model, or
        a json_schema response_format this server is set not to support)."""
        messages = body.get("messages")
        model = str(body.get("model", ""))
        if not isinstance(messages, list) or model not in self.models:
            return None
        schema = self._requested_schema(body, messages)
        if schema == "unsupported":
            return None
        return self.completion_payload(
            body, messages, model, int(body.get("n") or 1), truncated=False, schema=schema
        )

    def _requested_schema(self, request: dict[str, Any], messages: list[dict[str, Any]]) -> Any:
        """The JSON schema asked for (in response_format, or in the prompt), None, or
        "unsupported" when response_format json_schema is switched off."""
        wanted = request.get("response_format")
        if isinstance(wanted, dict) and wanted.get("type") == "json_schema":
            if not self.json_schema_support:
                return "unsupported"
            schema = (wanted.get("json_schema") or {}).get("schema")
            return schema if isinstance(schema, dict) else {"type": "object"}
        return schema_in_prompt(_last_user_text(messages))

    def _structured_answer(self, schema: dict[str, Any], text: str) -> str:
        """A JSON object matching `schema` (fields named answer/solution/... take the plain
        answer's parts), or, at `invalid_json_rate`, the same JSON cut in half."""
        boxed = re.search(r"\\boxed\{([^}]*)\}", text)
        values = {
            "solution": text,
            "response": text,
            "reasoning": text,
            "answer": boxed.group(1) if boxed else text,
        }
        encoded = json.dumps(example_instance(schema, values), ensure_ascii=False)
        with self._lock:
            broken = self._rng.random() < self.invalid_json_rate
            if broken:
                self.stats.invalid_json += 1
        return encoded[: len(encoded) // 2] if broken else encoded

    def _check_key(self, headers: dict[str, str]) -> tuple | None:
        if self.api_key is None:
            return None
        auth = headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else auth
        if given == self.api_key:
            return None
        # Like real endpoints, the message echoes the key it was given.
        message = f"Incorrect API key provided: {given}. You can find your API key in your account settings."
        return (
            "respond",
            401,
            {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}},
            {},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--retry-after", type=float, default=0.05)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-expire", type=float, default=0.0, help="share of batch requests that expire")
    parser.add_argument("--batch-fail", type=float, default=0.0, help="share of batch requests that fail")
    parser.add_argument("--batch-seconds", type=float, default=0.0, help="seconds a batch takes")
    args = parser.parse_args(argv)
    faults = {}
    for spec in args.fault:
        kind, _, rate = spec.partition("=")
        faults[kind] = float(rate)
    server = OpenAICompatServer(
        host=args.host,
        port=args.port,
        latency=args.latency,
        faults=faults,
        seed=args.seed,
        api_key=args.api_key,
        models=tuple(args.model or ("test-model",)),
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
        record_log=False,
        batch_expire_rate=args.batch_expire,
        batch_fail_rate=args.batch_fail,
        batch_seconds=args.batch_seconds,
    )

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server._ready.is_set():
            await asyncio.sleep(0.01)
        print(f"PORT {server.port}", flush=True)
        await task

    try:
        aio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
