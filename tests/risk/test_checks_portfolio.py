"""Checks across symbols and over time: gross and net exposure, open orders per symbol and global,
order rate per strategy and global (token buckets), and the duplicate-order guard. Only an
approved order consumes a token or is remembered as a possible duplicate."""

from __future__ import annotations

from common.enums import RejectReason as R
from services.risk import checks
from services.risk.state import RiskState
from tests.risk.checks_support import MS, NOW, open_order, order, position, quote, risk


def two_symbols(**config: object) -> RiskState:
    rs = risk(**config)
    quote(rs, "99.99", "100.01", symbol="AAPL")  # mid 100
    quote(rs, "49.99", "50.01", symbol="MSFT")  # mid 50
    return rs


def test_gross_exposure_trips_above_and_passes_at_the_limit() -> None:
    rs = two_symbols(max_gross_exposure="20000", allow_short=True, max_order_qty="1000")
    position(rs, "100", symbol="AAPL")  # 10,000
    position(rs, "-100", symbol="MSFT")  # 5,000 short
    assert order(rs, "sell", "100", "50", symbol="MSFT") == R.OK  # 5,000 more: exactly 20,000
    assert order(rs, "sell", "100.000000001", "50", symbol="MSFT") == R.MAX_GROSS_EXPOSURE


def test_gross_exposure_counts_pending_orders_at_their_worst() -> None:
    rs = two_symbols(max_gross_exposure="20000", max_order_qty="1000")
    position(rs, "100", symbol="AAPL")
    open_order(rs, "buy", "50", symbol="AAPL")  # worst case 150 long: 15,000
    assert order(rs, "buy", "100", "50", symbol="MSFT") == R.OK  # 20,000
    assert order(rs, "buy", "101", "50", symbol="MSFT") == R.MAX_GROSS_EXPOSURE


def test_over_gross_exposure_an_order_that_does_not_grow_it_passes() -> None:
    rs = two_symbols(max_gross_exposure="5000")
    position(rs, "100", symbol="AAPL")  # 10,000 > 5,000
    assert order(rs, "sell", "100", symbol="AAPL") == R.OK
    assert order(rs, "buy", "1", "50", symbol="MSFT") == R.MAX_GROSS_EXPOSURE


def test_net_exposure_trips_above_and_passes_at_the_limit() -> None:
    rs = two_symbols(max_net_exposure="15000", max_gross_exposure="1000000", max_order_qty="1000")
    position(rs, "100", symbol="AAPL")  # +10,000
    assert order(rs, "buy", "100", "50", symbol="MSFT") == R.OK  # +5,000: exactly 15,000
    assert order(rs, "buy", "100.000000001", "50", symbol="MSFT") == R.MAX_NET_EXPOSURE


def test_net_exposure_lets_a_hedge_through() -> None:
    rs = two_symbols(max_net_exposure="5000", max_gross_exposure="1000000", allow_short=True)
    position(rs, "100", symbol="AAPL")  # +10,000, beyond the net limit
    assert order(rs, "sell", "100", "50", symbol="MSFT") == R.OK  # hedges: net 5,000
    assert order(rs, "buy", "1", "50", symbol="MSFT") == R.MAX_NET_EXPOSURE


def test_max_open_orders_per_symbol_trips_at_the_count() -> None:
    rs = two_symbols(max_open_orders_per_symbol=2)
    open_order(rs, "buy", "1")
    assert order(rs, "buy", "1") == R.OK
    open_order(rs, "buy", "1")
    assert order(rs, "buy", "1") == R.MAX_OPEN_ORDERS_SYMBOL
    assert order(rs, "buy", "1", "50", symbol="MSFT") == R.OK


def test_max_open_orders_per_symbol_override() -> None:
    rs = two_symbols(max_open_orders_per_symbol=5, symbols={"AAPL": {"max_open_orders": 1}})
    open_order(rs, "buy", "1")
    assert order(rs, "buy", "1") == R.MAX_OPEN_ORDERS_SYMBOL


