"""Risk's per-symbol state exists only for configured symbols plus a bounded number of others."""

from __future__ import annotations

from common import wire
from common.config import RiskConfig
from common.enums import OrderSide, RejectReason
from services.risk.limits import RiskLimits
from services.risk.state import RiskState

NOW = 1_700_000_000_000_000_000


def _quote(symbol: str) -> wire.Quote:
    return wire.Quote(
        symbol=symbol, bid_px=100 * 10**9, bid_sz=10**9, ask_px=101 * 10**9, ask_sz=10**9,
        exch_ns=NOW, recv_ns=NOW,
    )  # fmt: skip


def _intent(symbol: str) -> wire.OrderIntent:
    return wire.OrderIntent(
        intent_id="r.1", strategy="s", symbol=symbol, side=OrderSide.BUY, qty=10**9, limit_px=101 * 10**9
    )


def test_quotes_for_unknown_symbols_stop_adding_rows_at_the_cap() -> None:
    rs = RiskState(
        RiskLimits.from_config(RiskConfig()), known_symbols=frozenset({"AAPL"}), max_other_symbols=3
    )
    for i in range(1_000):
        rs.on_quote(_quote(f"X{i}"))
    rs.on_quote(_quote("AAPL"))  # a configured symbol always gets its row
    assert set(rs.index) == {"X0", "X1", "X2", "AAPL"}
    assert rs.refused_quotes == 997


def test_an_intent_on_a_symbol_beyond_the_cap_is_refused_with_a_reason() -> None:
    rs = RiskState(RiskLimits.from_config(RiskConfig()), known_symbols=frozenset(), max_other_symbols=1)
    rs.on_quote(_quote("X0"))
    code = rs.check(_intent("X1"), NOW)
    assert RejectReason.from_code(code) is RejectReason.SYMBOL_NOT_ALLOWED
    assert "X1" not in rs.index
    assert "max 1" in rs.refusal("X1")


def test_symbols_outside_the_allow_list_get_no_row() -> None:
    rs = RiskState(RiskLimits.from_config(RiskConfig(allow_symbols=["AAPL"])))
    rs.on_quote(_quote("MSFT"))
    assert RejectReason.from_code(rs.check(_intent("MSFT"), NOW)) is RejectReason.SYMBOL_NOT_ALLOWED
    assert "MSFT" not in rs.index and "allow_symbols" in rs.refusal("MSFT")


def test_positions_on_unconfigured_symbols_are_always_kept() -> None:
    rs = RiskState(RiskLimits.from_config(RiskConfig()), known_symbols=frozenset(), max_other_symbols=0)
    rs.set_positions([wire.Position(symbol="ZZZ", qty=10**9, avg_px=10**9, realized_pnl=0, ts_ns=NOW)])
    assert "ZZZ" in rs.index
