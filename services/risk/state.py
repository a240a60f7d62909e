"""Everything the risk check reads, kept in the numba arrays: symbol and strategy indexes, quotes,
positions, pending open quantity and open order count per symbol (from approved orders and
execution's order events), each symbol's limits, the day's P&L and the rate buckets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from common import wire
from common.enums import RejectReason, TradingState
from common.fixed import SCALE
from common.order_events import TERMINAL_STATUSES
from common.positions import PositionBook, SymbolPosition
from services.risk import checks
from services.risk.limits import RiskLimits
from services.risk.metrics import QUOTES_REFUSED

_MAX = checks.MAX_VALUE
_RANGE_BITS = _MAX.bit_length() - 1  # v >> _RANGE_BITS == 0 exactly when 0 <= v < MAX_VALUE
_SIDES = checks.SIDES
_ORDER_TYPES = checks.ORDER_TYPES
_SYMBOL_REFUSED = RejectReason.SYMBOL_NOT_ALLOWED.code
# Symbols outside the configuration that quotes and intents may add rows for (positions and open
# orders always get one: they are real).
MAX_OTHER_SYMBOLS = 256


@dataclass
class PendingOrder:
    symbol: str
    side: str
    qty: int
    filled: int = 0

    @property
    def remaining(self) -> int:
        return max(self.qty - self.filled, 0)


class RiskState:
    def __init__(
        self,
        limits: RiskLimits,
        capacity: int = 64,
        strategy_capacity: int = 8,
        known_symbols: frozenset[str] = frozenset(),
        max_other_symbols: int = MAX_OTHER_SYMBOLS,
    ) -> None:
        self.config = limits
        self.known_symbols = known_symbols
        self.max_other_symbols = max_other_symbols
        self.other_symbols = 0  # rows given to symbols outside ``known_symbols`` by quotes or intents
        self.refused_quotes = 0
        self.limits = limits.globals  # the global slots the check reads
        self.state = checks.new_state(capacity)
        self.buckets = checks.new_buckets(strategy_capacity)
        self.index: dict[str, int] = {}
        self.strategies: dict[str, int] = {}  # strategy name -> its bucket row - 1
        self.positions = PositionBook()
        self.pending: dict[str, PendingOrder] = {}  # by client_order_id
        self._open: dict[str, list[int]] = {}  # symbol -> [buy qty, sell qty, orders] still open
        self._pnl = _Pnl()
        self._day_baseline = 0  # total P&L when the trading day began
        self._check = checks.compiled_check()

    # ---- symbols and strategies ---------------------------------------------------------------

    def sym(self, symbol: str) -> int:
        i = self.index.get(symbol)
        if i is None:
            i = self.index[symbol] = len(self.index)
            if i >= self.state.shape[0]:
                self.state = _grown(self.state, self.state.shape[0] * 2)
            self.config.for_symbol(symbol).write(self.state[i])
            self.limits[checks.L_SYMBOLS] = len(self.index)
        return i

    def admit(self, symbol: str) -> int | None:
        """The row of a symbol seen in a quote or an intent; None when it is outside the allow list,
        or unknown and the table already holds ``max_other_symbols`` such symbols."""
        i = self.index.get(symbol)
        if i is not None:
            return i
        allow = self.config.allow_symbols
        if allow is not None and symbol not in allow:
            return None
        if symbol not in self.known_symbols:
            if self.other_symbols >= self.max_other_symbols:
                return None
            self.other_symbols += 1
        return self.sym(symbol)

    def refusal(self, symbol: str) -> str:
        """Why ``admit`` refused ``symbol`` (for the reject's detail)."""
        allow = self.config.allow_symbols
        if allow is not None and symbol not in allow:
            return f"{symbol!r} is not on risk.allow_symbols"
        return (
            f"{symbol!r} is not configured and risk already tracks {self.other_symbols} other symbols "
            f"(max {self.max_other_symbols})"
        )

    def strategy(self, name: str) -> int:
        """The strategy's index; a strategy seen for the first time gets a fresh (full) bucket."""
        k = self.strategies.get(name)
        if k is None:
            k = self.strategies[name] = len(self.strategies)
            if k + 1 >= self.buckets.shape[0]:
                self.buckets = _grown(self.buckets, self.buckets.shape[0] * 2)
        return k

    @property
    def trading_state(self) -> TradingState:
        """The state the check enforces. It changes only through ``enforce`` (risk's
        TradingStateOwner calls it; check unit tests too)."""
        return TradingState.from_code(int(self.limits[checks.L_TRADING_STATE]))

    def enforce(self, state: TradingState) -> None:
        self.limits[checks.L_TRADING_STATE] = state.code

    def set_buying_power(self, nanos: int | None) -> None:
        """The account's buying power (money nanos); None = unknown, the check is skipped."""
        self.limits[checks.L_BUYING_POWER] = (
            checks.BUYING_POWER_UNKNOWN if nanos is None else checks.cap(nanos)
        )

    @property
    def buying_power(self) -> int | None:
        value = int(self.limits[checks.L_BUYING_POWER])
        return None if value == checks.BUYING_POWER_UNKNOWN else value

    @property
    def total_pnl(self) -> int:
        """Realized plus unrealized (at the mid) P&L in money nanos over the positions' life."""
        return self._pnl.total

    @property
    def realized_pnl(self) -> int:
        """The realized part of ``total_pnl``."""
        return self._pnl.realized

    @property
    def day_pnl(self) -> int:
        """The trading day's P&L, as the check sees it: the total less its value at the day's start."""
        return self._pnl.total - self._day_baseline

    def set_day_baseline(self, baseline: int) -> None:
        """The total P&L the trading day started from (risk's ``TradingDay`` owns it)."""
        self._day_baseline = baseline
        self._write_day_pnl()

    # ---- the check --------------------------------------------------------------------------

    def check(self, intent: wire.OrderIntent, now_ns: int) -> int:
        """The reason code (a ``RejectReason`` index) for ``intent`` at wall time ``now_ns``;
        an approved order takes its rate tokens and is remembered by the duplicate guard.

        The hot path: subscripts (a try block costs nothing until it raises), one range test for
        the three fields (``clamp`` only when it fails: a value of exactly MAX_VALUE clamps to
        itself), the compiled entry point called directly (it returns an int)."""
        try:
            sym = self.index[intent.symbol]
            strat = self.strategies[intent.strategy]
            side = _SIDES[intent.side]
            order_type = _ORDER_TYPES[intent.order_type]
        except KeyError:  # a new symbol or strategy, or a side or type the check refuses
            admitted = self.admit(intent.symbol)
            if admitted is None:
                return _SYMBOL_REFUSED
            sym = admitted
            strat = self.strategy(intent.strategy)
            side = _SIDES.get(intent.side, 0)
            order_type = _ORDER_TYPES.get(intent.order_type, -1)
        qty, limit_px, stop_px = intent.qty, intent.limit_px, intent.stop_px
        if (qty | limit_px | stop_px) >> _RANGE_BITS:  # one is negative or at least 2**60: clamp
            qty, limit_px, stop_px = checks.clamp(qty), checks.clamp(limit_px), checks.clamp(stop_px)
        return self._check(  # type: ignore[no-any-return]
            self.state,
            self.limits,
            self.buckets,
            sym,
            strat,
            side,
            order_type,
            qty,
            limit_px,
            stop_px,
            now_ns,
        )

    # ---- inputs -----------------------------------------------------------------------------

    def on_quote(self, q: wire.Quote) -> None:
        i = self._quote_row(q.symbol, 1)
        if i is not None:
            self._apply_quote(i, q)

    def on_quotes(self, msgs: Iterable[Any]) -> None:
        """A batch of market data (a frame): per symbol only what decides the end state is applied,
        the last quote with a valid bid and ask (the mark) and the last quote of all (bid, ask and
        their time, or their clearing). The rows end as if every quote had been applied in turn."""
        last: dict[str, wire.Quote] = {}
        last_valid: dict[str, wire.Quote] = {}
        count: dict[str, int] = {}
        for q in msgs:
            if isinstance(q, wire.Quote):
                last[q.symbol] = q
                count[q.symbol] = count.get(q.symbol, 0) + 1
                if 0 < q.bid_px <= _MAX and 0 < q.ask_px <= _MAX:
                    last_valid[q.symbol] = q
        for symbol, q in last.items():
            i = self._quote_row(symbol, count[symbol])
            if i is None:
                continue
            valid = last_valid.get(symbol)
            if valid is not None and valid is not q:
                self._apply_quote(i, valid)
            self._apply_quote(i, q)

    def _quote_row(self, symbol: str, n: int) -> int | None:
        """The symbol's row, admitting it if there is room; None counts its ``n`` quotes refused."""
        i = self.index.get(symbol)
        if i is None:
            i = self.admit(symbol)
            if i is None:
                self.refused_quotes += n
                QUOTES_REFUSED.inc(n)
        return i

    def _apply_quote(self, i: int, q: wire.Quote) -> None:
        if 0 < q.bid_px <= _MAX and 0 < q.ask_px <= _MAX:
            ts = max(0, min(q.exch_ns, checks.LIMIT_CAP))
            checks.set_quote(self.state, self.limits, i, q.bid_px, q.ask_px, ts)
            if self.state[i, checks.POSITION]:
                self._update_pnl(i)
        else:
            checks.set_quote(self.state, self.limits, i, 0, 0, 0)

    def add_pending(self, client_order_id: str, symbol: str, side: str, qty: int) -> None:
        if client_order_id not in self.pending:
            p = self.pending[client_order_id] = PendingOrder(symbol, side, qty)
            self._count(p, 1)
            self._sync_pending(symbol)

    def clear_pending(self) -> None:
        """Forget every open order (execution restarted: its replay will tell them again)."""
        self.pending.clear()
        self._open.clear()
        self.state[:, checks.PENDING_BUY] = 0
        self.state[:, checks.PENDING_SELL] = 0
        self.state[:, checks.OPEN_ORDERS] = 0
        checks.rebuild_exposure(self.state, self.limits)

    def release(self, client_order_id: str) -> None:
        p = self.pending.pop(client_order_id, None)
        if p is not None:
            self._count(p, -1)
            self._sync_pending(p.symbol)

    def on_order_update(self, u: wire.OrderUpdate) -> None:
        if u.status in TERMINAL_STATUSES:
            self.release(u.client_order_id)
            return
        p = self.pending.get(u.client_order_id)
        if p is None:
            p = self.pending[u.client_order_id] = PendingOrder(u.symbol, u.side, u.qty)
        else:
            self._count(p, -1)
        p.qty = u.qty or p.qty
        p.filled = max(p.filled, u.filled_qty)
        self._count(p, 1)
        self._sync_pending(p.symbol)

    def on_fill(self, f: wire.Fill) -> tuple[SymbolPosition, bool]:
        """Apply a fill; returns the position and whether the venue's quantity had to be adopted."""
        pos = self.positions.apply_fill(f.symbol, f.side, f.qty, f.px)
        reconciled = f.position_qty is not None and pos.reconcile_qty(f.position_qty)
        self._fill_pending(f)
        self._sync_position(f.symbol)
        return pos, reconciled

    def _fill_pending(self, f: wire.Fill) -> None:
        """The filled part of an open order is no longer pending."""
        p = self.pending.get(f.client_order_id)
        if p is not None:
            self._count(p, -1)
            p.filled = max(p.filled, f.cum_qty)
            if p.remaining == 0:
                del self.pending[f.client_order_id]
            else:
                self._count(p, 1)
            self._sync_pending(p.symbol)

    def set_positions(self, positions: list[wire.Position]) -> None:
        """A snapshot replaces our view: symbols it does not list are flat."""
        listed = {p.symbol for p in positions}
        for pos in self.positions.all():
            if pos.symbol not in listed:
                pos.set_from_venue(0, 0)
                self._sync_position(pos.symbol)
        for p in positions:
            self.positions.get(p.symbol).set_from_venue(p.qty, p.avg_px, p.realized_pnl)
            self._sync_position(p.symbol)

    def _sync_position(self, symbol: str) -> None:
        i = self.sym(symbol)
        pos = self.positions.get(symbol)
        # no quote yet: a position is valued at its entry price
        checks.set_position(
            self.state, self.limits, i, checks.clamp_signed(pos.qty), checks.clamp(pos.avg_px)
        )
        self._pnl.set_position(i, pos.qty, pos.avg_px, pos.realized_pnl)
        self._update_pnl(i)

    def _update_pnl(self, i: int) -> None:
        self._pnl.mark(i, int(self.state[i, checks.MARK]))
        self._write_day_pnl()

    def _write_day_pnl(self) -> None:
        self.limits[checks.L_DAY_PNL] = max(-checks.LIMIT_CAP, min(self.day_pnl, checks.LIMIT_CAP))

    def _count(self, p: PendingOrder, sign: int) -> None:
        """Add (+1) or take away (-1) one open order's remaining quantity from its symbol's totals, so
        an approval costs the same with 1 or 10,000 orders open."""
        rem = p.remaining
        if rem <= 0:
            return
        totals = self._open.setdefault(p.symbol, [0, 0, 0])  # buy qty, sell qty, orders
        totals[0 if p.side == "buy" else 1] += sign * rem
        totals[2] += sign

    def _sync_pending(self, symbol: str) -> None:
        buy, sell, orders = self._open.get(symbol, (0, 0, 0))
        i = self.sym(symbol)
        checks.set_pending(self.state, self.limits, i, min(buy, _MAX), min(sell, _MAX), orders)

    # ---- reporting --------------------------------------------------------------------------

    def pending_by_symbol(self) -> dict[str, dict[str, int]]:
        return {
            s: {
                "buy": int(self.state[i, checks.PENDING_BUY]),
                "sell": int(self.state[i, checks.PENDING_SELL]),
            }
            for s, i in self.index.items()
            if self.state[i, checks.PENDING_BUY] or self.state[i, checks.PENDING_SELL]
        }


class _Pnl:
    """Realized plus unrealized P&L (money nanos) over symbols, kept incrementally so a quote
    costs O(1): per symbol index its position, entry price, realized P&L and current total."""

    def __init__(self) -> None:
        self._pos: dict[int, tuple[int, int, int]] = {}  # qty, avg_px, realized
        self._by_symbol: dict[int, tuple[int, int]] = {}  # (total, realized) as last added
        self.total = 0
        self.realized = 0

    def set_position(self, i: int, qty: int, avg_px: int, realized: int) -> None:
        self._pos[i] = (qty, avg_px, realized)

    def mark(self, i: int, mark: int) -> None:
        qty, avg_px, realized = self._pos.get(i, (0, 0, 0))
        unrealized = (mark - avg_px) * qty // SCALE if mark > 0 and qty else 0
        value = realized + unrealized
        old_value, old_realized = self._by_symbol.get(i, (0, 0))
        self.total += value - old_value
        self.realized += realized - old_realized
        self._by_symbol[i] = (value, realized)


def _grown(a: np.ndarray, rows: int) -> np.ndarray:
    grown = np.zeros((rows, a.shape[1]), dtype=a.dtype)
    grown[: a.shape[0]] = a
    return grown
