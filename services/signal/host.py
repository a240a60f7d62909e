"""Runs strategies: routes events to them, isolates failures, keeps their order bookkeeping.

No sockets here (the service wires it to ZeroMQ), so it can be driven directly in tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from common import wire
from common.enums import OrderType
from common.ids import client_order_id
from common.log import kv
from common.order_events import TERMINAL_STATUSES
from services.signal.metrics import STRATEGY_ERRORS
from services.signal.strategy import Strategy
from services.signal.validation import InvalidIntents, check_intents

log = logging.getLogger(__name__)

_MARKET_CALLBACK: dict[type, str] = {
    wire.Quote: "on_quote",
    wire.Trade: "on_trade",
    wire.Bar: "on_bar",
    wire.Book: "on_book",
}


@dataclass
class StrategySlot:
    strategy: Strategy
    enabled: bool = True
    error: str = ""
    intents: int = 0


# Risk reported these without deciding: the intent may still have become an order.
UNDECIDED = frozenset({"risk_timeout", "risk_error"})
# Orders whose outcome is still open (sent, approved or undecided, no terminal event yet) and orders
# seen finished: bounded, oldest forgotten first.
MAX_TRACKED = 10_000


class StrategyHost:
    def __init__(self, strategies: list[Strategy], client_order_id_prefix: str = "") -> None:
        self.slots: dict[str, StrategySlot] = {s.name: StrategySlot(s) for s in strategies}
        self._prefix = client_order_id_prefix
        # client_order_id -> (owner, intent) from the moment the intent is sent until its order is
        # finished. Order events are routed by it (execution does not always know the strategy),
        # and they alone decide whether the order is working: risk's approval only marks it working
        # until execution's sequenced events say otherwise.
        self._sent: dict[str, tuple[StrategySlot, wire.OrderIntent]] = {}
        # client_order_id -> owner, for orders that reached us only by their events (after a restart)
        self._owner: dict[str, StrategySlot] = {}
        # orders execution reported finished: an approval that arrives after the end is not reopened
        self._finished: dict[str, None] = {}
        self._by_symbol: dict[str, list[StrategySlot]] = {}
        self._all_symbols: list[StrategySlot] = []
        for slot in self.slots.values():
            if slot.strategy.symbols:
                for sym in slot.strategy.symbols:
                    self._by_symbol.setdefault(sym, []).append(slot)
            else:
                self._all_symbols.append(slot)

    def market_symbols(self) -> list[str] | None:
        """The symbols the strategies trade; None when one of them takes every symbol."""
        return None if self._all_symbols else sorted(self._by_symbol)

    # ---- events in, intents out -------------------------------------------------------------

    def on_market(self, msgs: list[Any]) -> list[wire.OrderIntent]:
        out: list[wire.OrderIntent] = []
        for m in msgs:
            name = _MARKET_CALLBACK.get(type(m))
            if name is None:
                continue
            exch_ns = m.start_ns if isinstance(m, wire.Bar) else m.exch_ns
            for slot in (*self._by_symbol.get(m.symbol, ()), *self._all_symbols):
                if slot.enabled:
                    self._call(slot, name, exch_ns, m.recv_ns, m, out=out)
        return out

    def load_snapshot(self, snap: wire.PositionsSnapshot) -> None:
        """Execution's state as of a seq (at start, and when its sequence starts over): each
        strategy's positions and working orders, as execution knows them, replace what the strategy
        had; an order sent since and not in it stays working until its events say otherwise."""
        books = {b.strategy: b for b in snap.strategies}
        for slot in self.slots.values():
            s = slot.strategy
            book = books.get(s.name)
            s.positions = {p.symbol: p.qty for p in (book.positions if book else ()) if p.qty}
            s.open_orders = {c: i for c, i in s.open_orders.items() if c in self._sent}
        for u in snap.open_orders:
            sent = self._sent.get(u.client_order_id)
            slot = sent[0] if sent else self.slots.get(u.strategy)
            if slot is None:
                continue
            slot.strategy.open_orders[u.client_order_id] = sent[1] if sent else _intent_of(u)
            if sent is None:
                _remember(self._owner, u.client_order_id, slot)

    def on_order_event(self, ev: wire.OrderUpdate | wire.Fill) -> list[wire.OrderIntent]:
        """Execution's sequenced events decide the order's state, whatever risk's answer said and
        whenever it arrives."""
        out: list[wire.OrderIntent] = []
        coid = ev.client_order_id
        sent = self._sent.get(coid)
        slot = sent[0] if sent else (self._owner.get(coid) or self.slots.get(ev.strategy))
        terminal = isinstance(ev, wire.OrderUpdate) and ev.status in TERMINAL_STATUSES
        if terminal:
            self._sent.pop(coid, None)
            self._owner.pop(coid, None)
            _remember(self._finished, coid, None)
        if slot is None:
            return out
        s = slot.strategy
        if sent is not None:
            s.in_flight.pop(sent[1].intent_id, None)
            if not terminal:
                s.open_orders[coid] = sent[1]  # working, as execution says
        elif not terminal and isinstance(ev, wire.OrderUpdate) and coid not in s.open_orders:
            # an order from before this signal started (replayed by execution): the strategy gets
            # its working order back, described by what execution knows of it
            s.open_orders[coid] = _intent_of(ev)
            _remember(self._owner, coid, slot)
        if terminal:
            s.open_orders.pop(coid, None)
        if not slot.enabled:
            return out
        if isinstance(ev, wire.Fill):
            signed = ev.qty if ev.side == "buy" else -ev.qty
            s.positions[ev.symbol] = s.positions.get(ev.symbol, 0) + signed
            self._call(slot, "on_fill", ev.venue_ns, ev.recv_ns, ev, out=out)
        else:
            self._call(slot, "on_order_update", ev.venue_ns, ev.recv_ns, ev, out=out)
        return out

    def on_timer(self, now_ns: int) -> list[wire.OrderIntent]:
        out: list[wire.OrderIntent] = []
        for slot in self.slots.values():
            if slot.enabled:
                self._call(slot, "on_timer", 0, now_ns, now_ns, out=out)
        return out

    def on_decision(self, intent: wire.OrderIntent, decision: wire.RiskDecision) -> list[wire.OrderIntent]:
        out: list[wire.OrderIntent] = []
        slot = self.slots.get(intent.strategy)
        if slot is None:
            return out
        s = slot.strategy
        s.in_flight.pop(intent.intent_id, None)
        coid = decision.client_order_id or self._coid(intent)
        if decision.approved:
            if coid not in self._finished:  # an order now exists; its events will say how it ends
                s.open_orders[coid] = intent
                if coid not in self._sent:
                    _remember(self._sent, coid, (slot, intent))
        elif decision.reason not in UNDECIDED:
            self._sent.pop(coid, None)  # decided: no order was created
        # undecided (risk did not answer): an order may exist; its events, if any, open it
        if not decision.approved and slot.enabled:
            self._call(
                slot, "on_rejected", intent.tick_exch_ns, intent.tick_recv_ns, intent, decision, out=out
            )
        return out

    def _coid(self, intent: wire.OrderIntent) -> str:
        """The client_order_id risk will give this intent ("" when it cannot be derived here)."""
        if not self._prefix:
            return ""
        try:
            return client_order_id(self._prefix, intent.intent_id)
        except ValueError:
            return ""

    # ---- isolation --------------------------------------------------------------------------

    def _call(
        self, slot: StrategySlot, name: str, exch_ns: int, recv_ns: int, *args: Any, out: list[Any]
    ) -> None:
        s = slot.strategy
        s._tick_exch_ns = exch_ns
        s._tick_recv_ns = recv_ns
        try:
            result = check_intents(getattr(s, name)(*args), s.name, name, s.in_flight)
        except InvalidIntents as exc:
            self.disable(slot, f"{name}: returned bad intents: {exc}")
            return
        except Exception as exc:
            self.disable(slot, f"{name}: {type(exc).__name__}: {exc}")
            return
        if not result:
            return
        for intent in result:
            s.in_flight[intent.intent_id] = intent
            if coid := self._coid(intent):
                _remember(self._sent, coid, (slot, intent))
        slot.intents += len(result)
        out.extend(result)

    def disable(self, slot: StrategySlot, error: str) -> None:
        slot.enabled = False
        slot.error = error[:500]
        STRATEGY_ERRORS.labels(slot.strategy.name).inc()
        log.error(
            "strategy disabled after an error",
            exc_info=True,
            extra=kv(strategy=slot.strategy.name, error=error),
        )

    # ---- reporting --------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "kind": slot.strategy.kind,
                "enabled": slot.enabled,
                "error": slot.error,
                "intents": slot.intents,
                "in_flight": len(slot.strategy.in_flight),
                "open_orders": len(slot.strategy.open_orders),
            }
            for name, slot in self.slots.items()
        }


def _remember(table: dict[str, Any], key: str, value: Any) -> None:
    """Insert, forgetting the oldest entry beyond MAX_TRACKED (insertion order is age)."""
    if key not in table and len(table) >= MAX_TRACKED:
        table.pop(next(iter(table)))
    table[key] = value


def _intent_of(u: wire.OrderUpdate) -> wire.OrderIntent:
    return wire.OrderIntent(
        intent_id=u.client_order_id,
        strategy=u.strategy,
        symbol=u.symbol,
        side=u.side,
        qty=u.qty,
        order_type=OrderType.LIMIT if u.limit_px else OrderType.MARKET,
        limit_px=u.limit_px,
    )
