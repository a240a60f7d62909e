"""A lean HTTP/1.1 client for execution's REST calls: a small pool of kept-alive asyncio Protocol
connections to one origin, one request in flight per connection.

The order path is what it is shaped for: the request is built as one bytes object from a header block
encoded once at construction (auth headers included), written with one ``transport.write`` on a
TCP_NODELAY socket, and the reply is parsed incrementally in ``data_received``. A connection is
reused only after a complete, well-formed response that did not ask to close; after any error,
timeout or cancellation it is aborted, never reused.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

from common.enums import LinkFailure
from common.netfail import classify_os_error, os_detail

MAX_HEAD_BYTES = 64 * 1024  # status line + headers, and separately chunk-size lines + trailers
_PATH_SAFE = "/:@-._~!$&'()*+,;="
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_BODYLESS_STATUSES = frozenset((204, 304))
_METHODS_WITH_BODY = frozenset(("POST", "PUT", "PATCH"))


class HttpError(Exception):
    """A request that failed without a usable HTTP response; see the subclasses. ``link_failure``
    classifies it, ``detail`` says what the operating system said (both for the operator)."""

    link_failure = LinkFailure.CONNECTION_LOST

    def __init__(self, message: str, link_failure: LinkFailure | None = None, detail: str = "") -> None:
        super().__init__(message)
        if link_failure is not None:
            self.link_failure = link_failure
        self.detail = detail or message


class HttpTimeout(HttpError):
    """No complete response in time: the request may or may not have taken effect."""

    link_failure = LinkFailure.TIMEOUT


class HttpConnectionError(HttpError):
    """Connecting failed, or the connection broke mid-request: the outcome is unknown."""


class HttpProtocolError(HttpConnectionError):
    """The peer sent something that is not a valid HTTP/1.1 response."""

    link_failure = LinkFailure.PROTOCOL_ERROR


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes


def encode_query(params: Mapping[str, str]) -> str:
    """``k=v&...`` with every reserved character percent-encoded (space as %20, '+' as %2B)."""
    return "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in params.items())


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


# ---- response parsing -------------------------------------------------------------------------

_HEAD, _FIXED, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _UNTIL_CLOSE, _DONE = range(7)


class ResponseParser:
    """Incremental parser of one response. ``feed`` returns True once the response is complete."""

    __slots__ = ("_buf", "_head_request", "_remaining", "_state", "body", "headers", "keep_alive", "status")

    def __init__(self, head_request: bool = False) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._head_request = head_request
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.keep_alive = False

    def feed(self, data: bytes) -> bool:
        if self._state == _DONE:
            self.keep_alive = False  # bytes beyond the response: the stream can no longer be trusted
            return True
        self._buf += data
        while True:
            state = self._state
            buf = self._buf
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise HttpProtocolError("response headers exceed 64 KiB")
                    return False
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._parse_head(head)
            elif state == _FIXED:
                if len(buf) < self._remaining:
                    return False
                self.body += buf[: self._remaining]
                del buf[: self._remaining]
                self._state = _DONE
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise HttpProtocolError("chunk-size line too long")
                    return False
                size = _chunk_size(bytes(buf[:end]))
                del buf[: end + 2]
                if size:
                    self._remaining, self._state = size, _CHUNK_DATA
                else:
                    self._state = _TRAILERS
            elif state == _CHUNK_DATA:
                if len(buf) < self._remaining + 2:
                    return False
                if buf[self._remaining : self._remaining + 2] != b"\r\n":
                    raise HttpProtocolError("chunk data not followed by CRLF")
                self.body += buf[: self._remaining]
                del buf[: self._remaining + 2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    self._state = _DONE
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > MAX_HEAD_BYTES:
                            raise HttpProtocolError("chunked trailers exceed 64 KiB")
                        return False
                    del buf[: end + 4]  # trailers carry nothing we use
                    self._state = _DONE
            elif state == _UNTIL_CLOSE:
                self.body += buf
                buf.clear()
                return False
            else:  # _DONE
                if buf:
                    self.keep_alive = False
                return True

    def eof(self) -> bool:
        """The peer closed: True if that completes the response (a body delimited by close)."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            return True
        return self._state == _DONE

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise HttpProtocolError("malformed status line (not an HTTP/1.x response)")
        code = parts[1]
        if len(code) != 3 or not code.isdigit():
            raise HttpProtocolError("malformed status code in the status line")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise HttpProtocolError("malformed header line in the response")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            if key in headers:
                if key == "content-length" and headers[key] != text:
                    raise HttpProtocolError("conflicting Content-Length headers")
                if key != "content-length":
                    headers[key] = f"{headers[key]}, {text}"
            else:
                headers[key] = text
        if 100 <= status < 200:
            if status == 101:
                raise HttpProtocolError("unexpected 101 Switching Protocols")
            return  # interim response: the real one follows, state stays _HEAD
        self.status, self.headers = status, headers
        connection = _tokens(headers.get("connection"))
        if parts[0] == b"HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        if self._head_request or status in _BODYLESS_STATUSES:
            self._state = _DONE
        elif "transfer-encoding" in headers:
            codings = [t.strip().lower() for t in headers["transfer-encoding"].split(",")]
            if codings[-1] == "chunked":
                self._state = _CHUNK_SIZE
            else:
                self._state, self.keep_alive = _UNTIL_CLOSE, False
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise HttpProtocolError("invalid Content-Length in the response")
            self._remaining = int(length)
            self._state = _FIXED if self._remaining else _DONE
        else:
            self._state, self.keep_alive = _UNTIL_CLOSE, False


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or not _HEX_DIGITS.issuperset(digits):
        raise HttpProtocolError("malformed chunk-size line in a chunked response")
    return int(digits, 16)


