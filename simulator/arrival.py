"""Arrival time of each HTTP request, taken where the venue first reads its bytes off the socket.

aiohttp hands a request to the middleware only after it has parsed the request line and headers and
the event loop has got round to the request's task; a timestamp taken there includes that wait.
``StampingAppRunner`` serves the same application with a protocol that reads the clock at the top of
``data_received`` (before any parsing) and attaches that time to each request whose headers the
bytes completed: ``arrived_ns(request)``.

What the stamp is: the time the venue's event loop read the segment that completed the request line
and headers. For a request that arrives in one segment (every order POST: well under 1 kB, written
at once) that is the read of its first byte. A request whose headers were split over several
segments gets the later time, and so do pipelined requests aiohttp held back and parses later (the
latest read): the stamp can be late, never early. Servers not started through ``StampingAppRunner``
(aiohttp test servers) stamp nothing; the caller falls back to its own clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

ARRIVED_NS = web.RequestKey("zt_arrived_ns", int)

Clock = Callable[[], int]


class StampingRequestHandler(RequestHandler):
    """aiohttp's HTTP/1.1 protocol plus a clock read per received segment, before parsing."""

    def __init__(self, manager: Server, *, clock: Clock, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._clock = clock
        self._last_read_ns = 0
        self._stamps: dict[int, int] = {}  # id(parsed message) -> ns; popped when its request is made
        inner = self._request_factory
        assert inner is not None

        def factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            request = inner(message, payload, protocol, writer, task)
            stamp = self._stamps.pop(id(message), None)
            if stamp is not None:
                request[ARRIVED_NS] = stamp
            return request

        self._request_factory = factory

    def data_received(self, data: bytes) -> None:
        if self._upgraded or self._payload_parser is not None:  # WebSocket frames: nothing to stamp
            super().data_received(data)
            return
        # b"" is aiohttp re-parsing bytes it buffered while paused: they came with the latest read
        now = self._clock() if data else self._last_read_ns
        if data:
            self._last_read_ns = now
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            for i in range(queued, len(self._messages)):
                self._stamps[id(self._messages[i][0])] = now

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stamps.clear()
        super().connection_lost(exc)


class _StampingServer(Server):
    clock: Clock

    def __call__(self) -> RequestHandler:
        return StampingRequestHandler(self, clock=self.clock, loop=self._loop, **self._kwargs)


class StampingAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections stamp each request's arrival (``arrived_ns``)."""

    def __init__(self, app: web.Application, *, clock: Clock, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._clock = clock

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # the application's own Server, only its protocol factory replaced
        server.__class__ = _StampingServer
        assert isinstance(server, _StampingServer)
        server.clock = self._clock
        return server


def arrived_ns(request: web.Request, fallback: Clock) -> int:
    """The request's transport-level arrival stamp, or ``fallback()`` when it has none."""
    stamp = request.get(ARRIVED_NS)
    return stamp if stamp is not None else fallback()
