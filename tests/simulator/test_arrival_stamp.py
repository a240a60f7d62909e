"""The venue's request arrival stamp: read at the top of data_received, one per request, never early."""

from __future__ import annotations

import asyncio
import itertools

import orjson
from aiohttp import web

from simulator.arrival import ARRIVED_NS, StampingAppRunner, arrived_ns


class CountingClock:
    """Returns 1, 2, 3, ... : which read of the clock a stamp came from."""

    def __init__(self) -> None:
        self._n = itertools.count(1)
        self.last = 0

    def __call__(self) -> int:
        self.last = next(self._n)
        return self.last


async def _serve(clock: CountingClock) -> tuple[StampingAppRunner, int]:
    async def echo_stamp(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            {"stamp": request.get(ARRIVED_NS), "fallback": arrived_ns(request, lambda: -1)}
        )

    app = web.Application()
    app.router.add_post("/v2/orders", echo_stamp)
    runner = StampingAppRunner(app, clock=clock, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


def _post(body: bytes = b'{"a":1}') -> bytes:
    head = f"POST /v2/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _read_replies(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        out.append(await reader.readexactly(length))
    return out


def test_each_request_gets_the_read_of_the_segment_that_carried_it() -> None:
    asyncio.run(_each_request_gets_the_read_of_the_segment_that_carried_it())


async def _each_request_gets_the_read_of_the_segment_that_carried_it() -> None:
    clock = CountingClock()
    runner, port = await _serve(clock)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_post())
        first = (await _read_replies(reader, 1))[0]
        writer.write(_post() + _post())  # two pipelined requests in one segment: one read, one stamp
        # (aiohttp may hold the second back until the first is answered: it keeps the same read)
        second, third = await _read_replies(reader, 2)
        writer.close()
    finally:
        await runner.cleanup()
    stamps = [orjson.loads(b)["stamp"] for b in (first, second, third)]
    assert stamps[0] == 1
    assert stamps[1] == stamps[2] == 2
    assert orjson.loads(first)["fallback"] == 1  # the stamp wins over the fallback clock


def test_headers_split_over_segments_get_the_later_read_never_an_earlier_one() -> None:
    asyncio.run(_headers_split_over_segments_get_the_later_read_never_an_earlier_one())


async def _headers_split_over_segments_get_the_later_read_never_an_earlier_one() -> None:
    clock = CountingClock()
    runner, port = await _serve(clock)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = _post()
        writer.write(raw[:10])
        await writer.drain()
        await asyncio.sleep(0.05)  # lets the server read the first part on its own
        reads_before = clock.last
        writer.write(raw[10:])
        reply = (await _read_replies(reader, 1))[0]
        writer.close()
    finally:
        await runner.cleanup()
    assert reads_before >= 1
    assert orjson.loads(reply)["stamp"] > reads_before


def test_a_server_without_the_stamping_runner_falls_back_to_the_callers_clock() -> None:
    asyncio.run(_a_server_without_the_stamping_runner_falls_back_to_the_callers_clock())


async def _a_server_without_the_stamping_runner_falls_back_to_the_callers_clock() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"t": arrived_ns(request, lambda: 42)})

    app = web.Application()
    app.router.add_post("/x", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        reply = (await _read_replies(reader, 1))[0]
        writer.close()
    finally:
        await runner.cleanup()
    assert reply == b'{"t": 42}'
