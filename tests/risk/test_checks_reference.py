"""The numba check agrees with the plain-Python reference on many random states and orders: the
same reason code and the same state afterwards (rate buckets, duplicate-guard ring). Values are
drawn near the limits and at the int64 extremes so that every check decides some of them."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from common.enums import RejectReason as R
from common.fixed import SCALE as U
from services.risk import checks as c
from services.risk.checks import check_order
from tests.risk.reference_check import reference_check

N_ORDERS = 100_000
ORDERS_PER_STATE = 4
N_ROWS = 3
N_STRATEGIES = 2
NOW = 1_800_000_000_000_000_000
S = 1_000_000_000  # one second in ns


def _pick(rng: random.Random, usual: int, *unusual: int, p: float = 0.8) -> int:
    """Mostly (``p``) the usual value, so that orders reach the later checks; else an edge."""
    return usual if rng.random() < p else rng.choice(unusual)


def _row(rng: random.Random) -> list[int]:
    r = [0] * c.N_STATE
    bid = 100 * U - rng.randint(0, 2 * U)
    r[c.BID] = _pick(rng, bid, 0, rng.randint(1, c.MAX_VALUE))
    r[c.ASK] = _pick(rng, 100 * U + rng.randint(0, 2 * U), 0, rng.randint(1, c.MAX_VALUE))
    r[c.QUOTE_NS] = _pick(
        rng, NOW - rng.randint(0, S), 0, NOW - rng.randint(0, 3 * S), NOW + rng.randint(0, 3 * S)
    )
    r[c.MARK] = _pick(rng, 100 * U, 0, rng.randint(1, c.MAX_VALUE), rng.randint(1, 200 * U))
    r[c.POSITION] = _pick(rng, rng.randint(-300, 300) * U, 0, rng.randint(-c.MAX_VALUE, c.MAX_VALUE))
    r[c.PENDING_BUY] = _pick(rng, rng.randint(0, 50) * U, rng.randint(0, 300 * U), c.MAX_VALUE)
    r[c.PENDING_SELL] = _pick(rng, rng.randint(0, 50) * U, rng.randint(0, 300 * U), c.MAX_VALUE)
    r[c.OPEN_ORDERS] = rng.randint(0, 4)
    r[c.S_MAX_ORDER_QTY] = _pick(rng, 100 * U, rng.randint(1, 100 * U), c.LIMIT_CAP)
    r[c.S_MAX_ORDER_NOTIONAL] = _pick(rng, 50_000 * U, rng.randint(1, 10_000 * U), c.LIMIT_CAP)
    r[c.S_MAX_POSITION] = _pick(rng, 500 * U, rng.randint(1, 500 * U), c.LIMIT_CAP)
    r[c.S_PRICE_BAND_BPS] = _pick(rng, 500, rng.randint(1, 100_000))
    r[c.S_MAX_OPEN_ORDERS] = _pick(rng, 20, rng.randint(1, 5))
    r[c.S_MAX_QUOTE_AGE_NS] = _pick(rng, 2 * S, rng.randint(1, 3 * S), c.LIMIT_CAP)
    r[c.S_DUP_WINDOW_NS] = _pick(rng, S, 0, rng.randint(1, 2 * S))
    r[c.S_ALLOWED] = _pick(rng, 1, 0)
    r[c.S_SHORT_ALLOWED] = rng.randint(0, 1)
    r[c.DUP_NEXT] = rng.randrange(c.DUP_SLOTS)
    for k in range(c.DUP_SLOTS):
        base = c.DUP_BASE + k * c.DUP_FIELDS
        r[base : base + c.DUP_FIELDS] = [NOW - rng.randint(0, 2 * S), rng.choice([1, -1]), U, 100 * U, 0]
    return r


def _globals(rng: random.Random) -> list[int]:
    g = [0] * c.N_LIMITS
    g[c.L_REQUIRE_QUOTE] = rng.randint(0, 1)
    g[c.L_SYMBOLS] = N_ROWS
    g[c.L_TRADING_STATE] = _pick(rng, 0, 1, 2, 3)
    g[c.L_MAX_GROSS] = _pick(rng, 200_000 * U, rng.randint(0, 100_000 * U), c.LIMIT_CAP)
    g[c.L_MAX_NET] = _pick(rng, 100_000 * U, rng.randint(0, 50_000 * U), c.LIMIT_CAP)
    g[c.L_MAX_OPEN_ORDERS] = _pick(rng, 100, rng.randint(1, 12))
    g[c.L_RATE], g[c.L_BURST] = rng.randint(0, 10 * U), _pick(rng, 20 * U, 0, rng.randint(0, 3 * U))
    g[c.L_STRATEGY_RATE], g[c.L_STRATEGY_BURST] = (
        rng.randint(0, 10 * U),
        _pick(rng, 10 * U, 0, rng.randint(0, 3 * U)),
    )
    g[c.L_MAX_DAILY_LOSS] = _pick(rng, 10_000 * U, rng.randint(1, 1000 * U))
    g[c.L_DAY_PNL] = _pick(rng, 0, rng.randint(-2000 * U, 500 * U))
    g[c.L_BUYING_POWER] = _pick(rng, c.BUYING_POWER_UNKNOWN, rng.randint(0, 2_000 * U), c.LIMIT_CAP, p=0.6)
    return g


def _order(rng: random.Random) -> tuple[int, ...]:
    px = _pick(
        rng, 100 * U + rng.randint(-6 * U, 6 * U), 0, rng.randint(1, c.MAX_VALUE), rng.randint(1, 1000 * U)
    )
    qty = _pick(
        rng, rng.randint(1, 20) * U, 0, -U, rng.randint(1, 600 * U), rng.randint(1, 600 * U), c.MAX_VALUE + 1
    )
    return (
        _pick(rng, rng.randrange(N_ROWS), N_ROWS, -1, p=0.97),  # symbol
        _pick(rng, rng.randrange(N_STRATEGIES), N_STRATEGIES, p=0.97),  # strategy
        _pick(rng, rng.choice([1, -1]), 0, p=0.97),  # side
        _pick(rng, 1, 0, 2, 3, 7, p=0.7),  # order type
        qty,
        px,
        _pick(rng, 0, 99 * U, 101 * U, rng.randint(1, c.MAX_VALUE)),  # stop price
        NOW + rng.randint(-S, S),
    )


def _plant_duplicate(rng: random.Random, rows: list[list[int]], order: tuple[int, ...]) -> bool:
    sym, _, side, _, qty, lpx, spx, now = order
    if not (0 <= sym < N_ROWS and rng.random() < 0.2):
        return False
    base = c.DUP_BASE + rng.randrange(c.DUP_SLOTS) * c.DUP_FIELDS
    rows[sym][base : base + c.DUP_FIELDS] = [now - rng.randint(0, 2 * S), side, qty, lpx, spx]
    return True


def _scenario(rng: random.Random) -> tuple[list[list[int]], list[int], list[list[int]]]:
    rows = [_row(rng) for _ in range(N_ROWS)]
    buckets = [
        [rng.randint(-U, 3 * U), _pick(rng, NOW - rng.randint(0, 2 * S), 0, NOW + S)]
        for _ in range(N_STRATEGIES + 1)
    ]
    return rows, _globals(rng), buckets


def _with_exposure_sums(state: np.ndarray, limits: np.ndarray) -> list[list[int]]:
    """The check reads exposure and open-order sums that RiskState keeps incrementally: build them
    from scratch for the random rows. The reference ignores them (it sums the rows itself); the
    rows it gets carry the shares so that the state comparison after each order covers them."""
    c.rebuild_exposure(state, limits)
    return state.tolist()


def test_numba_matches_the_python_reference_on_random_orders() -> None:
    """Each random state takes a few orders in a row, so approvals' updates feed later decisions."""
    rng = random.Random(20261121)
    state = c.new_state(N_ROWS)
    limits = np.zeros(c.N_LIMITS, dtype=np.int64)
    buckets = c.new_buckets(N_STRATEGIES)
    mismatches: list[tuple[object, ...]] = []
    decided: Counter[R] = Counter()
    for n in range(N_ORDERS):
        if n % ORDERS_PER_STATE == 0:
            rows, lim, bks = _scenario(rng)
            state[:] = rows
            limits[:] = lim
            buckets[:] = bks
            rows = _with_exposure_sums(state, limits)
        order = _order(rng)
        if _plant_duplicate(rng, rows, order):
            state[:] = rows
        got = R.from_code(check_order(state, limits, buckets, *order))
        want = reference_check(rows, lim, bks, *order)
        decided[want] += 1
        if got != want or state.tolist() != rows or buckets.tolist() != bks:
            mismatches.append((order, got, want))
            state[:], buckets[:] = rows, bks
    assert mismatches[:3] == []
    assert set(c.REASONS) - set(decided) == set()  # every check decided some orders
    assert decided[R.OK] > N_ORDERS // 50
