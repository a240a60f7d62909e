"""trade_updates over /stream: real alpaca-py TradingStream, raw protocol checks, and reconnect after drop."""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.kit.trading_venue import KEY, SECRET, SimServer
from tests.kit.waiting import wait_until


@pytest.fixture
def updates(sim: SimServer) -> Iterator[queue.Queue[TradeUpdate]]:
    received: queue.Queue[TradeUpdate] = queue.Queue()
    stream = TradingStream(KEY, SECRET, url_override=sim.ws_url)

    async def on_update(update: TradeUpdate) -> None:
        received.put(update)

    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, name="trading-stream", daemon=True)
    thread.start()
    wait_until(lambda: sim.hub.listeners == 1, 10, "the condition")
    yield received
    stream.stop()
    sim.call_async(sim.hub.drop_all())  # wakes the client's 5 s recv wait so it sees the stop at once
    thread.join(10)


def take(received: queue.Queue[TradeUpdate], n: int) -> list[TradeUpdate]:
    return [received.get(timeout=10) for _ in range(n)]


def test_trading_stream_gets_every_transition_and_reconnects(
    sim: SimServer, updates: queue.Queue[TradeUpdate]
) -> None:
    client = TradingClient(KEY, SECRET, url_override=sim.base_url)
    sim.quote("AAPL", "100", "5", "100.5", "5")
    market = client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=8, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    sim.quote("AAPL", "100", "5", "100.6", "5")
    new, partial, fill = take(updates, 3)
    assert [new.event, partial.event, fill.event] == ["new", "partial_fill", "fill"]
    assert {u.order.id for u in (new, partial, fill)} == {market.id}
    assert (partial.qty, partial.price, partial.position_qty) == (5, 100.5, 5)
    assert (fill.qty, fill.price, fill.position_qty) == (3, 100.6, 8)
    assert fill.order.filled_qty == "8" and fill.execution_id is not None

    limit = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=90
        )
    )
    replacement = client.replace_order_by_id(limit.id, ReplaceOrderRequest(limit_price=91))
    client.cancel_order_by_id(replacement.id)
    events = take(updates, 4)
    assert [(u.event, u.order.id) for u in events] == [
        ("new", limit.id),
        ("replaced", limit.id),
        ("new", replacement.id),
        ("canceled", replacement.id),
    ]
    assert events[1].order.replaced_by == replacement.id

    assert sim.call_async(sim.hub.drop_all()) == 1
    wait_until(lambda: sim.hub.listeners == 1, 10, "the condition")  # alpaca-py reconnected and listens again
    again = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=80
        )
    )
    (update,) = take(updates, 1)
    assert (update.event, update.order.id) == ("new", again.id)


@pytest.mark.parametrize(
    "auth",
    [
        {"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}},
        {"action": "auth", "key": KEY, "secret": SECRET},
    ],
)
def test_raw_protocol_both_auth_forms_and_binary_frames(sim: SimServer, auth: dict[str, object]) -> None:
    with connect(sim.ws_url) as ws:
        ws.send(json.dumps(auth))
        reply = ws.recv(timeout=5)
        assert isinstance(reply, bytes)
        assert json.loads(reply) == {
            "stream": "authorization",
            "data": {"status": "authorized", "action": "authenticate"},
        }
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=5)) == {
            "stream": "listening",
            "data": {"streams": ["trade_updates"]},
        }
        sim.quote("FAKEPACA", "10", "100", "10.01", "100")
        client = TradingClient(KEY, SECRET, url_override=sim.base_url)
        order = client.submit_order(
            MarketOrderRequest(symbol="FAKEPACA", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
        )
        events = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        assert [e["stream"] for e in events] == ["trade_updates", "trade_updates"]
        assert [e["data"]["event"] for e in events] == ["new", "fill"]
        fill = events[1]["data"]
        assert (fill["qty"], fill["price"], fill["position_qty"]) == ("2", "10", "-2")
        assert fill["order"]["id"] == str(order.id) and fill["timestamp"].endswith("Z")


def test_bad_keys_are_refused_and_closed(sim: SimServer) -> None:
    with connect(sim.ws_url) as ws:
        ws.send(json.dumps({"action": "auth", "key": KEY, "secret": "wrong"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["data"]["status"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def _post(sim: SimServer, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(
        sim.base_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_trade_stream_down_fault_drops_and_refuses_until_up(sim: SimServer) -> None:
    with connect(sim.ws_url) as ws:
        ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
        ws.recv(timeout=5)
        assert _post(sim, "/sim/faults/trade_stream/down", {"seconds": 60}) == (
            200,
            {"seconds": 60.0, "dropped": 1},
        )
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    with pytest.raises(InvalidStatus) as refused:
        connect(sim.ws_url)
    assert refused.value.response.status_code == 503
    assert _post(sim, "/sim/faults/trade_stream/up", {}) == (200, {"down": False})
    with connect(sim.ws_url) as ws:
        ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
        assert json.loads(ws.recv(timeout=5))["data"]["status"] == "authorized"
    assert _post(sim, "/sim/faults/trade_stream/down", {"seconds": 0})[0] == 422
