"""Pre-trade checks compiled with numba: one call per order, ints in, one reason code out.

State lives in int64 arrays (built and kept by :class:`services.risk.state.RiskState`):
  * ``state[symbol_index, COL]``: the quote (bid, ask, exchange timestamp, mark), the position,
    the pending open quantity per side, the open order count, the symbol's effective limits
    (global defaults with its overrides applied) and a ring of its recently approved orders;
  * ``limits[LIM]``: global limits, the trading state, buying power, the day's P&L and the sums of
    every symbol's exposure and open orders, kept incrementally (``set_quote``, ``set_position``,
    ``set_pending``), so the check reads two sums and adjusts them for the order's symbol;
  * ``buckets[row, B_*]``: order-rate token buckets, row 0 global, row 1 + k strategy k.

The first failing check wins, in this order (reason = ``RejectReason`` member index):
  bad_order, symbol_not_allowed, halted, reduce_only, daily_loss, max_order_qty,
  no_quote / stale_quote, max_order_notional, price_band, flips_position, short_not_allowed,
  max_position, max_gross_exposure, max_net_exposure, buying_power, max_open_orders_symbol,
  max_open_orders, duplicate_order, strategy_order_rate, order_rate.
Only an approved order changes state: it takes a token from both buckets and is recorded for the
duplicate guard. All prices, quantities and money are int nanos; products that could overflow
int64 are compared exactly (:func:`mul_gt`) or computed with saturation (:func:`mul_div_sat`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from common.enums import OrderSide, OrderType, RejectReason, TradingState
from common.fixed import SCALE

# ---- per-symbol state columns -------------------------------------------------------------------
BID = 0
ASK = 1
POSITION = 2  # signed
PENDING_BUY = 3  # open, unfilled buy qty (>= 0)
PENDING_SELL = 4  # open, unfilled sell qty (>= 0)
QUOTE_NS = 5  # exchange timestamp of the quote (wall ns), 0 = none
MARK = 6  # price exposure is valued at: the quote mid, else the last fill / entry price; 0 = none
OPEN_ORDERS = 7
# the symbol's effective limits
S_MAX_ORDER_QTY = 8
S_MAX_ORDER_NOTIONAL = 9
S_MAX_POSITION = 10
S_PRICE_BAND_BPS = 11
S_MAX_OPEN_ORDERS = 12
S_MAX_QUOTE_AGE_NS = 13
S_DUP_WINDOW_NS = 14  # 0 = no duplicate guard
S_ALLOWED = 15  # 1 = may trade (allow / deny lists)
S_SHORT_ALLOWED = 16
# duplicate guard: a ring of the symbol's last approved orders
DUP_NEXT = 17  # ring slot the next approval is written to
DUP_BASE = 18
DUP_SLOTS = 8
D_NS, D_SIDE, D_QTY, D_LIMIT_PX, D_STOP_PX = 0, 1, 2, 3, 4
DUP_FIELDS = 5
# the symbol's share of the exposure sums, as last added to them (see refresh_exposure)
X_GROSS = DUP_BASE + DUP_SLOTS * DUP_FIELDS  # max(|high|, |low|)
X_HIGH = X_GROSS + 1  # signed value of position + pending buys at the mark
X_LOW = X_GROSS + 2  # signed value of position - pending sells at the mark
N_STATE = X_GROSS + 3

# ---- global slots -------------------------------------------------------------------------------
L_REQUIRE_QUOTE = 0
L_TRADING_STATE = 1  # TradingState.code
L_MAX_GROSS = 2  # money nanos
L_MAX_NET = 3
L_MAX_OPEN_ORDERS = 4
L_RATE = 5  # global order rate, nano-orders per second
L_BURST = 6  # global bucket size, nano-orders; 0 = no global rate limit
L_STRATEGY_RATE = 7
L_STRATEGY_BURST = 8  # 0 = no per-strategy rate limit
L_MAX_DAILY_LOSS = 9  # money nanos (> 0)
L_DAY_PNL = 10  # realized + unrealized, signed money nanos, written by the service
L_BUYING_POWER = 11  # money nanos, written by the service; BUYING_POWER_UNKNOWN = skip the check
L_SYMBOLS = 12  # state rows in use (exposure and open orders are summed over these)
# Sums over the rows in use, kept up to date as a quote, position or pending quantity changes, so
# the check reads them instead of looping over every symbol. Open orders is a plain count; each
# money sum is exact in two words (carry, remainder): sum = carry * 2**62 + remainder.
L_OPEN_ORDERS_SUM = 13
L_GROSS = 14  # sum of X_GROSS
L_HIGH_POS = 16  # sum of the positive X_HIGH
L_HIGH_NEG = 18  # sum of -X_HIGH for the negative ones
L_LOW_POS = 20
L_LOW_NEG = 22
N_LIMITS = 24
BUYING_POWER_UNKNOWN = -1

# ---- token bucket columns -----------------------------------------------------------------------
B_TOKENS = 0  # nano-orders
B_LAST_NS = 1  # wall ns of the last refill
N_BUCKET = 2

# ---- order encoding -----------------------------------------------------------------------------
BUY = 1
SELL = -1
MARKET = 0
LIMIT = 1
STOP = 2
STOP_LIMIT = 3
# Keyed by the Enum members (str subclasses: a plain "buy" finds its entry too): decoded intents
# carry the members themselves, and an identical key is the dict's fastest match.
ORDER_TYPES: dict[str, int] = {
    OrderType.MARKET: MARKET, OrderType.LIMIT: LIMIT, OrderType.STOP: STOP, OrderType.STOP_LIMIT: STOP_LIMIT
}  # fmt: skip
SIDES: dict[str, int] = {OrderSide.BUY: BUY, OrderSide.SELL: SELL}

# Prices, quantities and positions above this are refused (or clamped to it when they come from
# the venue); it keeps every intermediate below 2**62.
MAX_VALUE = 1 << 60
LIMIT_CAP = (1 << 62) - 1  # every limit and every saturated money value is at most this
_M31 = (1 << 31) - 1
_WORD = 1 << 62  # the remainder word of an exposure sum stays below this
_CAP_UNITS = LIMIT_CAP // SCALE
_DUP_SPAN = DUP_SLOTS * DUP_FIELDS

# what the check can return, in the order it checks
REASONS: tuple[RejectReason, ...] = tuple(
    RejectReason[name]
    for name in (
        "OK BAD_ORDER SYMBOL_NOT_ALLOWED HALTED REDUCE_ONLY DAILY_LOSS MAX_ORDER_QTY NO_QUOTE STALE_QUOTE "
        "MAX_ORDER_NOTIONAL PRICE_BAND FLIPS_POSITION SHORT_NOT_ALLOWED MAX_POSITION MAX_GROSS_EXPOSURE "
        "MAX_NET_EXPOSURE BUYING_POWER MAX_OPEN_ORDERS_SYMBOL MAX_OPEN_ORDERS DUPLICATE_ORDER "
        "STRATEGY_ORDER_RATE ORDER_RATE"
    ).split()
)
_OK = RejectReason.OK.code
_BAD_ORDER = RejectReason.BAD_ORDER.code
_SYMBOL_NOT_ALLOWED = RejectReason.SYMBOL_NOT_ALLOWED.code
_HALTED = RejectReason.HALTED.code
_REDUCE_ONLY = RejectReason.REDUCE_ONLY.code
_DAILY_LOSS = RejectReason.DAILY_LOSS.code
_MAX_ORDER_QTY = RejectReason.MAX_ORDER_QTY.code
_NO_QUOTE = RejectReason.NO_QUOTE.code
_STALE_QUOTE = RejectReason.STALE_QUOTE.code
_MAX_ORDER_NOTIONAL = RejectReason.MAX_ORDER_NOTIONAL.code
_PRICE_BAND = RejectReason.PRICE_BAND.code
_FLIPS_POSITION = RejectReason.FLIPS_POSITION.code
_SHORT_NOT_ALLOWED = RejectReason.SHORT_NOT_ALLOWED.code
_MAX_POSITION = RejectReason.MAX_POSITION.code
_MAX_GROSS = RejectReason.MAX_GROSS_EXPOSURE.code
_MAX_NET = RejectReason.MAX_NET_EXPOSURE.code
_BUYING_POWER = RejectReason.BUYING_POWER.code
_MAX_OPEN_ORDERS_SYMBOL = RejectReason.MAX_OPEN_ORDERS_SYMBOL.code
_MAX_OPEN_ORDERS = RejectReason.MAX_OPEN_ORDERS.code
_DUPLICATE_ORDER = RejectReason.DUPLICATE_ORDER.code
_STRATEGY_ORDER_RATE = RejectReason.STRATEGY_ORDER_RATE.code
_ORDER_RATE = RejectReason.ORDER_RATE.code
_ST_REDUCE_ONLY = TradingState.REDUCE_ONLY.code
_ST_HALTED = TradingState.HALTED.code


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
def mul_div_sat(a: int, b: int) -> int:
    """``min(a*b // SCALE, LIMIT_CAP)`` for 0 <= a, b <= LIMIT_CAP, exactly, without overflow.

    With a = a1*S + a0 and b = b1*S + b0: a*b/S = a1*b1*S + a1*b0 + a0*b1 + a0*b0/S, where every
    partial product stays below 2**62 and the sum saturates step by step."""
    a1 = a // SCALE
    b1 = b // SCALE
    a0 = a - a1 * SCALE
    b0 = b - b1 * SCALE
    if (a1 | b1) >> 31:  # rare: a1*b1 itself could overflow, so compare by division
        if a1 > 0 and b1 > _CAP_UNITS // a1:
            return LIMIT_CAP
    elif a1 * b1 > _CAP_UNITS:
        return LIMIT_CAP
    r = a1 * b1 * SCALE
    r = min(r + a1 * b0, LIMIT_CAP)
    r = min(r + a0 * b1, LIMIT_CAP)
    return min(r + (a0 * b0) // SCALE, LIMIT_CAP)


@njit(cache=True, nogil=True)
def _value(qty: int, mark: int) -> int:
    """Signed money value of a signed quantity at ``mark``, truncated toward zero, saturated."""
    if qty >= 0:
        return mul_div_sat(qty, mark)
    return -mul_div_sat(-qty, mark)


@njit(cache=True, nogil=True)
def _worst_abs(long_wc: int, short_wc: int) -> int:
    a = long_wc if long_wc >= 0 else -long_wc
    b = short_wc if short_wc >= 0 else -short_wc
    return a if a > b else b


@njit(cache=True, nogil=True)
def _net_abs(pos_sum: int, neg_sum: int) -> int:
    """|net| from the saturated sums of the positive and the negative values."""
    net = min(pos_sum, LIMIT_CAP) - min(neg_sum, LIMIT_CAP)
    return net if net >= 0 else -net


@njit(cache=True, nogil=True)
def _contribution(pos: int, pending_buy: int, pending_sell: int, mark: int) -> tuple:
    """A symbol's (gross, high, low): its worst case spans ``position + pending buys`` (high) to
    ``position - pending sells`` (low), valued at the mark; gross is the larger absolute value."""
    if mark <= 0 or (pos == 0 and pending_buy == 0 and pending_sell == 0):
        return 0, 0, 0
    high = _value(pos + pending_buy, mark)
    low = high if pending_buy == 0 and pending_sell == 0 else _value(pos - pending_sell, mark)
    # the value is monotonic in |qty|: the larger |end| is the larger |value|
    return max(abs(high), abs(low)), high, low


@njit(cache=True, nogil=True)
def _add(limits: np.ndarray, slot: int, add: int, sub: int) -> None:
    """A two-word sum += add - sub, for 0 <= add, sub < 2**62 (one carry at most)."""
    rem = limits[slot + 1] + add - sub
    if rem >= _WORD:
        rem -= _WORD
        limits[slot] += 1
    elif rem < 0:
        rem += _WORD
        limits[slot] -= 1
    limits[slot + 1] = rem


@njit(cache=True, nogil=True)
def _others(limits: np.ndarray, slot: int, own: int) -> int:
    """``min(sum - own, LIMIT_CAP)``: a two-word sum without one symbol's share, saturated."""
    carry = limits[slot]
    rem = limits[slot + 1] - own
    if rem < 0:
        rem += _WORD
        carry -= 1
    if carry > 0:
        return LIMIT_CAP
    return min(rem, LIMIT_CAP)


@njit(cache=True, nogil=True)
def refresh_exposure(state: np.ndarray, limits: np.ndarray, i: int) -> None:
    """Recompute row ``i``'s share of the exposure sums from its position, pending and mark."""
    gross, high, low = _contribution(
        state[i, POSITION], state[i, PENDING_BUY], state[i, PENDING_SELL], state[i, MARK]
    )
    old_high = state[i, X_HIGH]
    old_low = state[i, X_LOW]
    _add(limits, L_GROSS, gross, state[i, X_GROSS])
    _add(limits, L_HIGH_POS, max(high, 0), max(old_high, 0))
    _add(limits, L_HIGH_NEG, max(-high, 0), max(-old_high, 0))
    _add(limits, L_LOW_POS, max(low, 0), max(old_low, 0))
    _add(limits, L_LOW_NEG, max(-low, 0), max(-old_low, 0))
    state[i, X_GROSS] = gross
    state[i, X_HIGH] = high
    state[i, X_LOW] = low


@njit(cache=True, nogil=True)
def rebuild_exposure(state: np.ndarray, limits: np.ndarray) -> None:
    """Every sum from scratch over the rows in use (after a bulk change of the state)."""
    for slot in range(L_OPEN_ORDERS_SUM, N_LIMITS):
        limits[slot] = 0
    state[:, X_GROSS] = 0
    state[:, X_HIGH] = 0
    state[:, X_LOW] = 0
    for i in range(min(limits[L_SYMBOLS], state.shape[0])):
        limits[L_OPEN_ORDERS_SUM] += state[i, OPEN_ORDERS]
        refresh_exposure(state, limits, i)


@njit(cache=True, nogil=True)
def set_quote(state: np.ndarray, limits: np.ndarray, i: int, bid: int, ask: int, quote_ns: int) -> None:
    """A quote (0 < bid, ask <= MAX_VALUE) marks the symbol at its mid; bid = 0 clears the quote
    and keeps the mark."""
    if bid <= 0 or ask <= 0:
        state[i, BID] = 0
        state[i, ASK] = 0
        state[i, QUOTE_NS] = 0
        return
    state[i, BID] = bid
    state[i, ASK] = ask
    state[i, MARK] = (bid + ask) // 2
    state[i, QUOTE_NS] = quote_ns
    refresh_exposure(state, limits, i)


@njit(cache=True, nogil=True)
def set_position(state: np.ndarray, limits: np.ndarray, i: int, qty: int, entry_px: int) -> None:
    """A (clamped) position; without a mark yet, a non-flat position is valued at ``entry_px``."""
    state[i, POSITION] = qty
    if state[i, MARK] <= 0 and qty != 0:
        state[i, MARK] = entry_px
    refresh_exposure(state, limits, i)


@njit(cache=True, nogil=True)
def set_pending(state: np.ndarray, limits: np.ndarray, i: int, buy: int, sell: int, orders: int) -> None:
    limits[L_OPEN_ORDERS_SUM] += orders - state[i, OPEN_ORDERS]
    state[i, PENDING_BUY] = buy
    state[i, PENDING_SELL] = sell
    state[i, OPEN_ORDERS] = orders
    refresh_exposure(state, limits, i)


@njit(cache=True, nogil=True)
def _exposure(state: np.ndarray, limits: np.ndarray, sym: int, side: int, qty: int, own_mark: int) -> tuple:
    """(gross before, gross after, net before, net after): the other symbols' shares come from
    the sums (minus this symbol's share), this symbol's ends are valued at ``own_mark``."""
    own_high = state[sym, X_HIGH]
    own_low = state[sym, X_LOW]
    gross = _others(limits, L_GROSS, state[sym, X_GROSS])
    hi_pos = _others(limits, L_HIGH_POS, max(own_high, 0))
    hi_neg = _others(limits, L_HIGH_NEG, max(-own_high, 0))
    lo_pos = _others(limits, L_LOW_POS, max(own_low, 0))
    lo_neg = _others(limits, L_LOW_NEG, max(-own_low, 0))

    pos = state[sym, POSITION]
    long_b = pos + state[sym, PENDING_BUY]
    short_b = pos - state[sym, PENDING_SELL]
    long_a = long_b + qty if side == 1 else long_b
    short_a = short_b - qty if side == -1 else short_b
    gross_b = min(gross + mul_div_sat(_worst_abs(long_b, short_b), own_mark), LIMIT_CAP)
    gross_a = min(gross + mul_div_sat(_worst_abs(long_a, short_a), own_mark), LIMIT_CAP)
    net_b = max(
        _net_ends(hi_pos, hi_neg, _value(long_b, own_mark)),
        _net_ends(lo_pos, lo_neg, _value(short_b, own_mark)),
    )
    net_a = max(
        _net_ends(hi_pos, hi_neg, _value(long_a, own_mark)),
        _net_ends(lo_pos, lo_neg, _value(short_a, own_mark)),
    )
    return gross_b, gross_a, net_b, net_a


@njit(cache=True, nogil=True)
def _net_ends(pos_sum: int, neg_sum: int, own: int) -> int:
    if own >= 0:
        return _net_abs(pos_sum + own, neg_sum)
    return _net_abs(pos_sum, neg_sum - own)


@njit(cache=True, nogil=True)
def _refilled(buckets: np.ndarray, row: int, rate: int, burst: int, now_ns: int) -> int:
    """Tokens (nano-orders) in a bucket at ``now_ns``; the clock going back refills nothing."""
    elapsed = now_ns - buckets[row, B_LAST_NS]
    if elapsed < 0:
        elapsed = 0
    return min(buckets[row, B_TOKENS] + mul_div_sat(elapsed, rate), burst)


@njit(cache=True, nogil=True)
def _is_duplicate(
    state: np.ndarray, sym: int, side: int, qty: int, limit_px: int, stop_px: int, now: int
) -> bool:
    window = state[sym, S_DUP_WINDOW_NS]
    if window <= 0:
        return False
    for k in range(DUP_BASE, DUP_BASE + _DUP_SPAN, DUP_FIELDS):
        ts = state[sym, k + D_NS]
        if (
            ts > 0
            and now - ts < window
            and state[sym, k + D_SIDE] == side
            and state[sym, k + D_QTY] == qty
            and state[sym, k + D_LIMIT_PX] == limit_px
            and state[sym, k + D_STOP_PX] == stop_px
        ):
            return True
    return False


@njit(cache=True, nogil=True)
def _record(state: np.ndarray, sym: int, side: int, qty: int, limit_px: int, stop_px: int, now: int) -> None:
    k = state[sym, DUP_NEXT]
    base = DUP_BASE + k * DUP_FIELDS
    state[sym, base + D_NS] = now
    state[sym, base + D_SIDE] = side
    state[sym, base + D_QTY] = qty
    state[sym, base + D_LIMIT_PX] = limit_px
    state[sym, base + D_STOP_PX] = stop_px
    state[sym, DUP_NEXT] = (k + 1) % DUP_SLOTS


@njit(cache=True, nogil=True)
def _bad_order(
    state: np.ndarray, buckets: np.ndarray, sym: int, strat: int, side: int, order_type: int,
    qty: int, limit_px: int, stop_px: int,
) -> bool:  # fmt: skip
    if sym < 0 or sym >= state.shape[0] or strat < 0 or strat + 1 >= buckets.shape[0]:
        return True
    if (side != 1 and side != -1) or order_type < 0 or order_type > 3:
        return True
    if (
        qty <= 0
        or qty > MAX_VALUE
        or limit_px < 0
        or limit_px > MAX_VALUE
        or stop_px < 0
        or stop_px > MAX_VALUE
    ):
        return True
    if (order_type == 1 or order_type == 3) and limit_px == 0:
        return True
    return (order_type == 2 or order_type == 3) and stop_px == 0


# Not nogil: releasing and retaking the GIL costs ~60 ns a call, and risk calls it from one thread.
@njit(cache=True)
def check_order(
    state: np.ndarray,
    limits: np.ndarray,
    buckets: np.ndarray,
    sym: int,
    strat: int,
    side: int,
    order_type: int,
    qty: int,
    limit_px: int,
    stop_px: int,
    now_ns: int,
) -> int:
    """Reason code for one order (0 = approved), checks in the order of the module docstring.

    ``strat`` is the strategy's index (its bucket is row ``strat + 1``). The caller passes ints
    that fit int64 (see :func:`clamp`)."""
    if _bad_order(state, buckets, sym, strat, side, order_type, qty, limit_px, stop_px):
        return _BAD_ORDER
    if state[sym, S_ALLOWED] == 0:
        return _SYMBOL_NOT_ALLOWED

    pos = state[sym, POSITION]
    pending_same = state[sym, PENDING_BUY] if side == 1 else state[sym, PENDING_SELL]
    base = pos + side * pending_same  # worst-case position on this order's side before it
    projected = base + side * qty
    # shrinks |position| even if every pending same-side order fills, and never crosses zero
    reduces = pos * side < 0 and projected * side <= 0

    trading_state = limits[L_TRADING_STATE]
    if trading_state == _ST_HALTED:
        return _HALTED
    if trading_state == _ST_REDUCE_ONLY and not reduces:
        return _REDUCE_ONLY
    if not reduces and -limits[L_DAY_PNL] > limits[L_MAX_DAILY_LOSS]:
        return _DAILY_LOSS

    if qty > state[sym, S_MAX_ORDER_QTY]:
        return _MAX_ORDER_QTY

    bid = state[sym, BID]
    ask = state[sym, ASK]
    max_age = state[sym, S_MAX_QUOTE_AGE_NS]
    age = now_ns - state[sym, QUOTE_NS]
    fresh = state[sym, QUOTE_NS] > 0 and age <= max_age and -age <= max_age
    # market and stop orders execute at the market: without a quote their notional is unknown
    quote_required = order_type == 0 or order_type == 2 or limits[L_REQUIRE_QUOTE] != 0
    if bid <= 0 or ask <= 0:
        if quote_required:
            return _NO_QUOTE
        has_quote = False
    elif not fresh:
        if quote_required:
            return _STALE_QUOTE
        has_quote = False  # an optional quote that is stale is ignored, as if there were none
    else:
        has_quote = True

    # The highest price the order can execute at on its side (notional is price * qty):
    if order_type == 0:
        px = ask if side == 1 else bid  # the far touch
    elif order_type == 2:
        # a buy stop at or below the ask triggers at once and buys at the ask; a sell stop triggers
        # at or below its stop price, so the stop price bounds it
        px = stop_px if side == -1 or stop_px > ask else ask
    else:
        # a buy limit never pays more than its limit; a marketable sell limit sells at the bid
        px = limit_px if side == 1 or (not has_quote) or limit_px > bid else bid
    if mul_gt(px, qty, state[sym, S_MAX_ORDER_NOTIONAL], SCALE):
        return _MAX_ORDER_NOTIONAL

    if has_quote and (order_type == 1 or order_type == 3):
        two_mid = bid + ask
        dev2 = 2 * limit_px - two_mid
        if dev2 < 0:
            dev2 = -dev2
        if mul_gt(dev2, 10_000, state[sym, S_PRICE_BAND_BPS], two_mid):
            return _PRICE_BAND

    # Alpaca refuses an order that takes a long position short (or back) in one go
    if (pos > 0 and projected < 0) or (pos < 0 and projected > 0):
        return _FLIPS_POSITION
    if side == -1 and projected < 0 and state[sym, S_SHORT_ALLOWED] == 0:
        return _SHORT_NOT_ALLOWED

    abs_projected = projected if projected >= 0 else -projected
    abs_base = base if base >= 0 else -base
    if abs_projected > state[sym, S_MAX_POSITION] and abs_projected >= abs_base:
        return _MAX_POSITION

    own_mark = state[sym, MARK]
    if own_mark <= 0:
        own_mark = px
    gross_b, gross_a, net_b, net_a = _exposure(state, limits, sym, side, qty, own_mark)
    if gross_a > limits[L_MAX_GROSS] and gross_a > gross_b:
        return _MAX_GROSS
    if net_a > limits[L_MAX_NET] and net_a > net_b:
        return _MAX_NET

    buying_power = limits[L_BUYING_POWER]
    if buying_power >= 0 and not reduces and mul_gt(px, qty, buying_power, SCALE):
        return _BUYING_POWER

    if state[sym, OPEN_ORDERS] >= state[sym, S_MAX_OPEN_ORDERS]:
        return _MAX_OPEN_ORDERS_SYMBOL
    if limits[L_OPEN_ORDERS_SUM] >= limits[L_MAX_OPEN_ORDERS]:
        return _MAX_OPEN_ORDERS

    if _is_duplicate(state, sym, side, qty, limit_px, stop_px, now_ns):
        return _DUPLICATE_ORDER

    row = strat + 1
    strategy_burst = limits[L_STRATEGY_BURST]
    strategy_tokens = _refilled(buckets, row, limits[L_STRATEGY_RATE], strategy_burst, now_ns)
    if strategy_burst > 0 and strategy_tokens < SCALE:
        return _STRATEGY_ORDER_RATE
    burst = limits[L_BURST]
    tokens = _refilled(buckets, 0, limits[L_RATE], burst, now_ns)
    if burst > 0 and tokens < SCALE:
        return _ORDER_RATE

    # approved: only now does the order consume anything
    _take(buckets, row, strategy_tokens, now_ns)
    _take(buckets, 0, tokens, now_ns)
    _record(state, sym, side, qty, limit_px, stop_px, now_ns)
    return _OK


@njit(cache=True, nogil=True)
def _take(buckets: np.ndarray, row: int, tokens: int, now_ns: int) -> None:
    buckets[row, B_TOKENS] = tokens - SCALE
    if now_ns > buckets[row, B_LAST_NS]:
        buckets[row, B_LAST_NS] = now_ns


def clamp(value: int) -> int:
    """An order field as an int64 the check rejects as a bad order when it is out of range.

    Wire ints may be anything up to 64 bits unsigned; numba would raise on those, not reject."""
    if value > MAX_VALUE:
        return MAX_VALUE + 1
    if value < 0:
        return -1
    return value


def clamp_signed(value: int) -> int:
    """A position or quantity from the venue, clamped to +-MAX_VALUE so sums stay below 2**62."""
    return max(-MAX_VALUE, min(value, MAX_VALUE))


def cap(nanos: int) -> int:
    """A limit in nanos, clamped to [0, LIMIT_CAP]."""
    return max(0, min(nanos, LIMIT_CAP))


def new_state(n_symbols: int) -> np.ndarray:
    return np.zeros((n_symbols, N_STATE), dtype=np.int64)


def new_buckets(n_strategies: int) -> np.ndarray:
    return np.zeros((n_strategies + 1, N_BUCKET), dtype=np.int64)


def warm_up() -> None:
    """Compile now (or load the cache) so the first real order does not pay for it."""
    state = new_state(1)
    state[0, S_ALLOWED] = 1
    limits = np.zeros(N_LIMITS, dtype=np.int64)
    limits[L_SYMBOLS] = 1
    check_order(state, limits, new_buckets(1), 0, 0, BUY, LIMIT, 1, 1, 0, 1)
    set_quote(state, limits, 0, 1, 1, 1)
    set_position(state, limits, 0, 0, 1)
    set_pending(state, limits, 0, 0, 0, 0)
    rebuild_exposure(state, limits)


def compiled_check() -> Callable[..., int]:
    """``check_order``'s compiled entry point, which skips the dispatcher's per-call type
    resolution (~200 ns): risk always calls it with the same types (int64 C arrays, ints).
    Falls back to the dispatcher if numba compiled more than one signature."""
    warm_up()
    signatures = check_order.signatures
    if len(signatures) != 1:
        return check_order  # type: ignore[no-any-return]
    return check_order.overloads[signatures[0]].entry_point  # type: ignore[no-any-return]
