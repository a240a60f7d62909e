"""Pre-trade checks compiled with numba: one function, ints in, one reason code out.

State lives in two int64 arrays so more checks slot in without changing the call:
  * ``state[symbol_index, COL]``: the current quote, the position and the pending open quantity per side;
  * ``limits[LIM]``: the configured limits and the trading state.
A new check adds a column or a limit slot and a block in :func:`check_order` returning a new
:class:`~services.risk.reasons.Reason` code. All prices and quantities are int nanos; products that
could overflow int64 (price * qty, deviation * 10_000) are compared exactly with :func:`mul_gt`.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from numba import njit

from common.fixed import SCALE, to_fixed
from services.risk.reasons import Reason, TradingState

# state columns
BID = 0
ASK = 1
POSITION = 2  # signed
PENDING_BUY = 3  # open, unfilled buy qty (>= 0)
PENDING_SELL = 4  # open, unfilled sell qty (>= 0)
N_STATE = 5

# limit slots
L_MAX_ORDER_QTY = 0
L_MAX_ORDER_NOTIONAL = 1
L_MAX_POSITION = 2
L_PRICE_BAND_BPS = 3
L_REQUIRE_QUOTE = 4
L_TRADING_STATE = 5
N_LIMITS = 6

# order encoding
BUY = 1
SELL = -1
MARKET = 0
LIMIT = 1
STOP = 2
STOP_LIMIT = 3
ORDER_TYPES: dict[str, int] = {"market": MARKET, "limit": LIMIT, "stop": STOP, "stop_limit": STOP_LIMIT}
SIDES: dict[str, int] = {"buy": BUY, "sell": SELL}

# Prices and quantities above this are refused as bad orders; it keeps every intermediate below 2**62.
MAX_VALUE = 1 << 60
_LIMIT_CAP = (1 << 62) - 1
_M31 = (1 << 31) - 1

_OK = int(Reason.OK)
_BAD_ORDER = int(Reason.BAD_ORDER)
_HALTED = int(Reason.HALTED)
_REDUCE_ONLY = int(Reason.REDUCE_ONLY)
_MAX_ORDER_QTY = int(Reason.MAX_ORDER_QTY)
_NO_QUOTE = int(Reason.NO_QUOTE)
_MAX_ORDER_NOTIONAL = int(Reason.MAX_ORDER_NOTIONAL)
_PRICE_BAND = int(Reason.PRICE_BAND)
_MAX_POSITION = int(Reason.MAX_POSITION)
_ST_REDUCE_ONLY = int(TradingState.REDUCE_ONLY)
_ST_HALTED = int(TradingState.HALTED)


@njit(cache=True, nogil=True)
def mul_gt(a: int, b: int, c: int, d: int) -> bool:
    """Exactly ``a*b > c*d`` for 0 <= a, b, c, d < 2**62, in base-2**31 digits (no int64 overflow)."""
    a1, a0 = a >> 31, a & _M31
    b1, b0 = b >> 31, b & _M31
    c1, c0 = c >> 31, c & _M31
    d1, d0 = d >> 31, d & _M31
    lo_x = a0 * b0
    mid_x = a1 * b0 + a0 * b1 + (lo_x >> 31)
    hi_x = a1 * b1 + (mid_x >> 31)
    lo_y = c0 * d0
    mid_y = c1 * d0 + c0 * d1 + (lo_y >> 31)
    hi_y = c1 * d1 + (mid_y >> 31)
    if hi_x != hi_y:
        return hi_x > hi_y
    if (mid_x & _M31) != (mid_y & _M31):
        return (mid_x & _M31) > (mid_y & _M31)
    return (lo_x & _M31) > (lo_y & _M31)


@njit(cache=True, nogil=True)
def check_order(
    state: np.ndarray,
    limits: np.ndarray,
    sym: int,
    side: int,
    order_type: int,
    qty: int,
    limit_px: int,
    stop_px: int,
) -> int:
    """Reason code for one order (0 = approved). The first failing check wins, in this order:
    bad_order, halted, reduce_only, max_order_qty, no_quote, max_order_notional, price_band,
    max_position. The caller passes ints that fit int64 (see ``clamp``)."""
    if sym < 0 or sym >= state.shape[0] or (side != 1 and side != -1) or order_type < 0 or order_type > 3:
        return _BAD_ORDER
    if (
        qty <= 0
        or qty > MAX_VALUE
        or limit_px < 0
        or limit_px > MAX_VALUE
        or stop_px < 0
        or stop_px > MAX_VALUE
    ):
        return _BAD_ORDER
    if (order_type == 1 or order_type == 3) and limit_px == 0:
        return _BAD_ORDER
    if (order_type == 2 or order_type == 3) and stop_px == 0:
        return _BAD_ORDER

    pos = state[sym, 2]
    pending_same = state[sym, 3] if side == 1 else state[sym, 4]
    base = pos + side * pending_same  # worst-case position on this order's side before it
    projected = base + side * qty

    trading_state = limits[5]
    if trading_state == _ST_HALTED:
        return _HALTED
    if trading_state == _ST_REDUCE_ONLY and not (pos * side < 0 and projected * side <= 0):
        return _REDUCE_ONLY

    if qty > limits[0]:
        return _MAX_ORDER_QTY

    bid = state[sym, 0]
    ask = state[sym, 1]
    has_quote = bid > 0 and ask > 0
    # market and stop orders execute at the market: without a quote their notional is unknown
    if not has_quote and (order_type == 0 or order_type == 2 or limits[4] != 0):
        return _NO_QUOTE

    # The highest price the order can execute at on its side (notional is price * qty):
    if order_type == 0:
        px = ask if side == 1 else bid  # the far touch
    elif order_type == 2:
        # a buy stop at or below the ask triggers at once and buys at the ask; a sell stop triggers
        # at or below its stop price, so the stop price bounds it
        px = stop_px if side == -1 or stop_px > ask else ask
    else:
        # a buy limit never pays more than its limit; a marketable sell limit sells at the bid
        px = limit_px if side == 1 or limit_px > bid else bid
    if mul_gt(px, qty, limits[1], SCALE):
        return _MAX_ORDER_NOTIONAL

    if has_quote and (order_type == 1 or order_type == 3):
        two_mid = bid + ask
        dev2 = 2 * limit_px - two_mid
        if dev2 < 0:
            dev2 = -dev2
        if mul_gt(dev2, 10_000, limits[3], two_mid):
            return _PRICE_BAND

    abs_projected = projected if projected >= 0 else -projected
    abs_base = base if base >= 0 else -base
    # Beyond the limit, only an order that shrinks the exposure on the same side may pass; one
    # that flips the position to the other side must land within the limit there.
    flips = (base > 0 and projected < 0) or (base < 0 and projected > 0)
    if abs_projected > limits[2] and (abs_projected >= abs_base or flips):
        return _MAX_POSITION
    return _OK


def clamp(value: int) -> int:
    """An order field as an int64 the check rejects as a bad order when it is out of range.

    Wire ints may be anything up to 64 bits unsigned; numba would raise on those, not reject."""
    if value > MAX_VALUE:
        return MAX_VALUE + 1
    if value < 0:
        return -1
    return value


def new_state(n_symbols: int) -> np.ndarray:
    return np.zeros((n_symbols, N_STATE), dtype=np.int64)


def _cap(nanos: int) -> int:
    return max(0, min(nanos, _LIMIT_CAP))


def build_limits(
    max_order_qty: Decimal,
    max_order_notional: Decimal,
    max_position_qty: Decimal,
    price_band_bps: int,
    require_quote: bool,
    trading_state: TradingState = TradingState.ACTIVE,
) -> np.ndarray:
    limits = np.zeros(N_LIMITS, dtype=np.int64)
    limits[L_MAX_ORDER_QTY] = _cap(to_fixed(max_order_qty))
    limits[L_MAX_ORDER_NOTIONAL] = _cap(to_fixed(max_order_notional))
    limits[L_MAX_POSITION] = _cap(to_fixed(max_position_qty))
    limits[L_PRICE_BAND_BPS] = price_band_bps
    limits[L_REQUIRE_QUOTE] = 1 if require_quote else 0
    limits[L_TRADING_STATE] = int(trading_state)
    return limits


def warm_up() -> None:
    """Compile now (or load the cache) so the first real order does not pay for it."""
    state = new_state(1)
    limits = build_limits(Decimal(1), Decimal(1), Decimal(1), 1, True)
    check_order(state, limits, 0, BUY, LIMIT, 1, 1, 0)
