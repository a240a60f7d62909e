"""Positions and realized P&L per symbol, exact.

Quantities and prices are int nanos. The cost basis of the open position is kept as an exact
rational (``Fraction``, in nanos * nanos), so partial closes never round; values are rounded
half-even to int nanos only when reported (avg_px, realized_pnl).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from common import wire
from common.fixed import SCALE

ExactPosition = tuple[str, int, str, str]  # symbol, qty nanos, cost and realized as exact rationals


def _round_half_even(x: Fraction) -> int:
    return round(x)  # Fraction.__round__ rounds half to even


@dataclass
class SymbolPosition:
    symbol: str
    qty: int = 0  # signed nanos
    cost: Fraction = field(default_factory=Fraction)  # signed, sum of qty * px of the open position
    realized: Fraction = field(default_factory=Fraction)  # nanos * nanos

    @property
    def avg_px(self) -> int:
        return _round_half_even(self.cost / self.qty) if self.qty else 0

    @property
    def realized_pnl(self) -> int:
        """Realized P&L in nanos of money."""
        return _round_half_even(self.realized / SCALE)

    def add_from_venue(self, qty: int, avg_px: int, realized_pnl: int) -> None:
        """Add a reported position (quantity, average price, realized P&L) to this one: two books
        shown as one."""
        self.qty += qty
        self.cost += qty * avg_px
        self.realized += realized_pnl * SCALE

    def exact(self) -> ExactPosition:
        """Everything the position is, with nothing rounded (``from_exact`` reads it back)."""
        return (self.symbol, self.qty, str(self.cost), str(self.realized))

    @classmethod
    def from_exact(cls, p: ExactPosition) -> SymbolPosition:
        symbol, qty, cost, realized = p
        return cls(symbol, qty, Fraction(cost), Fraction(realized))

    def apply_fill(self, side: str, qty: int, px: int) -> None:
        if qty <= 0 or px < 0:
            raise ValueError(f"fill qty must be > 0 and px >= 0, got qty={qty} px={px}")
        if side not in ("buy", "sell"):
            raise ValueError(f"fill side must be buy or sell, got {side!r}")
        signed = qty if side == "buy" else -qty
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            self.qty += signed
            self.cost += signed * px
            return
        closed = min(qty, abs(self.qty))
        avg = self.cost / self.qty
        direction = 1 if self.qty > 0 else -1
        self.realized += (px - avg) * closed * direction
        self.qty -= direction * closed
        self.cost = avg * self.qty
        rest = qty - closed
        if rest:  # the fill flips the position: the remainder opens the other side at px
            opened = rest if signed > 0 else -rest
            self.qty = opened
            self.cost = Fraction(opened * px)

    def set_from_venue(self, qty: int, avg_px: int, realized_pnl: int | None = None) -> None:
        self.qty = qty
        self.cost = Fraction(qty * avg_px)
        if realized_pnl is not None:
            self.realized = Fraction(realized_pnl * SCALE)

    def reconcile_qty(self, venue_qty: int) -> bool:
        """Adopt the venue's quantity (keeping the average price). True if it differed."""
        if venue_qty == self.qty:
            return False
        avg = self.cost / self.qty if self.qty else Fraction(0)
        self.qty = venue_qty
        self.cost = avg * venue_qty
        return True

    def to_wire(self, ts_ns: int) -> wire.Position:
        return wire.Position(
            symbol=self.symbol, qty=self.qty, avg_px=self.avg_px, realized_pnl=self.realized_pnl, ts_ns=ts_ns
        )


class PositionBook:
    def __init__(self) -> None:
        self._by_symbol: dict[str, SymbolPosition] = {}

    def get(self, symbol: str) -> SymbolPosition:
        p = self._by_symbol.get(symbol)
        if p is None:
            p = self._by_symbol[symbol] = SymbolPosition(symbol)
        return p

    def qty(self, symbol: str) -> int:
        p = self._by_symbol.get(symbol)
        return p.qty if p else 0

    def apply_fill(self, symbol: str, side: str, qty: int, px: int) -> SymbolPosition:
        p = self.get(symbol)
        p.apply_fill(side, qty, px)
        return p

    def all(self) -> list[SymbolPosition]:
        return list(self._by_symbol.values())

    def exact(self) -> list[ExactPosition]:
        return [p.exact() for p in self._by_symbol.values()]

    @classmethod
    def from_exact(cls, positions: list[ExactPosition]) -> PositionBook:
        book = cls()
        for p in positions:
            pos = SymbolPosition.from_exact(p)
            book._by_symbol[pos.symbol] = pos
        return book
