"""The venue as Alpaca behaves, judged by alpaca-py: the POST reply is the order as accepted and the
fill comes on trade_updates; a sell never flips a long position short (403 insufficient qty)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, PositionSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from tests.kit.trade_updates import Updates, by_order
from tests.kit.trading_venue import KEY, SECRET, SimServer

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def D(x: object) -> Decimal:
    return Decimal(str(x))


def market(side: OrderSide, qty: float, symbol: str = "AAPL") -> MarketOrderRequest:
    tif = TimeInForce.GTC if "/" in symbol else TimeInForce.DAY
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif)


@pytest.fixture
def venue(
    sim_factory: Callable[..., SimServer],
) -> Iterator[Callable[..., tuple[SimServer, TradingClient, Updates]]]:
    streams: list[Updates] = []

    def make(**cfg: object) -> tuple[SimServer, TradingClient, Updates]:
        sim = sim_factory(starting_cash="1000000", **cfg)
        streams.append(Updates(sim).start())
        sim.quote("AAPL", "100", "1000", "100.10", "1000")
        return sim, TradingClient(KEY, SECRET, url_override=sim.base_url), streams[-1]

    yield make
    for s in streams:
        s.stop()


def test_post_reply_is_the_accepted_order_and_the_fill_comes_on_the_stream(
    venue: Callable[..., tuple[SimServer, TradingClient, Updates]],
) -> None:
    sim, client, updates = venue()
    reply = client.submit_order(market(BUY, 3))
    assert reply.status == OrderStatus.NEW and D(reply.filled_qty) == 0 and reply.filled_at is None
    new, fill = updates.take(2)
    assert (new.event, fill.event) == ("new", "fill")
    assert D(fill.qty) == 3 and D(fill.price) == D("100.10") and D(fill.position_qty) == 3
    assert fill.order.status == OrderStatus.FILLED
    assert client.get_order_by_id(reply.id).status == OrderStatus.FILLED

    # larger than the touch: partial fill now, the rest on the next quote
    big = client.submit_order(market(BUY, 1500))  # 150 k: the fixture's cash is 1 M
    assert big.status == OrderStatus.NEW and D(big.filled_qty) == 0
    assert [u.event for u in updates.take(2)] == ["new", "partial_fill"]
    sim.quote("AAPL", "100", "1000", "100.20", "1000")
    last = updates.take(1)[0]
    assert last.event == "fill" and D(last.order.filled_qty) == 1500

    # a position close answers the same way
    sim.quote("AAPL", "100", "5000", "100.20", "5000")
    closing = client.close_position("AAPL")
    assert closing.status == OrderStatus.NEW and D(closing.filled_qty) == 0
    assert by_order(updates.take(2)) == {str(closing.id): ["new", "fill"]}
    assert client.get_all_positions() == []


def test_with_an_ack_delay_the_reply_is_pending_new(
    venue: Callable[..., tuple[SimServer, TradingClient, Updates]],
) -> None:
    _, client, updates = venue(ack_delay_ms=30)
    reply = client.submit_order(market(BUY, 1))
    assert reply.status == OrderStatus.PENDING_NEW and D(reply.filled_qty) == 0
    assert [u.event for u in updates.take(3)] == ["pending_new", "new", "fill"]


def test_a_sell_beyond_the_long_qty_is_refused_with_403(
    venue: Callable[..., tuple[SimServer, TradingClient, Updates]],
) -> None:
    sim, client, updates = venue()
    client.submit_order(market(BUY, 10))
    updates.take(2)
    with pytest.raises(APIError) as err:
        client.submit_order(market(SELL, 15))  # would flip long 10 to short 5 in one order
    assert err.value.status_code == 403 and err.value.code == 40310000
    assert err.value.message == "insufficient qty available for order (requested: 15, available: 10)"

    resting = client.submit_order(
        LimitOrderRequest(symbol="AAPL", qty=4, side=SELL, time_in_force=TimeInForce.GTC, limit_price=200)
    )
    refused = requests.post(
        sim.base_url + "/v2/orders",
        json={"symbol": "AAPL", "qty": 8, "side": "sell", "type": "market", "time_in_force": "day"},
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    )
    assert refused.status_code == 403
    body = refused.json()
    assert body["message"] == "insufficient qty available for order (requested: 8, available: 6)"
    assert (body["existing_qty"], body["held_for_orders"], body["available"]) == ("10", "4", "6")
    assert body["symbol"] == "AAPL" and str(resting.id) in body["related_orders"]
    assert D(client.get_open_position("AAPL").qty) == 10  # nothing happened

    client.cancel_order_by_id(resting.id)
    client.submit_order(market(SELL, 10))  # closing the whole long is fine
    client.submit_order(market(SELL, 5))  # from flat a sell opens a short (shorting enabled)
    short = client.get_open_position("AAPL")
    assert short.side == PositionSide.SHORT and D(short.qty) == -5
    client.submit_order(market(SELL, 2))  # adding to a short
    assert D(client.get_open_position("AAPL").qty) == -7

    sim.quote("BTC/USD", "50000", "2", "50010", "2")
    with pytest.raises(APIError) as err:
        client.submit_order(market(SELL, 0.1, "BTC/USD"))  # crypto is never shorted
    assert err.value.status_code == 403 and "insufficient qty available" in err.value.message
