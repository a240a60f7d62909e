"""Everything the risk check reads, kept in the numba arrays: symbol index, quotes, positions,
pending open quantity per side (from approved orders and execution's order events)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common import wire
from common.order_events import TERMINAL_STATUSES
from common.positions import PositionBook, SymbolPosition
from services.risk import checks
from services.risk.reasons import TradingState


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
    def __init__(self, limits: np.ndarray, capacity: int = 64) -> None:
        self.limits = limits
        self.state = checks.new_state(capacity)
        self.index: dict[str, int] = {}
        self.positions = PositionBook()
        self.pending: dict[str, PendingOrder] = {}  # by client_order_id

    # ---- symbols ----------------------------------------------------------------------------

    def sym(self, symbol: str) -> int:
        i = self.index.get(symbol)
        if i is None:
            i = self.index[symbol] = len(self.index)
            if i >= self.state.shape[0]:
                grown = checks.new_state(self.state.shape[0] * 2)
                grown[: self.state.shape[0]] = self.state
                self.state = grown
        return i

    @property
    def trading_state(self) -> TradingState:
        return TradingState(int(self.limits[checks.L_TRADING_STATE]))

    @trading_state.setter
    def trading_state(self, value: TradingState) -> None:
        self.limits[checks.L_TRADING_STATE] = int(value)

    # ---- the check --------------------------------------------------------------------------

    def check(self, intent: wire.OrderIntent) -> int:
        side = checks.SIDES.get(intent.side, 0)
        order_type = checks.ORDER_TYPES.get(intent.order_type, -1)
        return int(
            checks.check_order(
                self.state,
                self.limits,
                self.sym(intent.symbol),
                side,
                order_type,
                checks.clamp(intent.qty),
                checks.clamp(intent.limit_px),
                checks.clamp(intent.stop_px),
            )
        )

    # ---- inputs -----------------------------------------------------------------------------

    def on_quote(self, q: wire.Quote) -> None:
        i = self.sym(q.symbol)
        valid = 0 < q.bid_px <= checks.MAX_VALUE and 0 < q.ask_px <= checks.MAX_VALUE
        self.state[i, checks.BID] = q.bid_px if valid else 0
        self.state[i, checks.ASK] = q.ask_px if valid else 0

    def add_pending(self, client_order_id: str, symbol: str, side: str, qty: int) -> None:
        if client_order_id not in self.pending:
            self.pending[client_order_id] = PendingOrder(symbol, side, qty)
            self._sync_pending(symbol)

    def release(self, client_order_id: str) -> None:
        p = self.pending.pop(client_order_id, None)
        if p is not None:
            self._sync_pending(p.symbol)

    def on_order_update(self, u: wire.OrderUpdate) -> None:
        if u.status in TERMINAL_STATUSES:
            self.release(u.client_order_id)
            return
        p = self.pending.get(u.client_order_id)
        if p is None:
            p = self.pending[u.client_order_id] = PendingOrder(u.symbol, u.side, u.qty)
        p.qty = u.qty or p.qty
        p.filled = max(p.filled, u.filled_qty)
        self._sync_pending(u.symbol)

    def on_fill(self, f: wire.Fill) -> tuple[SymbolPosition, bool]:
        """Apply a fill; returns the position and whether the venue's quantity had to be adopted."""
        pos = self.positions.apply_fill(f.symbol, f.side, f.qty, f.px)
        reconciled = f.position_qty is not None and pos.reconcile_qty(f.position_qty)
        self.on_fill_pending_only(f)
        self._sync_position(f.symbol)
        return pos, reconciled

    def on_fill_pending_only(self, f: wire.Fill) -> None:
        """A fill already counted in a positions snapshot: only the pending quantity moves."""
        p = self.pending.get(f.client_order_id)
        if p is not None:
            p.filled = max(p.filled, f.cum_qty)
            if p.remaining == 0:
                del self.pending[f.client_order_id]
            self._sync_pending(f.symbol)

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
        self.state[self.sym(symbol), checks.POSITION] = self.positions.qty(symbol)

    def _sync_pending(self, symbol: str) -> None:
        buy = sell = 0
        for p in self.pending.values():
            if p.symbol == symbol:
                if p.side == "buy":
                    buy += p.remaining
                else:
                    sell += p.remaining
        i = self.sym(symbol)
        self.state[i, checks.PENDING_BUY] = buy
        self.state[i, checks.PENDING_SELL] = sell

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
