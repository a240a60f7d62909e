"""Network and auth failures on execution's links, through the real REST client and the real
trade_updates stream over real sockets: each is classified, counted, and said in one clear line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import WSMsgType, web
from prometheus_client import REGISTRY

from common.enums import LinkFailure
from common.netfail import AUTH_RETRY_S
from services.execution.venue.ratelimit import TokenBucket
from services.execution.venue.rest_client import AlpacaRest, RestConnectionError, RestError, RestStatusError
from services.execution.venue.trade_stream import TradeStream
from tests.kit.system import free_port

KEY, SECRET = "PKWRONGKEY123", "wrong-secret-value-456"


def failures(service: str, link: str, kind: LinkFailure) -> float:
    labels = {"service": service, "link": link, "kind": kind.value}
    return REGISTRY.get_sample_value("zt_link_failures_total", labels) or 0.0


@asynccontextmanager
async def http_app(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def unauthorized(request: web.Request) -> web.Response:
    return web.json_response({"code": 40110000, "message": "request is not authorized"}, status=401)


async def rest_failure(base_url: str) -> tuple[RestError, AlpacaRest]:
    rest = AlpacaRest(base_url, KEY, SECRET, TokenBucket(600, 10), timeout_s=2.0)
    try:
        with pytest.raises(RestError) as err:
            await rest.account()
        return err.value, rest
    finally:
        await rest.close()


def test_rest_closed_port_is_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # bound then released: nothing listens there
    before = failures("execution", "rest", LinkFailure.CONNECTION_REFUSED)
    exc, rest = asyncio.run(rest_failure(f"http://127.0.0.1:{port}"))
    assert isinstance(exc, RestConnectionError) and exc.link_failure is LinkFailure.CONNECTION_REFUSED
    assert rest.health.last is not None
    assert rest.health.last.message.startswith(f"connection refused by 127.0.0.1:{port} ")
    assert failures("execution", "rest", LinkFailure.CONNECTION_REFUSED) == before + 1
    assert f"connection refused by 127.0.0.1:{port}" in caplog.text


def test_rest_unresolvable_host_is_dns_failure() -> None:
    exc, rest = asyncio.run(rest_failure("https://nonexistent.invalid"))
    assert exc.link_failure is LinkFailure.DNS_FAILURE
    assert rest.health.last is not None
    assert rest.health.last.message.startswith("cannot resolve nonexistent.invalid (DNS)")
    assert "gaierror" not in str(exc)


def test_rest_401_is_auth_rejected_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[RestError, AlpacaRest, str]:
        async with http_app([web.get("/v2/account", unauthorized)]) as url:
            exc, rest = await rest_failure(url)
            return exc, rest, url

    before = failures("execution", "rest", LinkFailure.AUTH_REJECTED)
    with caplog.at_level(logging.WARNING):
        exc, rest, url = asyncio.run(main())
    assert isinstance(exc, RestStatusError) and exc.link_failure is LinkFailure.AUTH_REJECTED
    assert rest.health.last is not None
    assert rest.health.last.message == (
        f"the venue at 127.0.0.1 rejected the API keys (HTTP 401) at {url}; "
        "check APCA_API_KEY_ID/APCA_API_SECRET_KEY (sim.key_id/sim.secret_key for the simulator)"
    )
    assert rest.health.retry_delay(2.0) == AUTH_RETRY_S
    assert failures("execution", "rest", LinkFailure.AUTH_REJECTED) == before + 1
    assert "rejected the API keys" in caplog.text
    assert SECRET not in caplog.text and KEY not in caplog.text


def test_rest_garbage_answer_is_protocol_error() -> None:
    async def main() -> tuple[RestError, AlpacaRest]:
        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(garbage, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await rest_failure(f"http://127.0.0.1:{port}")

    exc, rest = asyncio.run(main())
    assert exc.link_failure is LinkFailure.PROTOCOL_ERROR
    assert (
        rest.health.last is not None and "did not answer in the expected protocol" in rest.health.last.message
    )


def test_rest_recovery_clears_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return await unauthorized(request)
        return web.json_response({"cash": "1", "buying_power": "1", "equity": "1", "last_equity": "1"})

    async def main() -> AlpacaRest:
        async with http_app([web.get("/v2/account", flaky)]) as url:
            rest = AlpacaRest(url, KEY, SECRET, TokenBucket(600, 10), timeout_s=2.0)
            with pytest.raises(RestStatusError):
                await rest.account()
            assert rest.health.auth_rejected
            await rest.account()
            await rest.close()
            return rest

    with caplog.at_level(logging.INFO):
        rest = asyncio.run(main())
    assert rest.health.last is None and rest.health.status() is None
    assert "rest link to 127.0.0.1:" in caplog.text and "works again" in caplog.text


# ---- trade_updates ------------------------------------------------------------------------------


async def stream_failure(url: str, until: Callable[[TradeStream], bool]) -> TradeStream:
    stream = TradeStream(url, KEY, SECRET, lambda data: None, reconnect_min_s=0.05, reconnect_max_s=0.1)
    stream.start()
    try:
        for _ in range(200):
            if until(stream):
                return stream
            await asyncio.sleep(0.02)
        raise AssertionError(f"trade stream never reached the condition; last={stream.health.last}")
    finally:
        await stream.stop()


def test_trade_stream_closed_port_dns_and_refusal() -> None:
    port = free_port()
    refused = asyncio.run(
        stream_failure(f"ws://127.0.0.1:{port}/stream", lambda s: s.health.last is not None)
    )
    assert refused.health.last is not None and refused.health.last.kind is LinkFailure.CONNECTION_REFUSED
    assert refused.health.last.message.startswith(f"connection refused by 127.0.0.1:{port}")
    dns = asyncio.run(stream_failure("wss://nonexistent.invalid/stream", lambda s: s.health.last is not None))
    assert dns.health.last is not None and dns.health.last.kind is LinkFailure.DNS_FAILURE
    assert dns.health.last.message.startswith("cannot resolve nonexistent.invalid (DNS)")


def test_trade_stream_rejected_keys_wait_the_long_backoff(caplog: pytest.LogCaptureFixture) -> None:
    attempts = {"n": 0}

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        attempts["n"] += 1
        msg = await ws.receive()
        assert msg.type is WSMsgType.TEXT
        await ws.send_str(
            '{"stream":"authorization","data":{"status":"unauthorized","action":"authenticate"}}'
        )
        await ws.close()
        return ws

    async def main() -> TradeStream:
        async with http_app([web.get("/stream", ws_handler)]) as url:
            stream = await stream_failure(
                url.replace("http://", "ws://") + "/stream", lambda s: s.health.auth_rejected
            )
            await asyncio.sleep(0.5)  # a tight loop would have retried ~10 times by now
            return stream

    with caplog.at_level(logging.WARNING):
        stream = asyncio.run(main())
    assert attempts["n"] == 1
    assert stream.health.retry_delay(stream.backoff.min_s) == AUTH_RETRY_S
    assert stream.health.last is not None
    assert "rejected the API keys (trade_updates not authorized)" in stream.health.last.message
    assert caplog.text.count("rejected the API keys") == 1
    assert SECRET not in caplog.text


def test_trade_stream_refused_upgrade_401_is_auth_rejected() -> None:
    async def main() -> TradeStream:
        async with http_app([web.get("/stream", unauthorized)]) as url:
            return await stream_failure(
                url.replace("http://", "ws://") + "/stream", lambda s: s.health.auth_rejected
            )

    stream = asyncio.run(main())
    assert (
        stream.health.last is not None and "HTTP 401 on the WebSocket upgrade" in stream.health.last.message
    )
