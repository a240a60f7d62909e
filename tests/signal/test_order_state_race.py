"""Signal's view of a strategy's orders follows execution's sequenced events: however risk's answer
and the order's events interleave, a finished order is never left open."""

from __future__ import annotations

from typing import Any

from common import wire
from common.fixed import to_fixed
from common.ids import IntentIds, client_order_id
from services.signal.host import StrategyHost
from services.signal.strategy import Intents, Strategy, StrategyContext

PREFIX = "zt"


class OneShot(Strategy):
    """Buys once per quote when nothing of its own is in flight or working on the symbol."""

    kind = "one_shot"

    def on_quote(self, quote: wire.Quote) -> Intents:
        if self.has_working_orders(quote.symbol):
            return None
        return [self.buy(quote.symbol, to_fixed(1), limit_px=quote.ask_px)]


def _host() -> tuple[StrategyHost, OneShot]:
    ctx = StrategyContext(ids=IntentIds(), intent_max_age_ns=10**9, clock_ns=lambda: 1)
    strategy = OneShot("s1", ["AAPL"], {}, ctx)
    return StrategyHost([strategy], PREFIX), strategy


def _quote() -> wire.Quote:
    return wire.Quote(symbol="AAPL", bid_px=to_fixed(99), bid_sz=1, ask_px=to_fixed(100), ask_sz=1, exch_ns=1,
                      recv_ns=1)  # fmt: skip


def _update(coid: str, status: str, seq: int) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=seq, client_order_id=coid, venue_order_id="v", strategy="s1", symbol="AAPL", side="buy",
        status=status, event=status, qty=to_fixed(1), filled_qty=to_fixed(1) if status == "filled" else 0,
        filled_avg_px=0, limit_px=to_fixed(100), reason="", venue_ns=1, recv_ns=1,
    )  # fmt: skip


def _approve(intent: wire.OrderIntent, coid: str) -> wire.RiskDecision:
    return wire.RiskDecision(intent_id=intent.intent_id, approved=True, reason="ok", detail="",
                             client_order_id=coid, risk_ns=1)  # fmt: skip


def _sent(host: StrategyHost) -> tuple[wire.OrderIntent, str]:
    [intent] = host.on_market([_quote()])
    return intent, client_order_id(PREFIX, intent.intent_id)


def test_terminal_event_before_the_approval_leaves_no_open_order() -> None:
    host, strat = _host()
    intent, coid = _sent(host)
    host.on_order_event(_update(coid, "new", 1))
    host.on_order_event(_update(coid, "filled", 2))  # the whole life of the order, before risk's answer
    host.on_decision(intent, _approve(intent, coid))
    assert strat.open_orders == {} and strat.in_flight == {}
    assert len(host.on_market([_quote()])) == 1  # the strategy trades the symbol again


def test_approval_then_events_open_and_close_the_order() -> None:
    host, strat = _host()
    intent, coid = _sent(host)
    assert intent.intent_id in strat.in_flight
    host.on_decision(intent, _approve(intent, coid))
    assert set(strat.open_orders) == {coid} and strat.in_flight == {}
    assert host.on_market([_quote()]) == []  # working: no second order
    host.on_order_event(_update(coid, "new", 1))
    host.on_order_event(_update(coid, "canceled", 2))
    assert strat.open_orders == {}


def test_an_undecided_intent_is_opened_by_its_events_and_closed_by_them() -> None:
    host, strat = _host()
    intent, coid = _sent(host)
    timeout: Any = wire.RiskDecision(intent_id=intent.intent_id, approved=False, reason="risk_timeout",
                                     detail="", client_order_id="", risk_ns=0)  # fmt: skip
    host.on_decision(intent, timeout)
    assert strat.open_orders == {}
    host.on_order_event(_update(coid, "new", 1))  # it did become an order
    assert set(strat.open_orders) == {coid}
    host.on_order_event(_update(coid, "expired", 2))
    assert strat.open_orders == {}


def test_a_rejected_intent_leaves_nothing_behind() -> None:
    host, strat = _host()
    intent, _ = _sent(host)
    no = wire.RiskDecision(intent_id=intent.intent_id, approved=False, reason="max_order_qty", detail="",
                           client_order_id="", risk_ns=1)  # fmt: skip
    host.on_decision(intent, no)
    assert strat.open_orders == {} and strat.in_flight == {}
    assert len(host.on_market([_quote()])) == 1  # free to trade again


def test_after_a_restart_the_replayed_events_give_back_positions_and_working_orders() -> None:
    host, strat = _host()  # a fresh signal: it sent nothing, execution replays what happened before
    fill = wire.Fill(seq=2, client_order_id="zt-old.1", venue_order_id="v1", exec_id="e", strategy="s1",
                     symbol="AAPL", side="buy", qty=to_fixed(3), px=to_fixed(100), cum_qty=to_fixed(3),
                     position_qty=None, venue_ns=1, recv_ns=1)  # fmt: skip
    host.on_order_event(_update("zt-old.1", "filled", 1))
    host.on_order_event(fill)
    host.on_order_event(_update("zt-old.2", "new", 3))
    assert strat.positions == {"AAPL": to_fixed(3)}
    assert set(strat.open_orders) == {"zt-old.2"} and strat.open_orders["zt-old.2"].limit_px == to_fixed(100)
    assert host.on_market([_quote()]) == []  # it knows it has an order working
    host.on_order_event(_update("zt-old.2", "canceled", 4))
    assert strat.open_orders == {}
