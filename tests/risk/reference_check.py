"""The pre-trade check in plain Python with exact ints: the specification the numba check must match.

Same inputs as :func:`services.risk.checks.check_order` but as Python lists (``rows[symbol][COL]``,
``lim[LIM]``, ``buckets[row][B_*]``); on approval it updates ``rows`` and ``buckets`` in place.
Money that could exceed int64 saturates at ``LIMIT_CAP`` (the numba check's documented bound).
"""

from __future__ import annotations

from fractions import Fraction

from common.enums import RejectReason as R
from common.enums import TradingState
from common.fixed import SCALE
from services.risk import checks as c

CAP = c.LIMIT_CAP


def _value(qty: int, mark: int) -> int:
    """Money value of a signed quantity, truncated toward zero, saturated at +-CAP."""
    v = min(abs(qty) * mark // SCALE, CAP)
    return v if qty >= 0 else -v


def _net(values: list[int]) -> int:
    positive = min(sum(v for v in values if v > 0), CAP)
    negative = min(-sum(v for v in values if v < 0), CAP)
    return abs(positive - negative)


def _exposures(
    rows: list[list[int]], sym: int, long_own: int, short_own: int, own_mark: int
) -> tuple[int, int]:
    """(gross, net) with the order's symbol at the given worst-case ends."""
    gross, highs, lows = 0, [], []
    for i, r in enumerate(rows):
        mark = own_mark if i == sym else r[c.MARK]
        if mark <= 0:
            continue
        long_wc = long_own if i == sym else r[c.POSITION] + r[c.PENDING_BUY]
        short_wc = short_own if i == sym else r[c.POSITION] - r[c.PENDING_SELL]
        gross += min(max(abs(long_wc), abs(short_wc)) * mark // SCALE, CAP)
        highs.append(_value(long_wc, mark))
        lows.append(_value(short_wc, mark))
    return min(gross, CAP), max(_net(highs), _net(lows))


def _valid(n_rows: int, n_strategies: int, sym: int, strat: int, side: int, otype: int, qty: int, lpx: int, spx: int) -> bool:  # fmt: skip
    mx = c.MAX_VALUE
    return (
        0 <= sym < n_rows
        and 0 <= strat < n_strategies
        and side in (1, -1)
        and otype in (0, 1, 2, 3)
        and 0 < qty <= mx
        and 0 <= lpx <= mx
        and 0 <= spx <= mx
        and not (otype in (1, 3) and lpx == 0)
        and not (otype in (2, 3) and spx == 0)
    )


def _tokens(bucket: list[int], rate: int, burst: int, now: int) -> int:
    elapsed = max(now - bucket[c.B_LAST_NS], 0)
    return min(bucket[c.B_TOKENS] + min(elapsed * rate // SCALE, CAP), burst)


def reference_check(
    rows: list[list[int]], lim: list[int], buckets: list[list[int]],
    sym: int, strat: int, side: int, otype: int, qty: int, lpx: int, spx: int, now: int,
) -> R:  # fmt: skip
    if not _valid(len(rows), len(buckets) - 1, sym, strat, side, otype, qty, lpx, spx):
        return R.BAD_ORDER
    r = rows[sym]
    if not r[c.S_ALLOWED]:
        return R.SYMBOL_NOT_ALLOWED
    pos = r[c.POSITION]
    long_b, short_b = pos + r[c.PENDING_BUY], pos - r[c.PENDING_SELL]
    before = long_b if side == 1 else short_b
    after = before + side * qty
    reduces = (pos > 0 and side == -1 and after >= 0) or (pos < 0 and side == 1 and after <= 0)
    state = TradingState.from_code(lim[c.L_TRADING_STATE]) if lim[c.L_TRADING_STATE] in (0, 1, 2) else None
    if state is TradingState.HALTED:
        return R.HALTED
    if state is TradingState.REDUCE_ONLY and not reduces:
        return R.REDUCE_ONLY
    if not reduces and -lim[c.L_DAY_PNL] > lim[c.L_MAX_DAILY_LOSS]:
        return R.DAILY_LOSS
    if qty > r[c.S_MAX_ORDER_QTY]:
        return R.MAX_ORDER_QTY

    bid, ask, ts = r[c.BID], r[c.ASK], r[c.QUOTE_NS]
    required = otype in (0, 2) or lim[c.L_REQUIRE_QUOTE] != 0
    present = bid > 0 and ask > 0
    fresh = ts > 0 and abs(now - ts) <= r[c.S_MAX_QUOTE_AGE_NS]
    if required and not present:
        return R.NO_QUOTE
    if required and not fresh:
        return R.STALE_QUOTE
    quoted = present and fresh

    if otype == 0:
        px = ask if side == 1 else bid
    elif otype == 2:
        px = max(spx, ask) if side == 1 else spx
    else:
        px = max(lpx, bid) if side == -1 and quoted else lpx
    if px * qty > r[c.S_MAX_ORDER_NOTIONAL] * SCALE:
        return R.MAX_ORDER_NOTIONAL
    if quoted and otype in (1, 3):
        mid = Fraction(bid + ask, 2)
        if abs(lpx - mid) * 10_000 > mid * r[c.S_PRICE_BAND_BPS]:
            return R.PRICE_BAND
    if pos * after < 0:
        return R.FLIPS_POSITION
    if side == -1 and after < 0 and not r[c.S_SHORT_ALLOWED]:
        return R.SHORT_NOT_ALLOWED
    if abs(after) > r[c.S_MAX_POSITION] and abs(after) >= abs(before):
        return R.MAX_POSITION

    mark = r[c.MARK] if r[c.MARK] > 0 else px
    gross_b, net_b = _exposures(rows, sym, long_b, short_b, mark)
    long_a, short_a = (long_b + qty, short_b) if side == 1 else (long_b, short_b - qty)
    gross_a, net_a = _exposures(rows, sym, long_a, short_a, mark)
    if gross_a > lim[c.L_MAX_GROSS] and gross_a > gross_b:
        return R.MAX_GROSS_EXPOSURE
    if net_a > lim[c.L_MAX_NET] and net_a > net_b:
        return R.MAX_NET_EXPOSURE
    bp = lim[c.L_BUYING_POWER]
    if bp >= 0 and not reduces and px * qty > bp * SCALE:
        return R.BUYING_POWER
    if r[c.OPEN_ORDERS] >= r[c.S_MAX_OPEN_ORDERS]:
        return R.MAX_OPEN_ORDERS_SYMBOL
    if sum(row[c.OPEN_ORDERS] for row in rows) >= lim[c.L_MAX_OPEN_ORDERS]:
        return R.MAX_OPEN_ORDERS
    if _duplicate(r, (side, qty, lpx, spx), now):
        return R.DUPLICATE_ORDER

    strategy_tokens = _tokens(buckets[strat + 1], lim[c.L_STRATEGY_RATE], lim[c.L_STRATEGY_BURST], now)
    if lim[c.L_STRATEGY_BURST] > 0 and strategy_tokens < SCALE:
        return R.STRATEGY_ORDER_RATE
    tokens = _tokens(buckets[0], lim[c.L_RATE], lim[c.L_BURST], now)
    if lim[c.L_BURST] > 0 and tokens < SCALE:
        return R.ORDER_RATE

    for bucket, left in ((buckets[strat + 1], strategy_tokens), (buckets[0], tokens)):
        bucket[c.B_TOKENS] = left - SCALE
        bucket[c.B_LAST_NS] = max(bucket[c.B_LAST_NS], now)
    slot = c.DUP_BASE + r[c.DUP_NEXT] * c.DUP_FIELDS
    r[slot : slot + c.DUP_FIELDS] = [now, side, qty, lpx, spx]
    r[c.DUP_NEXT] = (r[c.DUP_NEXT] + 1) % c.DUP_SLOTS
    return R.OK


def _duplicate(r: list[int], key: tuple[int, int, int, int], now: int) -> bool:
    window = r[c.S_DUP_WINDOW_NS]
    for k in range(c.DUP_SLOTS):
        slot = c.DUP_BASE + k * c.DUP_FIELDS
        ts = r[slot + c.D_NS]
        if window > 0 and ts > 0 and now - ts < window and tuple(r[slot + 1 : slot + 5]) == key:
            return True
    return False
