"""The strategy API.

A strategy is a subclass of :class:`Strategy`. The signal service calls its callbacks from one
event loop, never concurrently; every callback returns a list of :class:`~common.wire.OrderIntent`
(or None), built with :meth:`Strategy.buy` / :meth:`Strategy.sell`. Those helpers fill in the
intent id, the strategy name, the triggering event's timestamps (``tick_exch_ns`` / ``tick_recv_ns``),
``signal_ns`` and the deadline, so a strategy only says what it wants.

Units: prices and quantities are int nanos everywhere (``common.fixed``: 1 share = 1_000_000_000),
exactly as they arrive in market data. Convert config values with :func:`fixed_param`.

Callbacks (override what you need; the defaults do nothing):
  ``on_quote(Quote)``, ``on_trade(Trade)``, ``on_bar(Bar)``, ``on_book(Book)`` for market data on the
  strategy's symbols (all symbols if it lists none);
  ``on_order_update(OrderUpdate)``, ``on_fill(Fill)`` for orders this strategy created
  (routed by ``OrderUpdate.strategy``; :attr:`positions` is updated before ``on_fill`` runs);
  ``on_timer(now_ns)`` every ``signal.timer_interval_s``;
  ``on_rejected(intent, decision)`` when risk rejected an intent or did not answer
  (``decision.reason`` is a risk reject code, or ``"risk_timeout"`` / ``"risk_unavailable"`` /
  ``"risk_error"``).

A callback that raises disables that strategy (logged, counted, shown in ``status``); the others
keep running. Parameters come from config (``settings.signal.strategies[].params``) through
:meth:`configure`; raise ``ValueError`` there for a bad parameter and the service refuses to start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from common import wire
from common.fixed import to_fixed_exact
from common.ids import IntentIds

Intents = list[wire.OrderIntent] | None


@dataclass(frozen=True)
class StrategyContext:
    """What the service gives every strategy."""

    ids: IntentIds
    intent_max_age_ns: int
    clock_ns: Callable[[], int]


def fixed_param(params: dict[str, Any], key: str, default: str | int | Decimal) -> int:
    """A price or quantity parameter in human units (e.g. ``qty = "0.5"``) as int nanos, > 0."""
    raw = params.get(key, default)
    if isinstance(raw, float):
        raw = repr(raw)
    try:
        value = to_fixed_exact(raw)
    except ValueError as exc:
        raise ValueError(f"param {key!r}: {exc}") from None
    if value <= 0:
        raise ValueError(f"param {key!r} must be > 0, got {raw!r}")
    return value


def int_param(params: dict[str, Any], key: str, default: int | None, minimum: int = 1) -> int | None:
    raw = params.get(key, default)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise ValueError(f"param {key!r} must be an integer >= {minimum}, got {raw!r}")
    return raw


class Strategy:
    kind: ClassVar[str] = ""  # the registered name, for status

    def __init__(self, name: str, symbols: list[str], params: dict[str, Any], ctx: StrategyContext) -> None:
        self.name = name
        self.symbols = list(symbols)
        self.ctx = ctx
        self.positions: dict[str, int] = {}  # signed nanos, from this strategy's own fills
        self.in_flight: dict[str, wire.OrderIntent] = {}  # intent_id -> intent awaiting risk's decision
        self.open_orders: dict[str, wire.OrderIntent] = {}  # client_order_id -> intent, until terminal
        self._tick_exch_ns = 0
        self._tick_recv_ns = 0
        self.configure(dict(params))

    # ---- override ---------------------------------------------------------------------------

    def configure(self, params: dict[str, Any]) -> None:
        """Read parameters; the default accepts none."""
        if params:
            raise ValueError(f"unknown params {sorted(params)}")

    def on_quote(self, quote: wire.Quote) -> Intents:
        return None

    def on_trade(self, trade: wire.Trade) -> Intents:
        return None

    def on_bar(self, bar: wire.Bar) -> Intents:
        return None

    def on_book(self, book: wire.Book) -> Intents:
        return None

    def on_order_update(self, update: wire.OrderUpdate) -> Intents:
        return None

    def on_fill(self, fill: wire.Fill) -> Intents:
        return None

    def on_timer(self, now_ns: int) -> Intents:
        return None

    def on_rejected(self, intent: wire.OrderIntent, decision: wire.RiskDecision) -> Intents:
        return None

    # ---- helpers ----------------------------------------------------------------------------

    def buy(
        self,
        symbol: str,
        qty: int,
        limit_px: int = 0,
        tif: wire.TimeInForce = "day",
        order_type: wire.OrderType | None = None,
        stop_px: int = 0,
    ) -> wire.OrderIntent:
        """A buy intent; a limit order when ``limit_px`` is given, else a market order."""
        return self._intent(symbol, "buy", qty, limit_px, tif, order_type, stop_px)

    def sell(
        self,
        symbol: str,
        qty: int,
        limit_px: int = 0,
        tif: wire.TimeInForce = "day",
        order_type: wire.OrderType | None = None,
        stop_px: int = 0,
    ) -> wire.OrderIntent:
        return self._intent(symbol, "sell", qty, limit_px, tif, order_type, stop_px)

    def position(self, symbol: str) -> int:
        return self.positions.get(symbol, 0)

    def working_qty(self, symbol: str) -> int:
        """Signed quantity of intents in flight plus open orders (full order qty) on ``symbol``."""
        total = 0
        for i in (*self.in_flight.values(), *self.open_orders.values()):
            if i.symbol == symbol:
                total += i.qty if i.side == "buy" else -i.qty
        return total

    def has_working_orders(self, symbol: str) -> bool:
        return any(i.symbol == symbol for i in (*self.in_flight.values(), *self.open_orders.values()))

    def _intent(
        self,
        symbol: str,
        side: wire.Side,
        qty: int,
        limit_px: int,
        tif: wire.TimeInForce,
        order_type: wire.OrderType | None,
        stop_px: int,
    ) -> wire.OrderIntent:
        if not isinstance(qty, int) or not isinstance(limit_px, int) or not isinstance(stop_px, int):
            raise TypeError("qty and prices are int nanos (common.fixed.to_fixed converts)")
        now = self.ctx.clock_ns()
        return wire.OrderIntent(
            intent_id=self.ctx.ids.next(),
            strategy=self.name,
            symbol=symbol,
            side=side,
            qty=qty,
            order_type=order_type or ("limit" if limit_px else "market"),
            limit_px=limit_px,
            stop_px=stop_px,
            tif=tif,
            tick_exch_ns=self._tick_exch_ns,
            tick_recv_ns=self._tick_recv_ns,
            signal_ns=now,
            deadline_ns=now + self.ctx.intent_max_age_ns,
        )