# ---- one connection ---------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, forget: Callable[[_Connection], None]) -> None:
        self._loop = loop
        self._forget = forget
        self._transport: asyncio.Transport | None = None
        self._parser: ResponseParser | None = None
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self.reusable = False
        self.idle_since = 0.0

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not a TCP socket (e.g. a Unix socket in a test double)
                pass
        self.reusable = True

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # nothing asked for: the stream is out of step
            self.abort()
            return
        try:
            done = parser.feed(data)
        except HttpProtocolError as exc:
            self._fail(exc)
            return
        if done:
            self._finish(parser)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._forget(self)
        parser = self._parser
        if parser is not None:
            if parser.eof():
                parser.keep_alive = False
                self._finish(parser)
            else:
                self._fail(HttpConnectionError("connection closed before the response was complete"))

    # request side

    async def roundtrip(
        self, data: bytes, head_request: bool, on_send: Callable[[], None] | None
    ) -> HttpResponse:
        return await self.start(data, head_request, on_send)

    def start(
        self, data: bytes, head_request: bool, on_send: Callable[[], None] | None
    ) -> asyncio.Future[HttpResponse]:
        """Write the request now; the future resolves to its response."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise HttpConnectionError("connection already closed")
        self.reusable = False  # until a complete response says otherwise
        self._parser = ResponseParser(head_request)
        waiter = self._waiter = self._loop.create_future()
        if on_send is not None:
            on_send()
        transport.write(data)
        return waiter

    def expire(self, timeout_s: float) -> None:
        """No complete response in time: the request fails, the connection is dropped."""
        if self._waiter is not None:
            self._fail(
                HttpTimeout(
                    f"no complete response within {timeout_s}s",
                    detail=f"no complete response within {timeout_s:g}s",
                )
            )

    def _finish(self, parser: ResponseParser) -> None:
        self._parser = None
        waiter, self._waiter = self._waiter, None
        self.reusable = parser.keep_alive and self._transport is not None and not self._transport.is_closing()
        if not self.reusable:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(HttpResponse(parser.status, parser.headers, bytes(parser.body)))

    def _fail(self, exc: HttpError) -> None:
        self._parser = None
        self.abort()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    @property
    def usable(self) -> bool:
        return self.reusable and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        """Orderly close (after a complete response)."""
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop at once, unsent data and all (after an error, a timeout or a cancellation)."""
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()


# ---- the pool ---------------------------------------------------------------------------------


class _Slots:
    """At most ``n`` requests at once; waiters are served first come, first served. Unlike an
    asyncio.Semaphore, a free slot can be taken without awaiting (``try_take``)."""

    def __init__(self, n: int) -> None:
        self.free = n
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # resolved by release(): the slot is handed over
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over, then cancelled before it could be used
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


