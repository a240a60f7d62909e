"""The market-data WebSocket protocol with a raw `websockets` client (Alpaca §3 behaviours)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from common.capture import parse_rfc3339_ns
from simulator.app import MARKET
from tests.kit.md_client import MdClient
from tests.kit.md_venue import KEY, SECRET, VenueThread, sim_config

pytestmark = pytest.mark.timeout(60)

CONNECTED = [{"T": "success", "msg": "connected"}]
AUTHENTICATED = [{"T": "success", "msg": "authenticated"}]


def run(venue_kwargs: dict[str, Any], body: Callable[[VenueThread], Coroutine[Any, Any, None]]) -> None:
    with VenueThread(sim_config(**venue_kwargs)) as venue:
        asyncio.run(body(venue))


def err(code: int, msg: str) -> list[dict[str, Any]]:
    return [{"T": "error", "code": code, "msg": msg}]


def test_msgpack_binary_frames_by_default_json_text_frames_on_request() -> None:
    async def body(v: VenueThread) -> None:
        mp = await MdClient.open(v.ws("/v2/test"))
        js = await MdClient.open(v.ws("/v2/test"), use_json=True, headers={})
        assert await mp.login() == AUTHENTICATED
        # second connection on the same endpoint needs other keys; this venue allows several
        assert await js.login() == AUTHENTICATED
        await mp.subscribe(quotes=["FAKEPACA"])
        await js.subscribe(quotes=["FAKEPACA"])
        sent = v.post(
            "/sim/inject/quote",
            {"symbol": "FAKEPACA", "bid_px": "10.01", "bid_sz": 3, "ask_px": 10.02, "ask_sz": 5},
        )
        assert sent["sent_ns"] > 0 and sent["frames"] == 2
        raw_mp, raw_js = await mp.raw(), await js.raw()
        assert isinstance(raw_mp, bytes) and isinstance(raw_js, str)
        (q_mp,) = msgpack.unpackb(raw_mp)
        (q_js,) = __import__("orjson").loads(raw_js)
        assert isinstance(q_mp["t"], msgpack.Timestamp)
        assert isinstance(q_js["t"], str) and parse_rfc3339_ns(q_js["t"]) == q_mp["t"].to_unix_nano()
        for q in (q_mp, q_js):
            assert (q["T"], q["S"], q["bp"], q["bs"], q["ap"], q["as"]) == (
                "q",
                "FAKEPACA",
                10.01,
                3,
                10.02,
                5,
            )
        await mp.close()
        await js.close()

    run({"one_connection_per_key": False}, body)


def test_header_auth_sends_authenticated_after_the_greeting() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(
            v.ws("/v2/iex"), headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
        )
        assert await c.recv() == CONNECTED
        assert await c.recv() == AUTHENTICATED
        await c.send({"action": "auth", "key": KEY, "secret": SECRET})
        assert await c.recv() == err(403, "already authenticated")
        await c.close()

    run({}, body)


def test_bad_keys_get_402_and_subscribing_first_gets_401() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v2/sip"))
        assert await c.recv() == CONNECTED
        await c.send({"action": "subscribe", "trades": ["AAPL"]})
        assert await c.recv() == err(401, "not authenticated")
        await c.send({"action": "auth", "key": KEY, "secret": "wrong"})
        assert await c.recv() == err(402, "auth failed")
        await c.send({"action": "auth", "key": KEY, "secret": SECRET})
        assert await c.recv() == AUTHENTICATED
        await c.close()

    run({}, body)


def test_auth_timeout_sends_404_and_closes() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v2/test"))
        assert await c.recv() == CONNECTED
        assert await c.recv() == err(404, "auth timeout")
        with pytest.raises(ConnectionClosed):
            await c.recv()

    run({"auth_timeout_s": 0.2}, body)


def test_second_connection_with_same_keys_on_same_endpoint_gets_406() -> None:
    async def body(v: VenueThread) -> None:
        first = await MdClient.open(v.ws("/v2/iex"))
        assert await first.login() == AUTHENTICATED
        other_endpoint = await MdClient.open(v.ws("/v2/sip"))
        assert await other_endpoint.login() == AUTHENTICATED
        second = await MdClient.open(v.ws("/v2/iex"))
        assert await second.login() == err(406, "connection limit exceeded")
        with pytest.raises(ConnectionClosed):
            await second.recv()
        await first.close()
        await asyncio.sleep(0.1)  # the venue frees the slot when the first socket is gone
        third = await MdClient.open(v.ws("/v2/iex"))
        assert await third.login() == AUTHENTICATED
        for c in (other_endpoint, third):
            await c.close()

    run({}, body)


def test_subscribe_is_additive_and_acks_carry_the_full_set() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v2/test"), use_json=True)
        await c.login()
        ack = await c.subscribe(trades=["AAPL"], quotes=["FAKEPACA"])
        assert ack == {
            "T": "subscription", "trades": ["AAPL"], "quotes": ["FAKEPACA"], "bars": [], "updatedBars": [],
            "dailyBars": [], "statuses": [], "lulds": [], "corrections": ["AAPL"], "cancelErrors": ["AAPL"],
        }  # fmt: skip
        ack = await c.subscribe(trades=["MSFT"], bars=["*"])
        assert ack["trades"] == ["AAPL", "MSFT"] and ack["bars"] == ["*"] and ack["quotes"] == ["FAKEPACA"]
        assert ack["corrections"] == ["AAPL", "MSFT"] and ack["cancelErrors"] == ["AAPL", "MSFT"]
        ack = await c.subscribe("unsubscribe", trades=["AAPL"])
        assert ack["trades"] == ["MSFT"] and ack["corrections"] == ["MSFT"] and ack["bars"] == ["*"]
        await c.send({"action": "subscribe", "orderbooks": ["AAPL"]})
        assert await c.recv() == err(410, "invalid subscribe action for this feed")
        await c.send({"action": "subscribe", "trades": "AAPL"})
        assert await c.recv() == err(400, "invalid syntax")
        await c.ws.send("{not json")
        assert await c.recv() == err(400, "invalid syntax")
        await c.close()

        crypto = await MdClient.open(v.ws("/v1beta3/crypto/us"), use_json=True)
        await crypto.login()
        ack = await crypto.subscribe(trades=["BTC/USD"], orderbooks=["ETH/USD"])
        assert list(ack) == ["T", "trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars"]
        assert ack["trades"] == ["BTC/USD"] and ack["orderbooks"] == ["ETH/USD"]
        await crypto.send({"action": "subscribe", "statuses": ["BTC/USD"]})
        assert await crypto.recv() == err(410, "invalid subscribe action for this feed")
        await crypto.close()

    run({}, body)


def test_only_subscribed_symbols_and_channels_are_sent() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v2/test"))
        await c.login()
        await c.subscribe(quotes=["AAPL"])
        await asyncio.sleep(0.5)
        v.post("/sim/feed/pause")
        msgs = await c.data_until_quiet()
        assert msgs, "the synthetic feed sent nothing"
        assert {(m["T"], m["S"]) for m in msgs} == {("q", "AAPL")}
        await c.close()

    run({"message_rate": 2000.0}, body)


def test_orderbook_snapshot_then_deltas_rebuild_the_venue_book_exactly() -> None:
    from common.fixed import to_fixed

    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v1beta3/crypto/us"))
        await c.login()
        await c.subscribe(orderbooks=["BTC/USD"])
        first = await c.recv()
        assert first[0]["T"] == "o" and first[0].get("r") is True
        assert len(first[0]["b"]) == 5 and len(first[0]["a"]) == 5
        await asyncio.sleep(0.8)
        v.post("/sim/feed/pause")
        msgs = first + await c.data_until_quiet()
        assert len(msgs) > 20 and all(m["T"] == "o" and m["S"] == "BTC/USD" for m in msgs)
        assert not any(m.get("r") for m in msgs[1:])
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for m in msgs:
            for side, levels in ((bids, m["b"]), (asks, m["a"])):
                for lv in levels:
                    px, sz = to_fixed(lv["p"]), to_fixed(lv["s"])
                    if sz:
                        side[px] = sz
                    else:
                        side.pop(px, None)

        async def venue_book() -> tuple[dict[int, int], dict[int, int]]:
            assert v.server is not None and v.server.app is not None
            book = v.server.app[MARKET].books["BTC/USD"]
            return dict(book.bids), dict(book.asks)

        assert (bids, asks) == v.call(venue_book())
        await c.close()

    run({"message_rate": 3000.0, "crypto": ["BTC/USD", "ETH/USD"]}, body)


def test_injections_bypass_pause_reach_the_exchange_and_the_md_log() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v1beta3/crypto/us"))
        await c.login()
        await c.subscribe(quotes=["*"], trades=["BTC/USD"], orderbooks=["SOL/USD"])
        v.post("/sim/feed/pause")
        await c.data_until_quiet(0.2)
        r = v.post(
            "/sim/inject/quote",
            {"symbol": "BTC/USD", "bid_px": 100.5, "bid_sz": 0.25, "ask_px": "100.75", "ask_sz": 1},
        )
        assert (await c.recv())[0] | {"t": 0} == {
            "T": "q",
            "S": "BTC/USD",
            "bp": 100.5,
            "bs": 0.25,
            "ap": 100.75,
            "as": 1.0,
            "t": 0,
        }
        v.post("/sim/inject/trade", {"symbol": "BTC/USD", "price": "100.6", "size": "0.5"})
        (trade,) = await c.recv()
        assert (trade["T"], trade["p"], trade["s"]) == ("t", 100.6, 0.5)
        v.post(
            "/sim/inject/book",
            {"symbol": "SOL/USD", "bids": [["150.1", "2"]], "asks": [[150.2, 3]], "reset": True},
        )
        book, quote = await c.recv()
        assert book | {"t": 0} == {
            "T": "o",
            "S": "SOL/USD",
            "t": 0,
            "b": [{"p": 150.1, "s": 2.0}],
            "a": [{"p": 150.2, "s": 3.0}],
            "r": True,
        }
        assert (quote["S"], quote["bp"], quote["ap"]) == ("SOL/USD", 150.1, 150.2)

        log = v.get("/sim/md/log?limit=3")["frames"]
        quote_frame = log[0]
        assert quote_frame["sent_ns"] == r["sent_ns"] and quote_frame["feed"] == "crypto"
        assert quote_frame["msgs"][0]["T"] == "q" and quote_frame["msgs"][0]["ap"] == 100.75

        from decimal import Decimal

        assert (
            "BTC/USD",
            Decimal("100.5"),
            Decimal("0.25"),
            Decimal("100.75"),
            Decimal("1"),
        ) == v.exchange.quotes[-2][:5]
        assert v.exchange.trades[-1][:3] == ("BTC/USD", Decimal("100.6"), Decimal("0.5"))
        assert v.exchange.quotes[-1][:5] == (
            "SOL/USD",
            Decimal("150.1"),
            Decimal("2"),
            Decimal("150.2"),
            Decimal("3"),
        )
        await c.close()

    run({"message_rate": 500.0}, body)


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        (
            "/sim/inject/quote",
            {"symbol": "AAPL", "bid_px": 2, "bid_sz": 1, "ask_px": 1, "ask_sz": 1},
            "below",
        ),
        (
            "/sim/inject/quote",
            {"symbol": "AAPL", "bid_px": "x", "bid_sz": 1, "ask_px": 1, "ask_sz": 1},
            "not a number",
        ),
        ("/sim/inject/trade", {"symbol": "AAPL", "price": 1, "size": 0.5}, "whole shares"),
        ("/sim/inject/book", {"symbol": "AAPL", "bids": [], "asks": []}, "crypto"),
        ("/sim/feed/rate", {"rate": -1}, "rate"),
        ("/sim/faults/streams/mute", {}, "seconds"),
    ],
)
def test_bad_control_requests_get_a_clear_400(path: str, body: dict[str, Any], problem: str) -> None:
    import urllib.error

    with VenueThread(sim_config()) as v:
        with pytest.raises(urllib.error.HTTPError) as info:
            v.post(path, body)
        assert info.value.code == 400
        assert problem in __import__("orjson").loads(info.value.read())["message"]


def test_mute_silences_data_but_keeps_the_socket_and_drop_closes_it() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v2/test"))
        await c.login()
        await c.subscribe(quotes=["*"], trades=["*"])
        assert await c.recv()
        v.post("/sim/faults/streams/mute", {"seconds": 30})
        await c.data_until_quiet(0.2)  # frames queued before the mute
        with pytest.raises(TimeoutError):
            await c.recv(0.4)
        v.post("/sim/faults/streams/unmute")
        assert await c.recv()
        assert v.post("/sim/faults/streams/drop")["md_dropped"] == 1
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012

    run({"message_rate": 1000.0}, body)


def test_a_client_that_falls_behind_gets_407_and_is_closed() -> None:
    async def body(v: VenueThread) -> None:
        c = await MdClient.open(v.ws("/v2/test"))
        await c.login()
        # the first frame is the ack, or already the 407 when the feed overran the queue before the ack went out
        seen: list[dict[str, Any]] = [await c.subscribe(quotes=["*"], trades=["*"])]
        with pytest.raises(ConnectionClosed):
            while True:
                seen += await c.recv()
        assert seen[-1] == {"T": "error", "code": 407, "msg": "slow client"}
        assert v.get("/sim/health")["md_connections"] == 0

    # one message per frame at 20k msgs/s queues more frames per loop tick than the bound allows
    run({"message_rate": 20000.0, "batch_max": 1, "md_send_queue_max": 4}, body)