def test_max_open_orders_global_trips_at_the_count() -> None:
    rs = two_symbols(max_open_orders=3)
    open_order(rs, "buy", "1", symbol="AAPL")
    open_order(rs, "buy", "1", symbol="MSFT")
    assert order(rs, "buy", "1") == R.OK
    coid = open_order(rs, "buy", "1", symbol="MSFT")
    assert order(rs, "buy", "1") == R.MAX_OPEN_ORDERS
    rs.release(coid)
    assert order(rs, "buy", "1") == R.OK


def test_global_order_rate_trips_beyond_the_burst_and_refills() -> None:
    rs = two_symbols(order_rate_per_s="2", order_rate_burst=3)
    for qty in ("1", "2", "3"):
        assert order(rs, "buy", qty) == R.OK
    assert order(rs, "buy", "4", strategy="other") == R.ORDER_RATE
    assert order(rs, "buy", "4", now=NOW + 499 * MS) == R.ORDER_RATE  # 0.998 of a token
    assert order(rs, "buy", "4", now=NOW + 500 * MS) == R.OK  # one token after 0.5 s


def test_strategy_order_rate_is_per_strategy() -> None:
    rs = two_symbols(strategy_order_rate_per_s="1", strategy_order_rate_burst=2)
    assert order(rs, "buy", "1", strategy="a") == R.OK
    assert order(rs, "buy", "2", strategy="a") == R.OK
    assert order(rs, "buy", "3", strategy="a") == R.STRATEGY_ORDER_RATE
    assert order(rs, "buy", "3", strategy="b") == R.OK
    assert order(rs, "buy", "4", strategy="a", now=NOW + 1000 * MS) == R.OK


def test_a_rejected_order_consumes_no_token() -> None:
    rs = two_symbols(order_rate_per_s="1", order_rate_burst=1, max_order_qty="10")
    for _ in range(5):
        assert order(rs, "buy", "11") == R.MAX_ORDER_QTY
    assert order(rs, "buy", "1") == R.OK
    assert order(rs, "buy", "2") == R.ORDER_RATE


def test_duplicate_order_within_the_window_trips_and_passes_at_the_window() -> None:
    rs = two_symbols(duplicate_window_ms=1000)
    assert order(rs, "buy", "1", "100") == R.OK
    assert order(rs, "buy", "1", "100", now=NOW + 999 * MS) == R.DUPLICATE_ORDER
    assert order(rs, "buy", "1", "100", now=NOW + 1000 * MS) == R.OK


def test_duplicate_order_needs_same_symbol_side_qty_and_price() -> None:
    rs = two_symbols(duplicate_window_ms=1000, allow_short=True)
    assert order(rs, "buy", "1", "100") == R.OK
    assert order(rs, "buy", "1", "100.01") == R.OK
    assert order(rs, "buy", "2", "100") == R.OK
    assert order(rs, "sell", "1", "100") == R.OK
    assert order(rs, "buy", "1", "50", symbol="MSFT") == R.OK
    assert order(rs, "buy", "1", "50", symbol="MSFT") == R.DUPLICATE_ORDER


def test_duplicate_window_per_symbol_override_and_off() -> None:
    rs = two_symbols(duplicate_window_ms=0, symbols={"MSFT": {"duplicate_window_ms": 500}})
    assert order(rs, "buy", "1") == R.OK
    assert order(rs, "buy", "1") == R.OK
    assert order(rs, "buy", "1", "50", symbol="MSFT") == R.OK
    assert order(rs, "buy", "1", "50", symbol="MSFT", now=NOW + 499 * MS) == R.DUPLICATE_ORDER


def test_a_rejected_order_is_not_remembered_as_a_duplicate() -> None:
    rs = two_symbols(duplicate_window_ms=1000, max_open_orders_per_symbol=1)
    coid = open_order(rs, "buy", "5")
    assert order(rs, "buy", "1") == R.MAX_OPEN_ORDERS_SYMBOL
    rs.release(coid)
    assert order(rs, "buy", "1") == R.OK
    assert int(rs.state[rs.sym("AAPL"), checks.DUP_NEXT]) == 1
