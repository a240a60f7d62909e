"""The strategy API driven through the StrategyHost (what the signal service runs), no sockets."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from common import wire
from common.config import ConfigError, StrategyConfig
from common.fixed import to_fixed
from common.ids import IntentIds
from services.signal.host import StrategyHost
from services.signal.registry import build_strategies, resolve
from services.signal.strategies.ma_cross import MovingAverageCross
from services.signal.strategies.probe import ProbeStrategy
from services.signal.strategy import Intents, Strategy, StrategyContext

MAX_AGE_NS = 1_000_000_000
_clock = itertools.count(1_000_000)


def ctx() -> StrategyContext:
    return StrategyContext(ids=IntentIds("run"), intent_max_age_ns=MAX_AGE_NS, clock_ns=lambda: next(_clock))


def f(x: str) -> int:
    return to_fixed(x)


def quote(symbol: str, bid: str, ask: str, ts: int = 5) -> wire.Quote:
    return wire.Quote(
        symbol=symbol, bid_px=f(bid), bid_sz=f("1"), ask_px=f(ask), ask_sz=f("1"), exch_ns=ts, recv_ns=ts + 1
    )


def build(*cfgs: dict[str, Any]) -> StrategyHost:
    return StrategyHost(build_strategies([StrategyConfig(**c) for c in cfgs], ctx()))


def approve(host: StrategyHost, intent: wire.OrderIntent) -> str:
    coid = "zt-" + intent.intent_id
    d = wire.RiskDecision(
        intent_id=intent.intent_id, approved=True, reason="ok", detail="", client_order_id=coid, risk_ns=1
    )
    assert host.on_decision(intent, d) == []
    return coid


def fill_and_close(host: StrategyHost, intent: wire.OrderIntent, coid: str) -> list[wire.OrderIntent]:
    fill = wire.Fill(
        seq=1, client_order_id=coid, venue_order_id="v", exec_id="e", strategy=intent.strategy, symbol=intent.symbol,
        side=intent.side, qty=intent.qty, px=intent.limit_px, cum_qty=intent.qty, position_qty=None, venue_ns=1, recv_ns=2,
    )  # fmt: skip
    out = host.on_order_event(fill)
    done = wire.OrderUpdate(
        seq=2, client_order_id=coid, venue_order_id="v", strategy=intent.strategy, symbol=intent.symbol, side=intent.side,
        status="filled", event="fill", qty=intent.qty, filled_qty=intent.qty, filled_avg_px=intent.limit_px,
        limit_px=intent.limit_px, reason="", venue_ns=1, recv_ns=2,
    )  # fmt: skip
    return out + host.on_order_event(done)


# ---- probe ------------------------------------------------------------------------------------


def test_probe_buys_one_at_the_ask_for_every_quote() -> None:
    host = build({"name": "p", "kind": "probe", "symbols": ["AAPL"]})
    [intent] = host.on_market([quote("AAPL", "189.99", "190.01", ts=42)])
    assert (intent.strategy, intent.symbol, intent.side, intent.order_type, intent.tif) == (
        "p",
        "AAPL",
        "buy",
        "limit",
        "day",
    )
    assert intent.qty == f("1") and intent.limit_px == f("190.01")
    assert (intent.tick_exch_ns, intent.tick_recv_ns) == (42, 43)
    assert intent.deadline_ns == intent.signal_ns + MAX_AGE_NS
    assert intent.intent_id.startswith("run.")
    assert host.on_market([quote("MSFT", "1", "2")]) == []  # not its symbol
    second = host.on_market([quote("AAPL", "1", "2"), quote("AAPL", "3", "4")])
    assert [i.limit_px for i in second] == [f("2"), f("4")]
    assert len({i.intent_id for i in [intent, *second]}) == 3


def test_probe_params_qty_and_max_orders() -> None:
    host = build(
        {"name": "p", "kind": "probe", "symbols": ["AAPL"], "params": {"qty": "0.5", "max_orders": 2}}
    )
    out = host.on_market([quote("AAPL", "1", "2")] * 5)
    assert [i.qty for i in out] == [f("0.5"), f("0.5")]


# ---- moving-average crossover ----------------------------------------------------------------


def test_ma_cross_scripted_sequence() -> None:
    host = build(
        {"name": "ma", "kind": "ma_cross", "symbols": ["X"], "params": {"fast": 2, "slow": 4, "qty": 10}}
    )
    strat = host.slots["ma"].strategy
    assert isinstance(strat, MovingAverageCross)

    def mid(m: str) -> list[wire.OrderIntent]:
        d = f(m)
        return host.on_market(
            [
                wire.Quote(
                    symbol="X",
                    bid_px=d - f("0.01"),
                    bid_sz=1,
                    ask_px=d + f("0.01"),
                    ask_sz=1,
                    exch_ns=1,
                    recv_ns=2,
                )
            ]
        )

    assert mid("10") == [] and mid("10") == [] and mid("10") == []  # slow window not full yet
    assert mid("10") == []  # averages equal: hold (flat)
    [buy] = mid("12")  # fast 11 > slow 10.5: go long 10 with a marketable limit at the ask
    assert (buy.side, buy.qty, buy.limit_px) == ("buy", f("10"), f("12.01"))
    assert mid("13") == []  # still long-biased but the order is working
    coid = approve(host, buy)
    assert mid("14") == []  # open order: still nothing new
    assert fill_and_close(host, buy, coid) == []
    assert strat.position("X") == f("10")
    assert mid("15") == []  # long and target is long: nothing to do
    [sell] = mid("9")  # fast (15+9)/2 = 12 < slow (13+14+15+9)/4 = 12.75: target flat
    assert strat.has_working_orders("X")
    assert (sell.side, sell.qty, sell.limit_px) == ("sell", f("10"), f("8.99"))  # to flat, not short


def test_ma_cross_goes_short_when_allowed_and_hears_rejections() -> None:
    host = build(
        {"name": "ma", "kind": "ma_cross", "params": {"fast": 1, "slow": 2, "qty": 3, "allow_short": True}}
    )
    assert host.on_market([quote("Y", "9.99", "10.01")]) == []
    [sell] = host.on_market([quote("Y", "8.99", "9.01")])
    assert (sell.side, sell.qty) == ("sell", f("3"))
    d = wire.RiskDecision(
        intent_id=sell.intent_id,
        approved=False,
        reason="risk_timeout",
        detail="",
        client_order_id="",
        risk_ns=0,
    )
    assert host.on_decision(sell, d) == []
    assert not host.slots["ma"].strategy.has_working_orders("Y")  # free to try again
    [again] = host.on_market([quote("Y", "7.99", "8.01")])
    assert again.side == "sell"


@pytest.mark.parametrize(
    "params",
    [
        {"fast": 5, "slow": 5},
        {"fast": 0},
        {"qty": "-1"},
        {"source": "book"},
        {"allow_short": "yes"},
        {"speed": 1},
    ],
)
def test_ma_cross_bad_params_are_config_errors(params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"signal\.strategies\[ma\]"):
        build({"name": "ma", "kind": "ma_cross", "params": params})


# ---- isolation, routing, loading -------------------------------------------------------------


class Exploding(Strategy):
    def on_quote(self, quote: wire.Quote) -> Intents:
        raise RuntimeError("boom")


class Echo(Strategy):
    """Buys at the bid on quotes; records every callback it gets."""

    def configure(self, params: dict[str, Any]) -> None:
        self.seen: list[str] = []
        self.rejections: list[str] = []

    def on_quote(self, quote: wire.Quote) -> Intents:
        return [self.buy(quote.symbol, f("1"), limit_px=quote.bid_px)]

    def on_order_update(self, update: wire.OrderUpdate) -> Intents:
        self.seen.append(update.client_order_id)
        return None

    def on_rejected(self, intent: wire.OrderIntent, decision: wire.RiskDecision) -> Intents:
        self.rejections.append(decision.reason)
        return None


class WrongReturn(Strategy):
    def on_quote(self, quote: wire.Quote) -> Intents:
        return "buy!"  # type: ignore[return-value]


def test_a_raising_strategy_is_disabled_and_the_others_keep_working() -> None:
    host = build(
        {"name": "bad", "kind": f"{__name__}:Exploding"},
        {"name": "wrong", "kind": f"{__name__}:WrongReturn"},
        {"name": "good", "kind": f"{__name__}:Echo"},
    )
    first = host.on_market([quote("AAPL", "1", "2")])
    second = host.on_market([quote("AAPL", "3", "4")])
    assert [i.strategy for i in first + second] == ["good", "good"]
    status = host.status()
    assert status["bad"]["enabled"] is False and "RuntimeError: boom" in status["bad"]["error"]
    assert (
        status["wrong"]["enabled"] is False
        and "must return a list of OrderIntent" in status["wrong"]["error"]
    )
    assert status["good"] == {**status["good"], "enabled": True, "error": "", "intents": 2, "in_flight": 2}


def test_order_events_reach_only_the_strategy_that_created_the_order() -> None:
    host = build({"name": "a", "kind": f"{__name__}:Echo"}, {"name": "b", "kind": f"{__name__}:Echo"})
    a, b = host.slots["a"].strategy, host.slots["b"].strategy
    assert isinstance(a, Echo) and isinstance(b, Echo)
    intents = host.on_market([quote("AAPL", "1", "2")])
    [ia] = [i for i in intents if i.strategy == "a"]
    coid = approve(host, ia)
    fill_and_close(host, ia, coid)
    assert a.seen == [coid] and b.seen == []
    assert a.position("AAPL") == f("1") and b.position("AAPL") == 0
    assert a.open_orders == {} and a.in_flight == {}
    [ib] = [i for i in intents if i.strategy == "b"]
    host.on_decision(
        ib,
        wire.RiskDecision(
            intent_id=ib.intent_id,
            approved=False,
            reason="max_position",
            detail="",
            client_order_id="",
            risk_ns=1,
        ),
    )
    assert b.rejections == ["max_position"] and a.rejections == []


def test_module_class_kind_loads() -> None:
    assert resolve(f"{__name__}:Echo") is Echo
    assert resolve("probe") is ProbeStrategy


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nope", r"unknown strategy kind 'nope'; known kinds: \['ladder', 'ma_cross', 'probe'"),
        ("no.such.module:X", "cannot import module 'no.such.module'"),
        (f"{__name__}:Missing", "has no attribute 'Missing'"),
        (f"{__name__}:quote", "is not a subclass of"),
    ],
)
def test_bad_kind_is_a_clear_config_error(kind: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build({"name": "s1", "kind": kind})
    assert "signal.strategies[s1]" in str(err.value)


def test_helpers_refuse_float_quantities() -> None:
    s = Echo("e", [], {}, ctx())
    with pytest.raises(TypeError, match="int nanos"):
        s.buy("AAPL", 1.5)  # type: ignore[arg-type]
    assert s.sell("AAPL", f("2")).order_type == "market"