class Http11Pool:
    """Kept-alive HTTP/1.1 connections to the origin of ``base_url`` (http or https).

    ``headers`` are sent with every request (encoded once here). At most ``max_connections`` are
    open; a request that finds all busy opens a new one up to that limit, then waits for one to be
    free (the wait counts against its timeout). Idle connections older than ``idle_s`` are dropped
    rather than reused, to stay clear of the server closing them under a request.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        max_connections: int = 32,
        idle_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("base_url must be an absolute http:// or https:// URL")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = url.hostname
        self._tls = url.scheme == "https"
        default_port = 443 if self._tls else 80
        self._port = url.port or default_port
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._prefix = url.path.rstrip("/")
        host = f"[{self._host}]" if ":" in self._host else self._host
        host_header = host if self._port == default_port else f"{host}:{self._port}"
        lines = [f"Host: {host_header}"]
        for name, value in headers.items():
            if any(c in f"{name}{value}" for c in "\r\n\0") or ":" in name:
                raise ValueError(f"header {name!r} has a forbidden character")  # never the value
            lines.append(f"{name}: {value}")
        lines.append("Connection: keep-alive")
        self._static = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle_s = idle_s
        self._slots = _Slots(max_connections)
        self._idle: list[_Connection] = []  # LIFO: the most recently used (warmest) goes first
        self._all: set[_Connection] = set()
        self._lines: dict[tuple[str, str], bytes] = {}  # request lines of paths without a query
        self.connections_opened = 0  # for tests and metrics: how many TCP connections were made

    def build_request(
        self, method: str, path: str, query: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> bytes:
        if query:
            target = self._prefix + quote(path, safe=_PATH_SAFE) + "?" + encode_query(query)
            start = f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
        else:  # the order POST's line, built once
            start = self._lines.get((method, path)) or self._request_line(method, path)
        if body is not None:
            return b"".join((start, self._static, b"Content-Length: %d\r\n\r\n" % len(body), body))
        if method in _METHODS_WITH_BODY:
            return b"".join((start, self._static, b"Content-Length: 0\r\n\r\n"))
        return b"".join((start, self._static, b"\r\n"))

    def _request_line(self, method: str, path: str) -> bytes:
        line = f"{method} {self._prefix + quote(path, safe=_PATH_SAFE)} HTTP/1.1\r\n".encode("latin-1")
        if len(self._lines) < 64:  # a bound: paths with ids in them (a cancel) are not reused
            self._lines[(method, path)] = line
        return line

    async def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float = 5.0,
        on_send: Callable[[], None] | None = None,
    ) -> HttpResponse:
        """One request, bounded as a whole (waiting for a slot, connecting, sending, reading) by
        ``timeout_s``. ``on_send`` runs right before the request bytes are written."""
        data = self.build_request(method, path, query, body)
        try:
            async with asyncio.timeout(timeout_s):
                await self._slots.take()
                try:
                    conn = self._take_idle() or await self._connect()
                    try:
                        response = await conn.roundtrip(data, method == "HEAD", on_send)
                    except BaseException:
                        conn.abort()
                        raise
                    if conn.usable:
                        conn.idle_since = time.monotonic()
                        self._idle.append(conn)
                    return response
                finally:
                    self._slots.release()
        except TimeoutError:
            raise HttpTimeout(
                f"no complete response within {timeout_s}s",
                detail=f"no complete response within {timeout_s:g}s",
            ) from None
        except ssl.SSLError as exc:
            reason = str(exc.reason or type(exc).__name__)
            raise HttpConnectionError(f"TLS error: {reason}", LinkFailure.TLS_ERROR, reason) from None
        except OSError as exc:
            raise HttpConnectionError(
                f"connection failed: {type(exc).__name__}", classify_os_error(exc), os_detail(exc)
            ) from None

    def can_send_now(self) -> bool:
        """True when ``send_now`` would write at once (a free slot, an idle kept-alive connection)."""
        if self._slots.free <= 0:
            return False
        now = time.monotonic()
        while self._idle:  # the one _take_idle would give, dropping the stale ones as it does
            conn = self._idle[-1]
            if conn.usable and now - conn.idle_since < self._idle_s:
                return True
            self._idle.pop().close()
        return False

    def send_now(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float = 5.0,
        on_send: Callable[[], None] | None = None,
    ) -> asyncio.Future[HttpResponse] | None:
        """The request written before this returns, when a kept-alive connection is idle and a slot
        is free; None (nothing written) when it would have to wait or connect: use ``request``.

        The order path's way out: no task switch and no await between the caller's last check and
        the write. The future fails like ``request`` does (HttpTimeout after ``timeout_s``,
        HttpConnectionError when the connection breaks); the connection then goes back to the pool
        or is aborted, as after ``request``."""
        if not self._slots.try_take():
            return None
        conn = self._take_idle()
        if conn is None:
            self._slots.release()
            return None
        try:
            waiter = conn.start(self.build_request(method, path, query, body), method == "HEAD", on_send)
        except BaseException:
            conn.abort()
            self._slots.release()
            raise
        timer = asyncio.get_running_loop().call_later(timeout_s, conn.expire, timeout_s)
        waiter.add_done_callback(lambda fut: self._sent_now_done(conn, timer, fut))
        return waiter

    def _sent_now_done(
        self, conn: _Connection, timer: asyncio.TimerHandle, fut: asyncio.Future[HttpResponse]
    ) -> None:
        timer.cancel()
        if fut.cancelled():
            conn.abort()
        elif conn.usable:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        self._slots.release()

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable and now - conn.idle_since < self._idle_s:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: _Connection(loop, self._all.discard),
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._tls else None,
        )
        self._all.add(conn)
        self.connections_opened += 1
        return conn

    @property
    def idle_connections(self) -> int:
        return sum(1 for c in self._idle if c.usable)

    async def close(self) -> None:
        """Close every connection; requests still in flight fail with HttpConnectionError."""
        self._idle.clear()
        for conn in list(self._all):
            conn.abort()
        self._all.clear()
        await asyncio.sleep(0)  # let the transports run connection_lost
