"""Order-level pre-trade checks: malformed orders, max quantity and notional (global and per symbol),
the price band, and the quote the order is priced against (missing or stale by exchange time)."""

from __future__ import annotations

import pytest

from common.enums import RejectReason as R
from common.fixed import SCALE
from services.risk import checks
from tests.risk.checks_support import MS, NOW, order, quote, risk


def quoted(**config: object) -> object:
    rs = risk(**config)
    quote(rs, "99.99", "100.01")
    return rs


def test_a_plain_limit_order_passes() -> None:
    assert order(quoted(), "buy", "10", "100") == R.OK


@pytest.mark.parametrize(
    ("qty", "limit_px", "order_type", "stop_px"),
    [("0", "100", "limit", "0"), ("-1", "100", "limit", "0"), ("1", "0", "limit", "0"),
     ("1", "0", "stop", "0"), ("1", "100", "stop_limit", "0"), ("1", "-1", "limit", "0")],
)  # fmt: skip
def test_malformed_orders_are_bad_orders(qty: str, limit_px: str, order_type: str, stop_px: str) -> None:
    assert order(quoted(), "buy", qty, limit_px, order_type, stop_px) == R.BAD_ORDER


def test_out_of_range_wire_ints_are_bad_orders_not_errors() -> None:
    rs = quoted()
    assert checks.clamp(2**64 - 1) == checks.MAX_VALUE + 1
    big = str(2**64 // SCALE)
    assert order(rs, "buy", big, "100") == R.BAD_ORDER
    assert order(rs, "buy", "1", big) == R.BAD_ORDER


def test_max_order_qty_trips_above_and_passes_at_the_limit() -> None:
    rs = quoted(max_order_qty="100")
    assert order(rs, "buy", "100", "100") == R.OK
    assert order(rs, "buy", "100.000000001", "100") == R.MAX_ORDER_QTY


def test_max_order_qty_per_symbol_override() -> None:
    rs = quoted(max_order_qty="100", symbols={"AAPL": {"max_order_qty": "5"}})
    quote(rs, "99.99", "100.01", symbol="MSFT")
    assert order(rs, "buy", "5", "100") == R.OK
    assert order(rs, "buy", "6", "100") == R.MAX_ORDER_QTY
    assert order(rs, "buy", "6", "100", symbol="MSFT") == R.OK


def test_max_order_notional_trips_above_and_passes_at_the_limit() -> None:
    rs = risk(max_order_notional="50000")
    quote(rs, "499.99", "500.01")
    assert order(rs, "buy", "100", "500") == R.OK  # exactly 50,000
    assert order(rs, "buy", "100", "500.000000001") == R.MAX_ORDER_NOTIONAL


def test_max_order_notional_per_symbol_override() -> None:
    rs = risk(symbols={"AAPL": {"max_order_notional": "1000"}})
    quote(rs, "99.99", "100.01")
    assert order(rs, "buy", "10", "100") == R.OK
    assert order(rs, "buy", "10.01", "100") == R.MAX_ORDER_NOTIONAL


def test_market_orders_are_priced_at_the_far_touch() -> None:
    rs = risk(max_order_notional="50000", allow_short=True)
    quote(rs, "499.99", "500.01")
    assert order(rs, "buy", "100", "0", "market") == R.MAX_ORDER_NOTIONAL  # 100 * ask 500.01
    assert order(rs, "sell", "100", "0", "market") == R.OK  # 100 * bid 499.99


def test_a_marketable_sell_limit_is_priced_at_the_bid() -> None:
    rs = risk(max_order_notional="50000", allow_short=True)
    quote(rs, "505", "506")
    assert order(rs, "sell", "100", "490") == R.MAX_ORDER_NOTIONAL  # sells at 505
    assert order(rs, "sell", "99", "490") == R.OK


def test_price_band_trips_beyond_and_passes_at_the_band() -> None:
    rs = risk(price_band_bps=500)
    quote(rs, "99", "101")  # mid 100, 5% = 5.00
    assert order(rs, "buy", "1", "105") == R.OK
    assert order(rs, "buy", "1", "95") == R.OK
    assert order(rs, "buy", "1", "105.000000001") == R.PRICE_BAND
    assert order(rs, "buy", "1", "94.999999999") == R.PRICE_BAND


def test_price_band_per_symbol_override() -> None:
    rs = risk(price_band_bps=500, symbols={"AAPL": {"price_band_bps": 100}})
    quote(rs, "99", "101")
    assert order(rs, "buy", "1", "101") == R.OK
    assert order(rs, "buy", "1", "101.01") == R.PRICE_BAND


def test_no_quote_rejects_when_a_quote_is_required() -> None:
    assert order(risk(), "buy", "1", "100") == R.NO_QUOTE
    assert order(risk(require_quote=False), "buy", "1", "100") == R.OK
    assert order(risk(require_quote=False), "buy", "1", "0", "market") == R.NO_QUOTE


def test_stale_quote_by_exchange_time_trips_beyond_and_passes_at_the_age() -> None:
    rs = risk(max_quote_age_ms=2000)
    quote(rs, "99.99", "100.01", age_ms=2000)
    assert order(rs, "buy", "1", "100") == R.OK
    assert order(rs, "buy", "1", "100", now=NOW + 1) == R.STALE_QUOTE


def test_a_quote_received_just_now_is_still_stale_by_its_exchange_time() -> None:
    # market_data stalled: the quote was read a moment ago (recv_ns = NOW) but is 2.5 s old
    rs = risk(max_quote_age_ms=1000)
    quote(rs, "99.99", "100.01", age_ms=2500)
    assert order(rs, "buy", "1", "100") == R.STALE_QUOTE


def test_quotes_from_the_future_or_without_a_timestamp_are_stale() -> None:
    rs = risk(max_quote_age_ms=1000)
    quote(rs, "99.99", "100.01", exch_ns=NOW + 1000 * MS)
    assert order(rs, "buy", "1", "100") == R.OK
    quote(rs, "99.99", "100.01", exch_ns=NOW + 1000 * MS + 1)
    assert order(rs, "buy", "1", "100") == R.STALE_QUOTE
    quote(rs, "99.99", "100.01", exch_ns=0)
    assert order(rs, "buy", "1", "100") == R.STALE_QUOTE


def test_stale_quote_per_symbol_override() -> None:
    rs = risk(max_quote_age_ms=1000, symbols={"AAPL": {"max_quote_age_ms": 5000}})
    quote(rs, "99.99", "100.01", age_ms=4000)
    quote(rs, "99.99", "100.01", age_ms=4000, symbol="MSFT")
    assert order(rs, "buy", "1", "100") == R.OK
    assert order(rs, "buy", "1", "100", symbol="MSFT") == R.STALE_QUOTE


def test_an_optional_stale_quote_is_ignored_not_used() -> None:
    rs = risk(require_quote=False, max_quote_age_ms=1000)
    quote(rs, "99.99", "100.01", age_ms=5000)
    assert order(rs, "buy", "1", "150") == R.OK  # no band check against a stale quote
    assert order(rs, "buy", "1", "0", "market") == R.STALE_QUOTE  # a market order needs it
