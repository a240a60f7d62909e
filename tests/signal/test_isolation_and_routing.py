"""Strategies that return garbage are disabled before anything is sent; order events reach the
strategy that owns the order even when execution does not name it; an intent whose risk answer
timed out is tracked when it turns out to be an order; the probe's max_orders counts such orders."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from common import wire
from common.config import StrategyConfig
from services.signal.host import StrategyHost
from services.signal.registry import build_strategies
from services.signal.strategy import Intents, Strategy
from services.signal.validation import MAX_INTENTS_PER_CALLBACK
from tests.signal.test_strategy_api import ctx, f, quote

PREFIX = "zt"


class Garbage(Strategy):
    """Returns whatever ``params.mode`` says on every quote."""

    def configure(self, params: dict[str, Any]) -> None:
        self.mode = params.pop("mode")
        super().configure(params)

    def on_quote(self, q: wire.Quote) -> Intents:
        good = self.buy(q.symbol, f("1"), limit_px=q.ask_px)
        bad: dict[str, Any] = {
            "float_qty": [msgspec.structs.replace(good, qty=1.5)],
            "bool_qty": [msgspec.structs.replace(good, qty=True)],
            "huge_qty": [msgspec.structs.replace(good, qty=2**70)],
            "negative_px": [msgspec.structs.replace(good, limit_px=-1)],
            "float_deadline": [msgspec.structs.replace(good, deadline_ns=float(good.deadline_ns))],
            "bool_stop_px": [msgspec.structs.replace(good, stop_px=True)],
            "huge_tick_ns": [msgspec.structs.replace(good, tick_recv_ns=2**64)],
            "other_strategy": [msgspec.structs.replace(good, strategy="honest")],
            "bad_side": [msgspec.structs.replace(good, side="short")],
            "reused_id": [good, good],
            "too_many": [
                self.buy(q.symbol, f("1"), limit_px=q.ask_px) for _ in range(MAX_INTENTS_PER_CALLBACK + 1)
            ],
            "tuple": (good,),
            "not_an_intent": [{"qty": 1}],
        }
        return bad[self.mode]  # type: ignore[no-any-return]


def _host(*cfgs: dict[str, Any]) -> StrategyHost:
    return StrategyHost(build_strategies([StrategyConfig(**c) for c in cfgs], ctx()), PREFIX)


@pytest.mark.parametrize(
    "kind",
    ["float_qty", "bool_qty", "huge_qty", "negative_px", "float_deadline", "bool_stop_px", "huge_tick_ns",
     "other_strategy", "bad_side", "reused_id", "too_many",
     "tuple", "not_an_intent"],
)  # fmt: skip
def test_a_strategy_returning_garbage_is_disabled_and_sends_nothing(kind: str) -> None:
    host = _host(
        {"name": "bad", "kind": f"{__name__}:Garbage", "params": {"mode": kind}},
        {"name": "honest", "kind": "probe", "symbols": ["AAPL"]},
    )
    out = host.on_market([quote("AAPL", "99", "100")])
    assert [i.strategy for i in out] == ["honest"]
    assert host.slots["bad"].enabled is False and host.slots["bad"].error
    assert host.slots["bad"].strategy.in_flight == {}
    assert host.slots["honest"].enabled is True


def _decision(intent: wire.OrderIntent, approved: bool, reason: str) -> wire.RiskDecision:
    coid = f"{PREFIX}-{intent.intent_id}" if approved else ""
    return wire.RiskDecision(
        intent_id=intent.intent_id,
        approved=approved,
        reason=reason,
        detail="",
        client_order_id=coid,
        risk_ns=1,
    )


def _update(coid: str, status: str, strategy: str = "") -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=1, client_order_id=coid, venue_order_id="v", strategy=strategy, symbol="AAPL", side="buy",
        status=status, event=status, qty=f("1"), filled_qty=0, filled_avg_px=0, limit_px=f("100"), reason="",
        venue_ns=1, recv_ns=2,
    )  # fmt: skip


def test_order_events_without_a_strategy_name_reach_the_owner() -> None:
    """After an execution restart its events for adopted orders carry strategy="": the owner must
    still hear that its order ended, or it waits on a working order forever."""
    host = _host({"name": "ma", "kind": "ma_cross", "symbols": ["AAPL"], "params": {"fast": 2, "slow": 3}})
    for px in ("100", "101", "102"):
        out = host.on_market([quote("AAPL", px, str(int(px) + 1))])
    (intent,) = out
    host.on_decision(intent, _decision(intent, True, "ok"))
    strategy = host.slots["ma"].strategy
    assert strategy.has_working_orders("AAPL")
    host.on_order_event(_update(f"{PREFIX}-{intent.intent_id}", "canceled", strategy=""))
    assert not strategy.has_working_orders("AAPL")


def test_an_intent_whose_answer_timed_out_is_working_once_its_order_shows_up() -> None:
    host = _host({"name": "ma", "kind": "ma_cross", "symbols": ["AAPL"], "params": {"fast": 2, "slow": 3}})
    for px in ("100", "101", "102"):
        out = host.on_market([quote("AAPL", px, str(int(px) + 1))])
    (intent,) = out
    host.on_decision(intent, _decision(intent, False, "risk_timeout"))
    strategy = host.slots["ma"].strategy
    assert not strategy.has_working_orders("AAPL")
    coid = f"{PREFIX}-{intent.intent_id}"
    host.on_order_event(_update(coid, "new", strategy="ma"))  # risk had approved it after all
    assert strategy.has_working_orders("AAPL")
    assert host.on_market([quote("AAPL", "103", "104")]) == []  # no second order on top
    host.on_order_event(_update(coid, "canceled", strategy="ma"))
    assert not strategy.has_working_orders("AAPL")


def test_probe_max_orders_counts_orders_risk_may_have_sent_on() -> None:
    host = _host({"name": "p", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": 1}})
    (first,) = host.on_market([quote("AAPL", "99", "100")])
    host.on_decision(first, _decision(first, False, "max_position"))  # a real rejection frees the slot
    (second,) = host.on_market([quote("AAPL", "99", "100")])
    host.on_decision(second, _decision(second, False, "risk_timeout"))  # may be at the venue
    assert host.on_market([quote("AAPL", "99", "100")]) == []
