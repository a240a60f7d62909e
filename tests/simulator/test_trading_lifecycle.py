"""Order life cycle on the venue with real alpaca-py: session close/open (expired, accepted, clock),
asynchronous rejections, pending_* with an acknowledgement delay, and fills racing pending requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest

from tests.kit.trade_updates import HeldSteps, Updates, by_order, sim_post
from tests.kit.trading_venue import KEY, SECRET, SimServer

BUY = OrderSide.BUY


def D(x: object) -> Decimal:
    return Decimal(str(x))


def limit(
    qty: float, px: float, tif: TimeInForce = TimeInForce.GTC, symbol: str = "AAPL"
) -> LimitOrderRequest:
    return LimitOrderRequest(symbol=symbol, qty=qty, side=BUY, time_in_force=tif, limit_price=px)


def market(qty: float, tif: TimeInForce = TimeInForce.DAY, symbol: str = "AAPL") -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=BUY, time_in_force=tif)


VenueFactory = Callable[..., tuple[SimServer, TradingClient, Updates]]


@pytest.fixture
def venue(sim_factory: Callable[..., SimServer]) -> Iterator[VenueFactory]:
    """``venue(**sim_config)`` -> a venue, a TradingClient on it and a listening TradingStream."""
    streams: list[Updates] = []

    def make(**cfg: object) -> tuple[SimServer, TradingClient, Updates]:
        sim = sim_factory(**cfg)
        streams.append(Updates(sim).start())
        return sim, TradingClient(KEY, SECRET, url_override=sim.base_url), streams[-1]

    yield make
    for stream in streams:
        stream.stop()


def test_session_close_expires_day_orders_queues_new_ones_and_moves_the_clock(venue: VenueFactory) -> None:
    sim, client, updates = venue()
    cash = sim.cfg.starting_cash
    sim.quote("AAPL", "100", "10", "100.5", "10")
    sim.quote("BTC/USD", "50000", "1", "50010", "1")
    day = client.submit_order(limit(2, 90, TimeInForce.DAY))
    gtc = client.submit_order(limit(1, 91))
    assert D(client.get_account().buying_power) == cash - 2 * 90 - 91

    assert sim_post(sim, "/sim/session/close").json() == {"is_open": False, "expired": [str(day.id)]}
    expired = client.get_order_by_id(day.id)
    assert expired.status == OrderStatus.EXPIRED and expired.expired_at is not None
    assert expired.filled_qty == "0" and expired.canceled_at is None
    assert client.get_order_by_id(gtc.id).status == OrderStatus.NEW  # gtc survives the close
    assert D(client.get_account().buying_power) == cash - 91  # the day order's hold is released
    clock = client.get_clock()
    assert clock.is_open is False and clock.timestamp < clock.next_open < clock.next_close

    sim.quote("AAPL", "88", "10", "89", "10")  # crosses the resting gtc: no stock matching while closed
    queued_day = client.submit_order(limit(2, 95, TimeInForce.DAY))
    queued_market = client.submit_order(market(1))
    assert (queued_day.status, queued_market.status) == (OrderStatus.ACCEPTED, OrderStatus.ACCEPTED)
    crypto = client.submit_order(market(0.5, TimeInForce.GTC, "BTC/USD"))  # crypto trades 24/7
    assert crypto.status == OrderStatus.NEW
    assert client.get_order_by_id(crypto.id).status == OrderStatus.FILLED
    opg = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "opg"}
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    refused = requests.post(sim.base_url + "/v2/orders", json=opg, headers=headers, timeout=5)
    assert refused.status_code == 422 and "opg" in refused.json()["message"]
    assert sim_post(sim, "/sim/session/close").json() == {"is_open": False, "expired": []}

    opened = sim_post(sim, "/sim/session/open").json()
    assert opened == {"is_open": True, "released": [str(queued_day.id), str(queued_market.id)]}
    clock = client.get_clock()
    assert clock.is_open is True and clock.timestamp < clock.next_close < clock.next_open
    for order, qty in ((gtc, "1"), (queued_day, "2"), (queued_market, "1")):
        done = client.get_order_by_id(order.id)
        assert (done.status, done.filled_qty, D(done.filled_avg_price)) == (OrderStatus.FILLED, qty, 89)

    got = updates.take(12)
    assert by_order(got) == {
        str(day.id): ["new", "expired"],
        str(gtc.id): ["new", "fill"],
        str(queued_day.id): ["accepted", "new", "fill"],
        str(queued_market.id): ["accepted", "new", "fill"],
        str(crypto.id): ["new", "fill"],
    }
    seen = [(str(u.order.id), u.event) for u in got]
    # the order that rested through the close matches before the queued ones go live
    assert seen.index((str(gtc.id), "fill")) < seen.index((str(queued_day.id), "new"))
    expired_update = next(u for u in got if u.event == "expired")
    assert expired_update.order.status == OrderStatus.EXPIRED and expired_update.order.expired_at is not None


def test_injected_rejections_are_accepted_then_rejected_on_the_stream(venue: VenueFactory) -> None:
    sim, client, updates = venue()
    sim.quote("AAPL", "100", "10", "100.5", "10")
    armed = sim_post(sim, "/sim/faults/reject", {"count": 2, "reason": "symbol halted"})
    assert armed.json() == {"count": 2, "reason": "symbol halted"}
    assert sim_post(sim, "/sim/faults/reject", {"count": -1}).status_code == 422

    first = client.submit_order(limit(3, 99))
    second = client.submit_order(market(1))
    assert (first.status, second.status) == (OrderStatus.PENDING_NEW, OrderStatus.PENDING_NEW)
    got = updates.take(4)
    assert by_order(got) == {
        str(first.id): ["pending_new", "rejected"],
        str(second.id): ["pending_new", "rejected"],
    }
    for u in got:
        if u.event == "rejected":
            assert u.order.status == OrderStatus.REJECTED and u.order.failed_at is not None
    for order in (first, second):
        after = client.get_order_by_id(order.id)
        assert after.status == OrderStatus.REJECTED and after.failed_at is not None
        assert after.filled_qty == "0" and after.filled_at is None
    assert D(client.get_account().buying_power) == sim.cfg.starting_cash  # holds released
    assert client.get_all_positions() == []

    third = client.submit_order(limit(1, 99))  # the fault is used up
    assert third.status == OrderStatus.NEW
    assert [(u.event, str(u.order.id)) for u in updates.take(1)] == [("new", str(third.id))]


def test_ack_delay_pending_new_replace_cancel_in_order(venue: VenueFactory) -> None:
    sim, client, updates = venue(ack_delay_ms=50)
    sim.quote("AAPL", "100", "10", "100.5", "10")
    first = client.submit_order(limit(2, 99))
    assert first.status == OrderStatus.PENDING_NEW
    pending, new = updates.take(2)
    assert (pending.event, new.event) == ("pending_new", "new")
    assert (pending.order.status, new.order.status) == (OrderStatus.PENDING_NEW, OrderStatus.NEW)
    assert client.get_order_by_id(first.id).status == OrderStatus.NEW

    second = client.replace_order_by_id(first.id, ReplaceOrderRequest(limit_price=98))
    assert second.status == OrderStatus.PENDING_NEW and second.replaces == first.id
    events = updates.take(3)
    assert [(u.event, u.order.id) for u in events] == [
        ("pending_replace", first.id),
        ("replaced", first.id),
        ("new", second.id),
    ]
    assert events[0].order.status == OrderStatus.PENDING_REPLACE
    assert events[1].order.replaced_by == second.id and events[1].order.replaced_at is not None

    client.cancel_order_by_id(second.id)
    events = updates.take(2)
    assert [(u.event, u.order.id, u.order.status) for u in events] == [
        ("pending_cancel", second.id, OrderStatus.PENDING_CANCEL),
        ("canceled", second.id, OrderStatus.CANCELED),
    ]
    assert client.get_order_by_id(second.id).canceled_at is not None

    bought = client.submit_order(market(1))
    assert bought.status == OrderStatus.PENDING_NEW and bought.filled_qty == "0"  # no fill before `new`
    events = updates.take(3)
    assert [u.event for u in events] == ["pending_new", "new", "fill"]
    assert D(events[2].price) == D("100.5") and events[2].order.status == OrderStatus.FILLED


def test_fills_racing_pending_cancel_and_replace(venue: VenueFactory) -> None:
    sim, client, updates = venue(ack_delay_ms=50)
    held = HeldSteps()
    sim.exchange.scheduler = held  # the test decides when the delay is over: no race with the clock
    sim.quote("AAPL", "100", "10", "100.5", "10")

    raced = client.submit_order(limit(5, 99))
    assert sim.call(held.release) == 1
    client.cancel_order_by_id(raced.id)
    sim.quote("AAPL", "98", "10", "99", "3")  # partial fill while the cancel is pending
    sim.quote("AAPL", "98", "10", "99", "10")  # the rest: the fill wins the race
    assert sim.call(held.release) == 1  # the cancel lands too late and changes nothing
    filled = client.get_order_by_id(raced.id)
    assert (filled.status, filled.filled_qty, filled.canceled_at) == (OrderStatus.FILLED, "5", None)

    calm = client.submit_order(limit(1, 90))
    sim.call(held.release)
    client.cancel_order_by_id(calm.id)
    sim.call(held.release)
    assert client.get_order_by_id(calm.id).status == OrderStatus.CANCELED

    replaced = client.submit_order(limit(2, 97))
    sim.call(held.release)
    replacement = client.replace_order_by_id(replaced.id, ReplaceOrderRequest(limit_price=96))
    sim.quote("AAPL", "96", "10", "97", "10")  # the old order fills before the replace takes effect
    sim.call(held.release)
    assert client.get_order_by_id(replaced.id).status == OrderStatus.FILLED
    refused = client.get_order_by_id(replacement.id)
    assert refused.status == OrderStatus.REJECTED and refused.failed_at is not None

    got = updates.take(14)
    assert by_order(got) == {
        str(raced.id): ["pending_new", "new", "pending_cancel", "partial_fill", "fill"],
        str(calm.id): ["pending_new", "new", "pending_cancel", "canceled"],
        str(replaced.id): ["pending_new", "new", "pending_replace", "fill"],
        str(replacement.id): ["rejected"],
    }
    partial = next(u for u in got if u.event == "partial_fill")
    assert (partial.qty, partial.order.status, partial.order.filled_qty) == (
        3,
        OrderStatus.PENDING_CANCEL,
        "3",
    )
