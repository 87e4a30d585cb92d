"""A lean HTTP/1.1 keep-alive transport for the OpenAI client.

Why: the default httpx transport spends about a millisecond of CPU per request
(its connection pool scans every connection on each request, plus anyio and h11
layers), which caps one client process at a few hundred requests per second —
a 256-way generation run would be CPU-bound long before the endpoint is. This
transport speaks plain HTTP/1.1 over `asyncio.Protocol` connections (TLS via the
ssl module), reuses idle connections per origin in O(1), and reads each response
whole (the engine never streams). It plugs into `openai.AsyncOpenAI` through
`httpx2.AsyncClient(transport=...)`, so the client's request building, auth and
error mapping are unchanged; failures are raised as httpx2 exceptions that the
client maps to APITimeoutError / APIConnectionError as usual.

Not supported (use the default transport): HTTP proxies, HTTP/2, streaming.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict

import httpx2

MAX_HEADER_BYTES = 65_536
MAX_BODY_BYTES = 64 * 1024 * 1024


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _more(self) -> None:
        """Wait for more bytes (or the end of the connection)."""
        if self.closed:
            raise httpx2.RemoteProtocolError("server closed the connection before the response was complete")
        await self._arrival()

    async def _arrival(self) -> None:
        """Until bytes arrive or the connection closes."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def read_response(self, method: str) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
        """(status, reason, headers, body, keep_alive) of the next response."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    raise httpx2.RemoteProtocolError("response headers too large")
                await self._more()
                end = self.buffer.find(b"\r\n\r\n")
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise httpx2.RemoteProtocolError("malformed status line")
            try:
                status = int(parts[1])
            except ValueError:
                raise httpx2.RemoteProtocolError("malformed status code") from None
            if 100 <= status < 200:
                continue
            reason = parts[2] if len(parts) > 2 else b""
            headers: list[tuple[bytes, bytes]] = []
            length: int | None = None
            chunked = False
            keep_alive = parts[0] == b"HTTP/1.1"
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    continue
                name = name.strip()
                value = value.strip()
                headers.append((name, value))
                lower = name.lower()
                if lower == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise httpx2.RemoteProtocolError("malformed content-length") from None
                elif lower == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif lower == b"connection":
                    token = value.lower()
                    if b"close" in token:
                        keep_alive = False
                    elif b"keep-alive" in token:
                        keep_alive = True
            break
        if method == "HEAD" or status in (204, 304):
            return status, reason, headers, b"", keep_alive
        if chunked:
            body = await self._read_chunked()
        elif length is not None:
            if length > MAX_BODY_BYTES:
                raise httpx2.RemoteProtocolError("response body too large")
            while len(self.buffer) < length:
                await self._more()
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
        else:
            while not self.closed:
                if len(self.buffer) > MAX_BODY_BYTES:
                    raise httpx2.RemoteProtocolError("response body too large")
                await self._arrival()
            body = bytes(self.buffer)
            self.buffer.clear()
            keep_alive = False
        return status, reason, headers, body, keep_alive

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            end = self.buffer.find(b"\r\n")
            while end < 0:
                await self._more()
                end = self.buffer.find(b"\r\n")
            size_text = bytes(self.buffer[:end]).split(b";", 1)[0].strip()
            del self.buffer[: end + 2]
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx2.RemoteProtocolError("malformed chunk size") from None
            if size == 0:
                # Trailers (usually none) end with an empty line.
                while True:
                    end = self.buffer.find(b"\r\n")
                    while end < 0:
                        await self._more()
                        end = self.buffer.find(b"\r\n")
                    line = bytes(self.buffer[:end])
                    del self.buffer[: end + 2]
                    if not line:
                        return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise httpx2.RemoteProtocolError("response body too large")
            while len(self.buffer) < size + 2:
                await self._more()
            body.extend(self.buffer[:size])
            del self.buffer[: size + 2]


class LeanAsyncTransport(httpx2.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 for many concurrent non-streaming requests (see module docstring)."""

    def __init__(self, *, max_idle_per_origin: int = 1024, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._max_idle = max_idle_per_origin
        self._ssl_context = ssl_context
        self._all: set[_Connection] = set()

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = ssl.create_default_context()
            try:
                import certifi  # optional: its CA bundle, when installed, else the system's

                context.load_verify_locations(certifi.where())
            except (ImportError, OSError):
                pass
            self._ssl_context = context
        return self._ssl_context

    async def _connect(self, scheme: str, host: str, port: int, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=self._ssl() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx2.ConnectError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        self._all.add(protocol)
        return protocol

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"unsupported scheme {scheme!r}")
        host = url.host
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        timeouts = request.extensions.get("timeout", {})
        try:
            body = request.content  # read at construction for a bytes body (the usual case)
        except httpx2.RequestNotRead:
            body = await request.aread()
        head = [request.method.encode() + b" " + url.raw_path + b" HTTP/1.1"]
        has_length = False
        for name, value in request.headers.raw:
            lower = name.lower()
            if lower == b"content-length":
                has_length = True
            elif lower == b"transfer-encoding":
                continue
            head.append(name + b": " + value)
        if body and not has_length:
            head.append(b"content-length: " + str(len(body)).encode())
        payload = b"\r\n".join(head) + b"\r\n\r\n" + body

        idle = self._idle[key]
        connection = None
        while idle:
            candidate = idle.pop()
            if not candidate.closed and not candidate.buffer:
                connection = candidate
                break
            candidate.close()
            self._all.discard(candidate)
        if connection is None:
            connection = await self._connect(scheme, host, port, timeouts.get("connect"))
        reusable = False
        try:
            connection.transport.write(payload)  # type: ignore[union-attr]
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    status, reason, headers, content, keep_alive = await connection.read_response(
                        request.method
                    )
            except TimeoutError:
                raise httpx2.ReadTimeout("timed out waiting for the response") from None
            except OSError as exc:
                raise httpx2.ReadError(str(exc)) from None
            reusable = keep_alive and not connection.closed
        finally:
            if reusable and len(idle) < self._max_idle:
                idle.append(connection)
            else:
                connection.close()
                self._all.discard(connection)
        # stream= and an immediate read: the body is whole, so the response counts as
        # read and the client's read of it costs nothing; content= would also re-derive
        # the content headers, which costs more than the rest of building the response.
        response = httpx2.Response(
            status_code=status,
            headers=headers,
            stream=httpx2.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )
        response.read()
        return response

    async def aclose(self) -> None:
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        self._idle.clear()
