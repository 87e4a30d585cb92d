"""The Batch API of the OpenAI-compatible test server: `/v1/files` and `/v1/batches`.

As OpenAI's: a JSONL input file is uploaded (`purpose=batch`), a batch is created on
it, processed in the background (validating -> in_progress -> finalizing -> completed,
or expired), and ends with an output file (one line per answered request) and an
error file (one line per failed or expired request). Parts of a batch expire or fail
at configurable rates, drawn per (seed, custom_id, attempt at that custom_id), so a
resubmitted request gets a fresh draw and a rerun of a test draws the same.

`BatchLedger` counts what was processed and what was paid (answered) per custom_id,
so a test can prove that no request was paid twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The answer to one request body: its chat.completion payload, or None if refused (unknown model).
Answerer = Callable[[dict[str, Any]], dict[str, Any] | None]
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_STEPS = 10


@dataclass
class BatchLedger:
    """What the batch endpoint did since start: per custom_id, requests processed
    (every attempt) and paid (answered); totals of tokens paid."""

    files_uploaded: int = 0
    batches_created: int = 0
    processed: Counter = field(default_factory=Counter)
    paid: Counter = field(default_factory=Counter)
    expired: int = 0
    failed: int = 0
    paid_prompt_tokens: int = 0
    paid_completion_tokens: int = 0

    def paid_twice(self) -> list[str]:
        return sorted(custom_id for custom_id, count in self.paid.items() if count > 1)


def _error(status: int, message: str) -> tuple:
    return ("respond", status, {"error": {"message": message, "type": "invalid_request_error"}}, {})


def _multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (enough for the SDK's file uploads)."""
    boundary = content_type.partition("boundary=")[2].strip().strip('"')
    if not boundary:
        return {}
    fields: dict[str, bytes] = {}
    for part in body.split(b"--" + boundary.encode()):
        head, separator, value = part.partition(b"\r\n\r\n")
        if not separator:
            continue
        disposition = head.decode("latin-1")
        name = disposition.partition('name="')[2].partition('"')[0]
        if name:
            fields[name] = value[:-2] if value.endswith(b"\r\n") else value
    return fields


