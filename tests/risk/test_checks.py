"""The numba pre-trade check: each check accepting and rejecting, trading states, and agreement with
a plain-Python reference (exact Python ints) on many random orders."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from common.fixed import SCALE, to_fixed
from services.risk import checks
from services.risk.checks import BUY, LIMIT, MARKET, SELL, STOP, STOP_LIMIT, check_order
from services.risk.reasons import Reason, TradingState

U = SCALE  # one share / one dollar in nanos


def limits(state: TradingState = TradingState.ACTIVE, require_quote: bool = True) -> np.ndarray:
    return checks.build_limits(Decimal(100), Decimal(50_000), Decimal(500), 500, require_quote, state)


def book(
    bid: str = "99.99", ask: str = "100.01", pos: int = 0, pend_buy: int = 0, pend_sell: int = 0
) -> np.ndarray:
    s = checks.new_state(2)
    s[0] = [to_fixed(bid), to_fixed(ask), pos * U, pend_buy * U, pend_sell * U]
    return s


def run(
    state: np.ndarray,
    lim: np.ndarray,
    side: int,
    otype: int,
    qty: str,
    limit_px: str = "0",
    stop_px: str = "0",
) -> Reason:
    return Reason(
        check_order(state, lim, 0, side, otype, to_fixed(qty), to_fixed(limit_px), to_fixed(stop_px))
    )


def test_accepts_a_plain_limit_order() -> None:
    assert run(book(), limits(), BUY, LIMIT, "10", "100.00") == Reason.OK


@pytest.mark.parametrize(
    ("side", "otype", "qty", "limit_px", "stop_px"),
    [
        (BUY, LIMIT, "0", "100", "0"),
        (BUY, LIMIT, "-1", "100", "0"),
        (BUY, LIMIT, "1", "0", "0"),  # limit without a price
        (BUY, STOP, "1", "0", "0"),  # stop without a stop price
        (BUY, STOP_LIMIT, "1", "100", "0"),
        (0, LIMIT, "1", "100", "0"),  # no side
        (BUY, 7, "1", "100", "0"),  # unknown order type
        (BUY, LIMIT, "1", "-1", "0"),
        (BUY, LIMIT, "1", str(Decimal(checks.MAX_VALUE + 1) / SCALE), "0"),
    ],
)
def test_bad_orders(side: int, otype: int, qty: str, limit_px: str, stop_px: str) -> None:
    assert run(book(), limits(), side, otype, qty, limit_px, stop_px) == Reason.BAD_ORDER


def test_unknown_symbol_index_is_a_bad_order() -> None:
    assert check_order(book(), limits(), 5, BUY, LIMIT, U, 100 * U, 0) == Reason.BAD_ORDER


def test_max_order_qty_is_inclusive() -> None:
    assert run(book(), limits(), BUY, LIMIT, "100", "100") == Reason.OK
    assert run(book(), limits(), BUY, LIMIT, "100.000000001", "100") == Reason.MAX_ORDER_QTY


def test_no_quote() -> None:
    no_quote = book(bid="0", ask="0")
    assert run(no_quote, limits(), BUY, LIMIT, "1", "100") == Reason.NO_QUOTE
    # A limit order may go without a quote when quotes are not required (no band check then) ...
    assert run(no_quote, limits(require_quote=False), BUY, LIMIT, "1", "100") == Reason.OK
    # ... a market order never: its notional needs the far touch.
    assert run(no_quote, limits(require_quote=False), BUY, MARKET, "1") == Reason.NO_QUOTE


def test_max_order_notional_exact_at_the_boundary() -> None:
    q = book(bid="499.99", ask="500.01")
    assert run(q, limits(), BUY, LIMIT, "100", "500") == Reason.OK  # exactly 50,000
    assert run(q, limits(), BUY, LIMIT, "100", "500.000000001") == Reason.MAX_ORDER_NOTIONAL


def test_market_orders_use_the_far_touch_for_notional() -> None:
    q = book(bid="499.99", ask="500.01")
    assert run(q, limits(), BUY, MARKET, "100") == Reason.MAX_ORDER_NOTIONAL  # 100 * ask 500.01
    assert run(q, limits(), SELL, MARKET, "100") == Reason.OK  # 100 * bid 499.99


def test_stop_orders_use_the_stop_price_for_notional() -> None:
    q = book(bid="489.99", ask="490.01")  # buy stops above the ask: they trigger at the stop price
    assert run(q, limits(), BUY, STOP, "100", stop_px="500") == Reason.OK
    assert run(q, limits(), BUY, STOP, "100", stop_px="501") == Reason.MAX_ORDER_NOTIONAL


def test_price_band_is_inclusive_around_the_mid() -> None:
    q = book(bid="99", ask="101")  # mid 100, band 500 bps = 5.00
    assert run(q, limits(), BUY, LIMIT, "1", "105") == Reason.OK
    assert run(q, limits(), BUY, LIMIT, "1", "95") == Reason.OK
    assert run(q, limits(), BUY, LIMIT, "1", "105.000000001") == Reason.PRICE_BAND
    assert run(q, limits(), SELL, LIMIT, "1", "94.999999999") == Reason.PRICE_BAND
    assert run(q, limits(), SELL, STOP_LIMIT, "1", "94", stop_px="96") == Reason.PRICE_BAND


def test_max_position_counts_position_and_pending_same_side() -> None:
    assert run(book(pos=400), limits(), BUY, LIMIT, "100", "100") == Reason.OK
    assert run(book(pos=400, pend_buy=1), limits(), BUY, LIMIT, "100", "100") == Reason.MAX_POSITION
    # pending sells do not count against a buy; pending buys do not count against a sell
    assert run(book(pos=400, pend_sell=50), limits(), BUY, LIMIT, "100", "100") == Reason.OK
    assert run(book(pos=-400, pend_sell=100), limits(), SELL, LIMIT, "1", "100") == Reason.MAX_POSITION
    assert run(book(pos=-400, pend_buy=100), limits(), SELL, LIMIT, "100", "100") == Reason.OK


def test_over_the_limit_an_order_that_shrinks_the_position_passes() -> None:
    assert run(book(pos=-600), limits(), BUY, LIMIT, "50", "100") == Reason.OK
    assert run(book(pos=600), limits(), BUY, LIMIT, "1", "100") == Reason.MAX_POSITION


def test_an_order_that_flips_the_position_must_fit_the_limit_on_the_other_side() -> None:
    # over the limit long, a sell may reduce; but landing short beyond the limit is a breach
    assert run(book(pos=600), limits(), SELL, LIMIT, "100", "100") == Reason.OK  # 600 -> 500
    big = checks.build_limits(Decimal(10_000), Decimal(10**9), Decimal(500), 500, True)
    assert run(book(pos=600), big, SELL, LIMIT, "1100", "100") == Reason.OK  # 600 -> -500
    assert run(book(pos=600), big, SELL, LIMIT, "1150", "100") == Reason.MAX_POSITION  # 600 -> -550
    assert run(book(pos=-600), big, BUY, LIMIT, "1101", "100") == Reason.MAX_POSITION  # -600 -> 501
    # pending same-side orders count: 600 long with 1000 pending sells is -400 at worst
    assert run(book(pos=600, pend_sell=1000), big, SELL, LIMIT, "150", "100") == Reason.MAX_POSITION


def test_stop_orders_need_a_quote_and_are_priced_where_they_can_execute() -> None:
    no_quote = book(bid="0", ask="0")
    lim = limits(require_quote=False)
    assert run(no_quote, lim, BUY, STOP, "1", stop_px="100") == Reason.NO_QUOTE
    assert run(no_quote, lim, BUY, STOP_LIMIT, "1", "100", stop_px="100") == Reason.OK
    q = book(bid="999.99", ask="1000.01")
    # a buy stop far below the market triggers at once and pays the ask: 100 * 1000.01 > 50,000
    assert run(q, limits(), BUY, STOP, "100", stop_px="1") == Reason.MAX_ORDER_NOTIONAL
    assert run(q, limits(), BUY, STOP, "49", stop_px="1") == Reason.OK
    # a sell stop never sells above its stop price
    assert run(q, limits(), SELL, STOP, "100", stop_px="400") == Reason.OK


def test_a_marketable_sell_limit_is_priced_at_the_bid() -> None:
    q = book(bid="505", ask="506")  # band 5% around 505.5: a sell at 490 is allowed
    assert run(q, limits(), SELL, LIMIT, "100", "490") == Reason.MAX_ORDER_NOTIONAL  # sells at 505
    assert run(q, limits(), SELL, LIMIT, "99", "490") == Reason.OK
    assert run(q, limits(), BUY, LIMIT, "98", "510") == Reason.OK  # a buy pays at most its limit


def test_out_of_range_wire_ints_are_bad_orders_not_errors() -> None:
    assert checks.clamp(2**64 - 1) == checks.MAX_VALUE + 1
    assert checks.clamp(-(2**63)) == -1
    for qty, px in ((2**64 - 1, 100 * U), (U, 2**63), (-(2**63), 100 * U)):
        got = check_order(book(), limits(), 0, BUY, LIMIT, checks.clamp(qty), checks.clamp(px), 0)
        assert got == Reason.BAD_ORDER


def test_halted_rejects_everything() -> None:
    lim = limits(TradingState.HALTED)
    assert run(book(pos=10), lim, SELL, LIMIT, "1", "100") == Reason.HALTED
    assert run(book(), lim, BUY, LIMIT, "1", "100") == Reason.HALTED


def test_reduce_only_allows_only_position_reducing_orders() -> None:
    lim = limits(TradingState.REDUCE_ONLY)
    assert run(book(pos=10), lim, SELL, LIMIT, "10", "100") == Reason.OK  # to flat
    assert run(book(pos=10), lim, SELL, LIMIT, "11", "100") == Reason.REDUCE_ONLY  # would flip
    assert run(book(pos=10, pend_sell=5), lim, SELL, LIMIT, "6", "100") == Reason.REDUCE_ONLY  # with pending
    assert run(book(pos=10), lim, BUY, LIMIT, "1", "100") == Reason.REDUCE_ONLY  # increases
    assert run(book(pos=0), lim, BUY, LIMIT, "1", "100") == Reason.REDUCE_ONLY  # opens
    assert run(book(pos=-10), lim, BUY, LIMIT, "4", "100") == Reason.OK
    assert run(book(pos=-10), lim, SELL, LIMIT, "1", "100") == Reason.REDUCE_ONLY


# ---- numba vs a plain-Python reference ------------------------------------------------------


def reference(
    bid: int, ask: int, pos: int, pend_buy: int, pend_sell: int, lim: list[int],
    side: int, otype: int, qty: int, limit_px: int, stop_px: int,
) -> Reason:  # fmt: skip
    max_qty, max_notional, max_pos, band_bps, require_quote, tstate = lim
    mx = checks.MAX_VALUE
    if side not in (1, -1) or otype not in (0, 1, 2, 3):
        return Reason.BAD_ORDER
    if not (0 < qty <= mx and 0 <= limit_px <= mx and 0 <= stop_px <= mx):
        return Reason.BAD_ORDER
    if (otype in (1, 3) and limit_px == 0) or (otype in (2, 3) and stop_px == 0):
        return Reason.BAD_ORDER
    base = pos + (pend_buy if side == 1 else -pend_sell)
    projected = base + side * qty
    if tstate == TradingState.HALTED:
        return Reason.HALTED
    if tstate == TradingState.REDUCE_ONLY:
        reduces = (pos < 0 < side and projected <= 0) or (pos > 0 > side and projected >= 0)
        if not reduces:
            return Reason.REDUCE_ONLY
    if qty > max_qty:
        return Reason.MAX_ORDER_QTY
    has_quote = bid > 0 and ask > 0
    if not has_quote and (otype in (0, 2) or require_quote):
        return Reason.NO_QUOTE
    if otype == 0:
        px = ask if side == 1 else bid
    elif otype == 2:
        px = max(stop_px, ask) if side == 1 else stop_px
    else:
        px = limit_px if side == 1 else max(limit_px, bid)
    if Fraction(px * qty, SCALE) > max_notional:
        return Reason.MAX_ORDER_NOTIONAL
    if has_quote and otype in (1, 3):
        mid = Fraction(bid + ask, 2)
        if abs(limit_px - mid) > mid * band_bps / 10_000:
            return Reason.PRICE_BAND
    flips = base * projected < 0
    if abs(projected) > max_pos and (abs(projected) >= abs(base) or flips):
        return Reason.MAX_POSITION
    return Reason.OK


def _random_order(rng: random.Random) -> tuple[list[int], list[int], tuple[int, ...]]:
    def px() -> int:
        return rng.choice(
            [
                0,
                rng.randint(1, 1000 * U),
                rng.randint(1, checks.MAX_VALUE),
                100 * U + rng.randint(-9 * U, 9 * U),
            ]
        )

    def q() -> int:
        return rng.choice(
            [rng.randint(0, 3) * U, rng.randint(-U, 200 * U), rng.randint(1, checks.MAX_VALUE + 2)]
        )

    bid = rng.choice([0, 100 * U - rng.randint(0, 5 * U), px()])
    ask = rng.choice([0, 100 * U + rng.randint(0, 5 * U), px()])
    st = [bid, ask, rng.randint(-700 * U, 700 * U), rng.randint(0, 300 * U), rng.randint(0, 300 * U)]
    lim = [
        rng.choice([100 * U, rng.randint(1, 1 << 62)]),
        rng.choice([50_000 * U, rng.randint(1, 1 << 62)]),
        rng.choice([500 * U, rng.randint(1, 1000 * U)]),
        rng.randint(1, 100_000),
        rng.randint(0, 1),
        rng.randint(0, 2),
    ]
    order = (rng.choice([1, -1, 1, -1, 0]), rng.choice([0, 1, 2, 3, 1, 1, 5]), q(), px(), px())
    return st, lim, order


def test_numba_matches_python_reference_on_random_orders() -> None:
    rng = random.Random(20261121)
    state = checks.new_state(1)
    lim = np.zeros(checks.N_LIMITS, dtype=np.int64)
    mismatches = []
    decided: set[Reason] = set()
    for _ in range(30_000):
        st, limv, (side, otype, qty, limit_px, stop_px) = _random_order(rng)
        state[0] = st
        lim[:] = limv
        got = Reason(check_order(state, lim, 0, side, otype, qty, limit_px, stop_px))
        want = reference(*st, limv, side, otype, qty, limit_px, stop_px)
        decided.add(want)
        if got != want:
            mismatches.append((st, limv, side, otype, qty, limit_px, stop_px, got, want))
    assert not mismatches[:5]
    assert decided == {r for r in Reason if r <= Reason.MAX_POSITION}  # every check was exercised


def test_mul_gt_is_exact_near_int64_limits() -> None:
    rng = random.Random(7)
    top = (1 << 62) - 1
    for _ in range(20_000):
        a, b, c = (rng.randint(0, top) for _ in range(3))
        d = rng.choice([rng.randint(0, top), b, b + 1 if b < top else b])
        assert checks.mul_gt(a, b, c, d) == (a * b > c * d)
        assert checks.mul_gt(a, b, a, b) is False
