"""The lean HTTP/1.1 client against a real aiohttp server and a raw asyncio server scripted byte by byte."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import uvloop
from aiohttp import web

from services.execution.venue.http11 import (
    Http11Pool,
    HttpConnectionError,
    HttpProtocolError,
    HttpTimeout,
    ResponseParser,
)
from services.execution.venue.ratelimit import TokenBucket
from services.execution.venue.rest_client import AlpacaRest, RestConnectionError, RestTimeout
from tests.kit.execution import serve_local

HEADERS = {"APCA-API-KEY-ID": "kid", "APCA-API-SECRET-KEY": "s3cret", "Content-Type": "application/json"}

# ---- a real aiohttp server ----------------------------------------------------------------------


class AioServer:
    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/chunked", self.chunked)
        app.router.add_delete("/empty", self.empty)
        app.router.add_get("/slow", self.slow)
        self.runner, self.url = await serve_local(app)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _seen(self, request: web.Request) -> None:
        self.peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]

    async def echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        doc = {
            "method": request.method,
            "path": request.path,
            "query": {str(k): v for k, v in request.query.items()},
            "headers": {str(k): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b'{"a":', b' "' + b"x" * 5000 + b'",', b' "b": 2}'):
            await resp.write(part)
            await asyncio.sleep(0.001)
        await resp.write_eof()
        return resp

    async def empty(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(status=204)

    async def slow(self, request: web.Request) -> web.Response:
        self._seen(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        return web.Response(body=b"{}")


def with_aio(body: Callable[[AioServer], Awaitable[None]], on_uvloop: bool = True) -> None:
    async def main() -> None:
        server = AioServer()
        await server.start()
        try:
            await body(server)
        finally:
            await server.stop()

    if on_uvloop:  # as the services run
        uvloop.run(main())
    else:
        asyncio.run(main())


@pytest.mark.parametrize("on_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_keep_alive_reuses_one_connection_for_sequential_requests(on_uvloop: bool) -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            for i in range(10):
                resp = await pool.request("GET", "/echo", {"i": str(i)})
                assert resp.status == 200 and orjson.loads(resp.body)["query"] == {"i": str(i)}
        finally:
            await pool.close()
        assert pool.connections_opened == 1
        assert len(set(server.peers)) == 1 and len(server.peers) == 10

    with_aio(body, on_uvloop)


def test_parallel_requests_open_several_connections_up_to_the_limit() -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS, max_connections=3)
        try:
            results = await asyncio.gather(*(pool.request("GET", "/slow") for _ in range(7)))
            assert [r.status for r in results] == [200] * 7
        finally:
            await pool.close()
        assert pool.connections_opened == 3
        assert len(set(server.peers)) == 3
        assert server.max_in_flight == 3

    with_aio(body)


def test_post_sends_content_length_body_and_static_headers() -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url + "/", HEADERS)
        sent: list[bool] = []
        payload = orjson.dumps({"symbol": "AAPL", "qty": "1.5", "note": "ünïcode"})
        try:
            resp = await pool.request("POST", "/echo", body=payload, on_send=lambda: sent.append(True))
        finally:
            await pool.close()
        doc = orjson.loads(resp.body)
        assert sent == [True]
        assert resp.status == 200 and resp.headers["content-type"] == "application/json"
        assert int(resp.headers["content-length"]) == len(resp.body)
        assert doc["method"] == "POST" and doc["body"] == payload.decode()
        assert doc["headers"]["Content-Length"] == str(len(payload))
        assert doc["headers"]["APCA-API-SECRET-KEY"] == "s3cret"
        assert doc["headers"]["Host"] == server.url.removeprefix("http://")

    with_aio(body)


def test_chunked_body_is_reassembled() -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            resp = await pool.request("GET", "/chunked")
            again = await pool.request("GET", "/chunked")
        finally:
            await pool.close()
        assert resp.headers["transfer-encoding"] == "chunked"
        assert orjson.loads(resp.body) == {"a": "x" * 5000, "b": 2}
        assert again.body == resp.body
        assert pool.connections_opened == 1

    with_aio(body)


def test_204_has_no_body_and_keeps_the_connection() -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            first = await pool.request("DELETE", "/empty")
            second = await pool.request("DELETE", "/empty")
        finally:
            await pool.close()
        assert (first.status, first.body, second.status) == (204, b"", 204)
        assert pool.connections_opened == 1

    with_aio(body)


def test_query_strings_are_percent_encoded() -> None:
    params = {"client_order_id": "a b&c=d+e/f?g#h%i", "sym": "BRK.B", "ü": "é"}

    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            resp = await pool.request("GET", "/echo", params)
        finally:
            await pool.close()
        assert orjson.loads(resp.body)["query"] == params

    with_aio(body)


def test_alpaca_rest_round_trip_over_http11() -> None:
    async def body(server: AioServer) -> None:
        rest = AlpacaRest(server.url, "kid", "s3cret", TokenBucket(600, 10), timeout_s=2.0)
        try:
            status, doc = await rest.request("POST", "/echo", "POST /echo", body={"x": 1})
        finally:
            await rest.close()
        assert status == 200 and orjson.loads(doc["body"]) == {"x": 1}
        assert doc["headers"]["APCA-API-KEY-ID"] == "kid"

    with_aio(body)


# ---- a raw asyncio server scripted byte by byte -------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return head + await reader.readexactly(int(line.split(b":")[1]))
    return head


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.closed_by_client = 0
        self.hung_up = asyncio.Event()  # set whenever a client closes its connection
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
            if not writer.is_closing():
                await reader.read()  # hold the line until the client hangs up
                self.closed_by_client += 1
                self.hung_up.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_client += 1
            self.hung_up.set()
        finally:
            writer.close()


def run_raw(handler: Handler, scenario: Callable[[RawServer], Awaitable[None]]) -> RawServer:
    async def main() -> RawServer:
        async with RawServer(handler) as server:
            await scenario(server)
            return server

    return uvloop.run(main())


OK_BODY = b'{"ok":true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + OK_BODY


def test_connection_close_is_honoured() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\n" + OK_BODY)
        await writer.drain()

    async def scenario(server: RawServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            for _ in range(3):
                assert (await pool.request("GET", "/x")).body == OK_BODY
            assert pool.idle_connections == 0
        finally:
            await pool.close()

    server = run_raw(handler, scenario)
    assert server.connections == 3


def test_body_delimited_by_close_and_byte_by_byte_chunks_with_trailers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-ENCODING: Chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n0005\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for i in range(len(chunked)):
            writer.write(chunked[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + OK_BODY)
        await writer.drain()
        writer.close()

    async def scenario(server: RawServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            assert (await pool.request("GET", "/a")).body == b"Wikipedia in\r\n\r\nchunks."
            assert (await pool.request("GET", "/b")).body == OK_BODY
        finally:
            await pool.close()
        assert pool.connections_opened == 1

    run_raw(handler, scenario)


def test_server_closing_mid_body_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
        await writer.drain()
        writer.close()

    async def scenario(server: RawServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        rest = AlpacaRest(server.url, "kid", "s3cret", TokenBucket(600, 10), timeout_s=2.0)
        try:
            with pytest.raises(HttpConnectionError, match="before the response was complete"):
                await pool.request("GET", "/x")
            with pytest.raises(RestConnectionError, match="before the response was complete"):
                await rest.submit_order({"symbol": "AAPL"})
        finally:
            await pool.close()
            await rest.close()

    run_raw(handler, scenario)


def test_timeout_drops_the_connection_and_the_next_request_uses_a_new_one() -> None:
    silent_once = asyncio.Event()
    dropped = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if not silent_once.is_set():
            silent_once.set()  # only the first connection stays silent
            assert await reader.read() == b""  # never answer; wait for the client to drop us
            dropped.set()
            return
        writer.write(OK)
        await writer.drain()

    async def scenario(server: RawServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            with pytest.raises(HttpTimeout):
                await pool.request("POST", "/orders", body=b"{}", timeout_s=0.2)
            await asyncio.wait_for(dropped.wait(), 2.0)
            assert (await pool.request("GET", "/x")).body == OK_BODY
        finally:
            await pool.close()
        assert pool.connections_opened == 2

    server = run_raw(handler, scenario)
    assert server.connections == 2


def test_alpaca_rest_timeout_is_rest_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    async def scenario(server: RawServer) -> None:
        rest = AlpacaRest(server.url, "kid", "s3cret", TokenBucket(600, 10), timeout_s=0.2)
        try:
            with pytest.raises(RestTimeout):
                await rest.account()
        finally:
            await rest.close()

    run_raw(handler, scenario)


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage garbage\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
    ],
)
def test_malformed_response_is_a_clear_connection_error(reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async def scenario(server: RawServer) -> None:
        rest = AlpacaRest(server.url, "kid", "s3cret", TokenBucket(600, 10), timeout_s=2.0)
        try:
            with pytest.raises(RestConnectionError, match=r"malformed|invalid|conflicting|CRLF"):
                await rest.account()
            await asyncio.wait_for(server.hung_up.wait(), 2.0)  # dropped at once, not kept
        finally:
            await rest.close()

    server = run_raw(handler, scenario)
    assert server.closed_by_client == 1


def test_interim_1xx_is_skipped_and_head_of_parser_limits() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-")
    assert parser.feed(b"Length: 2\r\n\r\nok")
    assert (parser.status, bytes(parser.body), parser.keep_alive) == (200, b"ok", True)
    with pytest.raises(HttpProtocolError, match="64 KiB"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000)


def test_unreachable_origin_is_a_connection_error() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        pool = Http11Pool(f"http://127.0.0.1:{port}", HEADERS)
        with pytest.raises(HttpConnectionError, match="connection failed"):
            await pool.request("GET", "/x")
        await pool.close()

    uvloop.run(main())


# ---- send_now: the order path's write without an await ---------------------------------------


def test_send_now_writes_on_the_idle_connection_before_returning_and_keeps_it() -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS)
        try:
            assert pool.send_now("POST", "/echo", body=b"{}") is None  # no connection yet: nothing sent
            assert not server.peers
            await pool.request("GET", "/echo")
            written: list[str] = []
            for i in range(3):
                assert pool.can_send_now()
                fut = pool.send_now(
                    "POST", "/echo", body=b'{"i": %d}' % i, on_send=lambda: written.append("x")
                )
                assert fut is not None and len(written) == i + 1  # written before send_now returned
                resp = await fut
                assert orjson.loads(resp.body)["body"] == f'{{"i": {i}}}'
                await asyncio.sleep(0)  # the connection goes back to the pool in the future's callback
        finally:
            await pool.close()
        assert pool.connections_opened == 1 and len(server.peers) == 4

    with_aio(body)


def test_send_now_takes_nothing_while_every_slot_is_busy() -> None:
    async def body(server: AioServer) -> None:
        pool = Http11Pool(server.url, HEADERS, max_connections=1)
        try:
            await pool.request("GET", "/echo")
            busy = asyncio.ensure_future(pool.request("GET", "/slow"))
            await asyncio.sleep(0.01)
            assert not pool.can_send_now() and pool.send_now("POST", "/echo", body=b"{}") is None
            await busy
            assert pool.can_send_now()
            waiting = asyncio.ensure_future(pool.request("GET", "/slow"))  # a waiter keeps its turn
            await asyncio.sleep(0.01)
            assert (await waiting).status == 200
        finally:
            await pool.close()
        assert len(server.peers) == 3 and server.max_in_flight == 1

    with_aio(body)


def test_send_now_timeout_drops_the_connection_and_frees_the_slot() -> None:
    answered = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if answered == 1:
                answered += 1
                await reader.read()  # the second request is never answered
                return
            answered += 1
            writer.write(OK)
            await writer.drain()

    async def scenario(server: RawServer) -> None:
        pool = Http11Pool(server.url, HEADERS, max_connections=1)
        try:
            await pool.request("GET", "/x")
            fut = pool.send_now("POST", "/orders", body=b"{}", timeout_s=0.2)
            assert fut is not None
            with pytest.raises(HttpTimeout):
                await fut
            await asyncio.sleep(0)
            assert (await pool.request("GET", "/x")).body == OK_BODY  # the slot is free again
        finally:
            await pool.close()
        assert pool.connections_opened == 2

    run_raw(handler, scenario)
