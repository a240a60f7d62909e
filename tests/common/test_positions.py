"""Positions and realized P&L, exact in int nanos, through buys, sells, partial closes and flips."""

from __future__ import annotations

import pytest

from common import wire
from common.fixed import to_fixed
from common.positions import PositionBook, SymbolPosition


def f(x: str) -> int:
    return to_fixed(x)


def test_buys_average_and_a_partial_sell_realizes() -> None:
    p = SymbolPosition("AAPL")
    p.apply_fill("buy", f("10"), f("100.10"))
    p.apply_fill("buy", f("5"), f("100.40"))
    assert p.qty == f("15")
    assert p.avg_px == f("100.2")  # (1001 + 502) / 15
    p.apply_fill("sell", f("6"), f("101"))
    assert p.qty == f("9")
    assert p.avg_px == f("100.2")
    assert p.realized_pnl == f("4.8")  # 6 * (101 - 100.2)


def test_thirds_stay_exact() -> None:
    """A cost basis that is not a whole number of nanos per share never drifts."""
    p = SymbolPosition("X")
    p.apply_fill("buy", f("1"), f("1"))
    p.apply_fill("buy", f("1"), f("1"))
    p.apply_fill("buy", f("1"), f("1.000000001"))  # avg = 1.000000000333...
    for _ in range(3):
        p.apply_fill("sell", f("1"), f("2"))
    assert p.qty == 0
    assert p.realized_pnl == f("2.999999999")  # 6 - 3.000000001, exactly
    assert p.avg_px == 0


def test_flip_long_to_short_realizes_the_long_and_opens_at_the_fill_price() -> None:
    p = SymbolPosition("MSFT")
    p.apply_fill("buy", f("10"), f("50"))
    p.apply_fill("sell", f("15"), f("55"))
    assert p.qty == f("-5")
    assert p.avg_px == f("55")
    assert p.realized_pnl == f("50")
    # cover the short at a loss, then flip back long
    p.apply_fill("buy", f("8"), f("56"))
    assert p.qty == f("3")
    assert p.avg_px == f("56")
    assert p.realized_pnl == f("45")  # 50 - 5 * 1


def test_short_add_and_cover_with_fractional_quantities() -> None:
    p = SymbolPosition("BTC/USD")
    p.apply_fill("sell", f("0.5"), f("60000"))
    p.apply_fill("sell", f("0.25"), f("60300"))
    assert p.qty == f("-0.75")
    assert p.avg_px == f("60100")
    p.apply_fill("buy", f("0.75"), f("59000"))
    assert p.qty == 0
    assert p.realized_pnl == f("825")  # 0.75 * (60100 - 59000)


def test_bad_fills_are_refused_and_change_nothing() -> None:
    p = SymbolPosition("AAPL")
    p.apply_fill("buy", f("1"), f("10"))
    for side, qty, px in (
        ("buy", 0, f("10")),
        ("sell", f("-1"), f("10")),
        ("hold", f("1"), f("10")),
        ("buy", f("1"), -1),
    ):
        with pytest.raises(ValueError):
            p.apply_fill(side, qty, px)
    assert (p.qty, p.avg_px, p.realized_pnl) == (f("1"), f("10"), 0)


def test_venue_snapshot_and_reconcile() -> None:
    book = PositionBook()
    p = book.get("AAPL")
    p.set_from_venue(f("20"), f("10.5"), f("3"))
    assert (p.qty, p.avg_px, p.realized_pnl) == (f("20"), f("10.5"), f("3"))
    assert p.reconcile_qty(f("20")) is False
    assert p.reconcile_qty(f("12")) is True
    assert (p.qty, p.avg_px) == (f("12"), f("10.5"))
    pos = p.to_wire(ts_ns=1)
    assert pos == wire.Position(symbol="AAPL", qty=f("12"), avg_px=f("10.5"), realized_pnl=f("3"), ts_ns=1)
    assert book.qty("MSFT") == 0
