"""Position-level pre-trade checks: trading state (HALTED, REDUCE_ONLY), daily loss, flips, short
selling, max position, buying power, and symbol allow / deny lists."""

from __future__ import annotations

from common.enums import RejectReason as R
from common.enums import TradingState
from common.fixed import to_fixed
from services.risk.state import RiskState
from tests.risk.checks_support import open_order, order, position, quote, risk


def book(pos: str = "0", pend_buy: str = "0", pend_sell: str = "0", **config: object) -> RiskState:
    rs = risk(**config)
    quote(rs, "99.99", "100.01")
    if pos != "0":
        position(rs, pos)
    if pend_buy != "0":
        open_order(rs, "buy", pend_buy)
    if pend_sell != "0":
        open_order(rs, "sell", pend_sell)
    return rs


def test_halted_rejects_everything_even_reducing_orders() -> None:
    rs = book("10")
    rs.enforce(TradingState.HALTED)
    assert order(rs, "sell", "1") == R.HALTED
    assert order(rs, "buy", "1") == R.HALTED


def test_reduce_only_passes_an_order_that_shrinks_exposure() -> None:
    for rs in (book("10"),):
        rs.enforce(TradingState.REDUCE_ONLY)
        assert order(rs, "sell", "10") == R.OK  # to flat
    rs = book("-10")
    rs.enforce(TradingState.REDUCE_ONLY)
    assert order(rs, "buy", "4") == R.OK


def test_reduce_only_rejects_an_order_that_grows_opens_or_flips_exposure() -> None:
    rs = book("10")
    rs.enforce(TradingState.REDUCE_ONLY)
    assert order(rs, "sell", "11") == R.REDUCE_ONLY  # would flip
    assert order(rs, "buy", "1") == R.REDUCE_ONLY  # grows
    flat = book()
    flat.enforce(TradingState.REDUCE_ONLY)
    assert order(flat, "buy", "1") == R.REDUCE_ONLY  # opens
    pending = book("10", pend_sell="5")
    pending.enforce(TradingState.REDUCE_ONLY)
    assert order(pending, "sell", "5") == R.OK  # with the pending sell: exactly to flat
    assert order(pending, "sell", "6") == R.REDUCE_ONLY  # would flip if both fill


def test_daily_loss_beyond_the_limit_lets_only_reducing_orders_pass() -> None:
    rs = book("100", max_daily_loss="1000")
    position(rs, "100", avg_px="110", realized="-0.02")  # unrealized (100 - 110) * 100 = -1000
    assert rs.day_pnl == to_fixed("-1000.02")
    assert order(rs, "buy", "1") == R.DAILY_LOSS
    assert order(rs, "sell", "1") == R.OK


def test_daily_loss_at_the_limit_still_trades() -> None:
    rs = book("100", max_daily_loss="1000")
    position(rs, "100", avg_px="110")  # marked at the mid 100.00: exactly -1000
    assert rs.day_pnl == to_fixed("-1000")
    assert order(rs, "buy", "1") == R.OK


def test_daily_loss_follows_the_quotes() -> None:
    rs = book("100", max_daily_loss="1000")
    position(rs, "100", avg_px="100")
    quote(rs, "89.99", "90.01")
    assert order(rs, "buy", "1", "90") == R.OK
    quote(rs, "89.98", "90.00")  # mid 89.99: -1001
    assert order(rs, "buy", "1", "90") == R.DAILY_LOSS


def test_daily_loss_counts_from_the_day_s_baseline() -> None:
    rs = book("100", max_daily_loss="1000")
    position(rs, "100", avg_px="110", realized="-0.02")  # -1000.02 over the positions' life
    assert order(rs, "buy", "1") == R.DAILY_LOSS
    rs.set_day_baseline(to_fixed("-1000.02"))  # a new day started there
    assert rs.day_pnl == 0 and order(rs, "buy", "1") == R.OK
    quote(rs, "89.98", "90.00")  # mid 89.99: -2001.02 in all, -1001 today
    assert rs.day_pnl == to_fixed("-1001")
    assert order(rs, "buy", "1", "90") == R.DAILY_LOSS
    rs.set_day_baseline(to_fixed("-1001.02"))  # the same marks, a day that started 1 lower
    assert rs.day_pnl == to_fixed("-1000") and order(rs, "buy", "1", "90") == R.OK


