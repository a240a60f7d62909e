"""Life-cycle corner cases on the Exchange itself, with delayed steps held and released by the test."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simulator.errors import ApiError
from simulator.exchange import Exchange
from simulator.models import OrderBody, ReplaceBody
from simulator.orders import SimOrder
from tests.kit.trade_updates import HeldSteps
from tests.kit.trading_venue import make_cfg

D = Decimal


class Venue:
    def __init__(self, ack_delay_ms: float = 0) -> None:
        self.held = HeldSteps()
        self.ex = Exchange(make_cfg(ack_delay_ms=ack_delay_ms, starting_cash=D(10_000)), schedule=self.held)
        self.events: list[dict[str, Any]] = []
        self.ex.add_listener(self.events.append)
        self.ex.on_quote("AAPL", D(100), D(10), D("100.5"), D(10), 0)

    def submit(self, **kw: Any) -> SimOrder:
        body = {"symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "gtc", "qty": 1, **kw}
        return self.ex.submit(OrderBody.model_validate(body))

    def quote(self, bid: str, ask: str, size: str = "10") -> None:
        self.ex.on_quote("AAPL", D(bid), D(size), D(ask), D(size), 0)

    def of(self, order: SimOrder) -> list[str]:
        return [e["event"] for e in self.events if e["order"]["id"] == order.id]


def test_close_expires_a_day_bracket_with_its_legs_and_keeps_gtc_and_extended_hours_rules() -> None:
    v = Venue()
    legs = {"take_profit": {"limit_price": 120}, "stop_loss": {"stop_price": 80}}
    day = v.submit(limit_price=90, time_in_force="day", order_class="bracket", **legs)
    gtc = v.submit(limit_price=90, order_class="bracket", **legs)
    assert v.ex.buying_power() == D(10_000) - 2 * 90
    expired = v.ex.close_session()
    assert expired == [day, *day.legs]
    assert [o.status for o in expired] == ["expired"] * 3 and all(o.expired_ns for o in expired)
    assert [e["event"] for e in v.events[-3:]] == ["expired"] * 3
    assert gtc.status == "new" and [leg.status for leg in gtc.legs] == ["held", "held"]
    assert v.ex.buying_power() == D(10_000) - 90

    late = v.submit(limit_price=101, time_in_force="day", extended_hours=True)  # after-hours trading
    assert late.status == "filled" and v.of(late) == ["new", "fill"]
    evening = v.submit(limit_price=99, time_in_force="day", extended_hours=True)
    assert evening.status == "new"
    assert v.ex.open_session() == [] and v.ex.close_session() == [evening]


def test_queued_orders_can_be_canceled_or_replaced_before_the_open() -> None:
    v = Venue()
    v.ex.close_session()
    dropped = v.submit(limit_price=99)
    moved = v.submit(limit_price=98, time_in_force="day")
    assert (dropped.status, moved.status) == ("accepted", "accepted")
    v.ex.cancel(dropped.id)
    successor = v.ex.replace(moved.id, ReplaceBody(limit_price=D(101)))
    assert (moved.status, successor.status) == ("replaced", "accepted")
    assert v.ex.open_session() == [successor]
    assert v.of(dropped) == ["accepted", "canceled"]
    assert v.of(moved) == ["accepted", "replaced"]
    assert v.of(successor) == ["accepted", "new", "fill"]


def test_pending_requests_refuse_conflicting_ones() -> None:
    v = Venue(ack_delay_ms=50)
    order = v.submit(limit_price=90)
    v.held.release()
    v.ex.cancel(order.id)
    v.ex.cancel(order.id)  # already pending: no second request
    with pytest.raises(ApiError, match="unable to replace"):
        v.ex.replace(order.id, ReplaceBody(limit_price=D(91)))
    v.held.release()
    assert v.of(order) == ["pending_new", "new", "pending_cancel", "canceled"]
    assert order.cancel_requested_ns is not None and order.canceled_ns is not None

    other = v.submit(limit_price=90)
    v.held.release()
    successor = v.ex.replace(other.id, ReplaceBody(limit_price=D(91)))
    for target in (other, successor):
        with pytest.raises(ApiError, match="pending replace") as refused:
            v.ex.cancel(target.id)
        assert refused.value.status == 422
    with pytest.raises(ApiError, match="unable to replace"):
        v.ex.replace(successor.id, ReplaceBody(limit_price=D(92)))
    assert v.ex.cancel_all()[0]["status"] == 422
    v.held.release()
    assert (other.status, successor.status) == ("replaced", "new")


def test_cancel_before_the_ack_skips_new_and_partial_fill_during_replace_keeps_the_original_qty() -> None:
    v = Venue(ack_delay_ms=50)
    unborn = v.submit(limit_price=99)
    v.ex.cancel(unborn.id)
    v.held.release()
    assert v.of(unborn) == ["pending_new", "pending_cancel", "canceled"]

    old = v.submit(limit_price=99, qty=5)
    v.held.release()
    successor = v.ex.replace(old.id, ReplaceBody(limit_price=D(98)))
    assert v.ex.buying_power() == D(10_000) - 5 * 99  # the replacement holds nothing until it is live
    v.quote("98", "99", size="2")
    assert (old.status, old.filled_qty) == ("pending_replace", D(2))
    v.held.release()
    assert v.of(old) == ["pending_new", "new", "pending_replace", "partial_fill", "replaced"]
    assert (successor.status, successor.qty, successor.replaces) == ("new", D(5), old.id)


def test_reset_drops_delayed_steps_and_async_rejection_rejects_the_group_with_its_reason() -> None:
    v = Venue(ack_delay_ms=50)
    v.submit(limit_price=99)
    v.ex.reset()
    assert v.held.release() == 1 and [e["event"] for e in v.events] == ["pending_new"]

    v = Venue()
    v.ex.arm_rejections(1, "halted")
    legs = {"take_profit": {"limit_price": 120}, "stop_loss": {"stop_price": 80}}
    doomed = v.submit(limit_price=99, order_class="bracket", **legs)
    assert doomed.status == "pending_new" and v.ex.rejections_armed == 0
    v.held.release()
    rejected = [e for e in v.events if e["event"] == "rejected"]
    assert [e["order"]["id"] for e in rejected] == [doomed.id, *(leg.id for leg in doomed.legs)]
    assert {e["reason"] for e in rejected} == {"halted"}
    assert all(e["order"]["failed_at"] for e in rejected) and v.ex.buying_power() == D(10_000)
    assert v.submit(limit_price=90).status == "new"