class BatchService:
    """Files and batches of one test server (runs on the server's event loop)."""

    def __init__(
        self,
        answer: Answerer,
        *,
        expire_rate: float = 0.0,
        fail_rate: float = 0.0,
        seed: int = 0,
        batch_seconds: float = 0.0,
    ) -> None:
        if expire_rate < 0 or fail_rate < 0 or expire_rate + fail_rate > 1.0:
            raise ValueError("batch expire and fail rates must be >= 0 and add up to at most 1")
        self.answer = answer
        self.expire_rate = expire_rate
        self.fail_rate = fail_rate
        self.seed = seed
        self.batch_seconds = batch_seconds
        self.ledger = BatchLedger()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._attempts: Counter = Counter()
        self._tasks: set[asyncio.Task] = set()

    # -- routes --

    async def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple | None:
        """The response to a files/batches request, or None if `path` is not one."""
        parts = path.split("/v1/", 1)[-1].strip("/").split("/")
        if parts[0] == "files":
            return self._files(method, parts[1:], headers, body)
        if parts[0] == "batches":
            return self._batches(method, parts[1:], body)
        return None

    def _files(self, method: str, rest: list[str], headers: dict[str, str], body: bytes) -> tuple:
        if method == "POST" and not rest:
            fields = _multipart_fields(headers.get("content-type", ""), body)
            if "file" not in fields:
                return _error(400, "upload a file in the 'file' field")
            self.ledger.files_uploaded += 1
            return (
                "respond",
                200,
                self._add_file(fields["file"], fields.get("purpose", b"batch").decode()),
                {},
            )
        if not rest or rest[0] not in self.files:
            return _error(404, f"no such file: {rest[0] if rest else ''}")
        if method == "GET" and len(rest) == 2 and rest[1] == "content":
            return ("raw", 200, self.contents[rest[0]], {})
        if method == "GET" and len(rest) == 1:
            return ("respond", 200, self.files[rest[0]], {})
        return _error(405, f"{method} not allowed here")

    def _batches(self, method: str, rest: list[str], body: bytes) -> tuple:
        if not rest:
            if method == "POST":
                return self._create(body)
            if method == "GET":
                data = list(self.batches.values())
                return ("respond", 200, {"object": "list", "data": data, "has_more": False}, {})
            return _error(405, f"{method} not allowed here")
        batch = self.batches.get(rest[0])
        if batch is None:
            return _error(404, f"no such batch: {rest[0]}")
        if method == "GET" and len(rest) == 1:
            return ("respond", 200, batch, {})
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch["status"] not in TERMINAL:
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(time.time())
            return ("respond", 200, batch, {})
        return _error(405, f"{method} not allowed here")

    # -- state --

    def _add_file(self, content: bytes, purpose: str) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1:06d}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl",
            "purpose": purpose,
            "status": "processed",
        }
        self.contents[file_id] = content
        return self.files[file_id]

    def _create(self, body: bytes) -> tuple:
        try:
            request = json.loads(body or b"{}")
            input_file_id = request["input_file_id"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "invalid request body")
        if input_file_id not in self.contents:
            return _error(400, f"no such input file: {input_file_id}")
        self.ledger.batches_created += 1
        batch_id = f"batch_{len(self.batches) + 1:06d}"
        now = int(time.time())
        lines = [line for line in self.contents[input_file_id].splitlines() if line.strip()]
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request.get("endpoint", "/v1/chat/completions"),
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": request.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "expires_at": now + 86400,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": request.get("metadata") or None,
        }
        self.batches[batch_id] = batch
        task = asyncio.get_running_loop().create_task(self._process(batch, lines))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ("respond", 200, batch, {})

    def _draw(self, custom_id: str) -> str:
        attempt = self._attempts[custom_id]
        self._attempts[custom_id] += 1
        digest = hashlib.sha256(f"{self.seed}:{custom_id}:{attempt}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw < self.expire_rate:
            return "expired"
        if draw < self.expire_rate + self.fail_rate:
            return "failed"
        return "ok"

    async def _process(self, batch: dict[str, Any], lines: list[bytes]) -> None:
        batch["status"] = "in_progress"
        batch["in_progress_at"] = int(time.time())
        output: list[str] = []
        errors: list[str] = []
        expired = False
        step = max(1, -(-len(lines) // _STEPS))
        for start in range(0, len(lines), step):
            if self.batch_seconds > 0:
                await asyncio.sleep(self.batch_seconds / _STEPS)
            if batch["status"] == "cancelling":
                break
            for raw in lines[start : start + step]:
                outcome, line = self._run_line(batch["id"], raw)
                expired = expired or outcome == "expired"
                (output if outcome == "ok" else errors).append(json.dumps(line))
                batch["request_counts"]["completed" if outcome == "ok" else "failed"] += 1
        batch["status"] = "finalizing"
        batch["finalizing_at"] = int(time.time())
        if output:
            batch["output_file_id"] = self._add_file(("\n".join(output) + "\n").encode(), "batch_output")[
                "id"
            ]
        if errors:
            batch["error_file_id"] = self._add_file(("\n".join(errors) + "\n").encode(), "batch_output")["id"]
        final = "cancelled" if batch["status"] == "cancelling" or batch.get("cancelling_at") else None
        final = final or ("expired" if expired else "completed")
        batch["status"] = final
        batch[f"{final}_at"] = int(time.time())

    def _run_line(self, batch_id: str, raw: bytes) -> tuple[str, dict[str, Any]]:
        try:
            line = json.loads(raw)
            custom_id = str(line["custom_id"])
            body = line["body"]
        except (ValueError, KeyError, TypeError):
            return "failed", {
                "id": None,
                "custom_id": None,
                "response": None,
                "error": {"code": "invalid_line"},
            }
        self.ledger.processed[custom_id] += 1
        request_id = f"{batch_id}_req_{self.ledger.processed.total()}"
        outcome = self._draw(custom_id)
        if outcome == "expired":
            self.ledger.expired += 1
            error = {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion window expired.",
            }
            return outcome, {"id": request_id, "custom_id": custom_id, "response": None, "error": error}
        payload = self.answer(body) if outcome == "ok" else None
        if payload is None:
            self.ledger.failed += 1
            response = {
                "status_code": 500,
                "request_id": request_id,
                "body": {"error": {"message": "The server had an error.", "type": "server_error"}},
            }
            return "failed", {"id": request_id, "custom_id": custom_id, "response": response, "error": None}
        self.ledger.paid[custom_id] += 1
        self.ledger.paid_prompt_tokens += payload["usage"]["prompt_tokens"]
        self.ledger.paid_completion_tokens += payload["usage"]["completion_tokens"]
        payload["id"] = f"chatcmpl-{request_id}"
        response = {"status_code": 200, "request_id": request_id, "body": payload}
        return "ok", {"id": request_id, "custom_id": custom_id, "response": response, "error": None}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