def test_an_order_that_flips_the_position_is_refused() -> None:
    rs = book("10", allow_short=True)
    assert order(rs, "sell", "10") == R.OK  # to flat
    assert order(rs, "sell", "11") == R.FLIPS_POSITION
    assert order(book("-10"), "buy", "11") == R.FLIPS_POSITION
    # pending same-side orders count: 10 long with 10 pending sells cannot sell more
    assert order(book("10", pend_sell="10", allow_short=True), "sell", "1") == R.FLIPS_POSITION


def test_short_selling_is_off_unless_allowed() -> None:
    assert order(book(), "sell", "1") == R.SHORT_NOT_ALLOWED
    assert order(book("-5"), "sell", "1") == R.SHORT_NOT_ALLOWED  # adopted short: may not grow
    assert order(book("5"), "sell", "5") == R.OK  # closing a long is never short
    assert order(book(allow_short=True), "sell", "1") == R.OK


def test_short_selling_per_symbol_override() -> None:
    rs = book(symbols={"AAPL": {"allow_short": True}})
    quote(rs, "99.99", "100.01", symbol="MSFT")
    assert order(rs, "sell", "1") == R.OK
    assert order(rs, "sell", "1", symbol="MSFT") == R.SHORT_NOT_ALLOWED
    denied = book(allow_short=True, symbols={"AAPL": {"allow_short": False}})
    assert order(denied, "sell", "1") == R.SHORT_NOT_ALLOWED


def test_max_position_counts_position_and_pending_same_side() -> None:
    assert order(book("400", max_position_qty="500"), "buy", "100") == R.OK
    assert order(book("400", pend_buy="1", max_position_qty="500"), "buy", "100") == R.MAX_POSITION
    assert order(book("400", pend_sell="50", max_position_qty="500"), "buy", "100") == R.OK


def test_max_position_over_the_limit_only_shrinking_orders_pass() -> None:
    rs = book("600", max_position_qty="500")
    assert order(rs, "sell", "50") == R.OK
    assert order(rs, "buy", "1") == R.MAX_POSITION


def test_max_position_per_symbol_override() -> None:
    rs = book("0", max_position_qty="500", symbols={"AAPL": {"max_position_qty": "10"}})
    assert order(rs, "buy", "10") == R.OK
    assert order(rs, "buy", "10.5") == R.MAX_POSITION


def test_buying_power_trips_above_and_passes_at_the_limit() -> None:
    rs = book()
    rs.set_buying_power(to_fixed("1000"))
    assert order(rs, "buy", "10", "100") == R.OK  # exactly 1,000
    assert order(rs, "buy", "10.000000001", "100") == R.BUYING_POWER
    rs.set_buying_power(None)  # unknown: not checked
    assert order(rs, "buy", "20", "100") == R.OK


def test_buying_power_does_not_stop_a_reducing_order() -> None:
    rs = book("50")
    rs.set_buying_power(0)
    assert order(rs, "sell", "50") == R.OK
    assert order(rs, "buy", "1") == R.BUYING_POWER


def test_symbol_deny_list() -> None:
    rs = book(deny_symbols=["AAPL"])
    quote(rs, "99.99", "100.01", symbol="MSFT")
    assert order(rs, "buy", "1") == R.SYMBOL_NOT_ALLOWED
    assert order(rs, "buy", "1", symbol="MSFT") == R.OK


def test_symbol_allow_list() -> None:
    rs = book(allow_symbols=["AAPL"])
    quote(rs, "99.99", "100.01", symbol="MSFT")
    assert order(rs, "buy", "1") == R.OK
    assert order(rs, "buy", "1", symbol="MSFT") == R.SYMBOL_NOT_ALLOWED
    assert order(book(allow_symbols=["AAPL"], deny_symbols=["AAPL"]), "buy", "1") == R.SYMBOL_NOT_ALLOWED
