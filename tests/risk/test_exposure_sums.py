"""The exposure and open-order sums RiskState keeps incrementally (quotes, positions, open orders)
equal the sums built from scratch after every change, including at values large enough that the
sums carry past int64, and the check on that state agrees with the plain-Python reference."""

from __future__ import annotations

import random

from common import wire
from common.config import RiskConfig
from common.enums import RejectReason as R
from services.risk import checks as c
from services.risk.limits import RiskLimits
from services.risk.state import RiskState
from tests.risk.reference_check import reference_check

U = 10**9  # one unit in nanos
NOW = 1_800_000_000_000_000_000
SYMBOLS = [f"S{i}" for i in range(6)]
STEPS = 3_000


def _big(rng: random.Random, usual: int) -> int:
    return usual if rng.random() < 0.85 else rng.choice([c.MAX_VALUE, rng.randint(1, c.MAX_VALUE)])


def _quote(rs: RiskState, rng: random.Random) -> None:
    bid = _big(rng, rng.randint(1, 500) * U)
    ask = bid + rng.randint(0, U) if rng.random() < 0.95 else 0  # sometimes a one-sided quote
    rs.on_quote(
        wire.Quote(symbol=rng.choice(SYMBOLS), bid_px=bid, bid_sz=U, ask_px=ask, ask_sz=U, exch_ns=NOW, recv_ns=NOW)
    )  # fmt: skip


def _positions(rs: RiskState, rng: random.Random) -> None:
    listed = [
        wire.Position(symbol=s, qty=_big(rng, rng.randint(-200, 200) * U) * rng.choice([1, -1]),
                      avg_px=rng.randint(1, 300) * U, realized_pnl=0, ts_ns=0)
        for s in rng.sample(SYMBOLS, rng.randint(0, len(SYMBOLS)))
    ]  # fmt: skip
    rs.set_positions(listed)


def _orders(rs: RiskState, rng: random.Random) -> None:
    n = rng.getrandbits(40)
    roll = rng.random()
    if roll < 0.5 or not rs.pending:
        side = rng.choice(["buy", "sell"])
        rs.add_pending(f"o{n}", rng.choice(SYMBOLS), side, _big(rng, rng.randint(1, 50) * U))
    elif roll < 0.8:
        rs.release(rng.choice(list(rs.pending)))
    elif roll < 0.98:
        coid = rng.choice(list(rs.pending))
        p = rs.pending[coid]
        rs.on_order_update(
            wire.OrderUpdate(seq=n, client_order_id=coid, venue_order_id="v", strategy="s", symbol=p.symbol,
                             side=p.side, status="partially_filled", event="fill", qty=p.qty,
                             filled_qty=rng.randint(0, p.qty), filled_avg_px=0, limit_px=0, reason="", venue_ns=NOW, recv_ns=NOW)
        )  # fmt: skip
    else:
        rs.clear_pending()


def _from_scratch(rs: RiskState) -> tuple[list[int], list[list[int]]]:
    state, limits = rs.state.copy(), rs.limits.copy()
    c.rebuild_exposure(state, limits)
    return limits[c.L_OPEN_ORDERS_SUM :].tolist(), state[:, c.X_GROSS :].tolist()


def test_incremental_sums_equal_the_sums_from_scratch() -> None:
    rng = random.Random(7)
    config = RiskConfig(max_gross_exposure="1000000", max_net_exposure="500000", max_open_orders=40)
    rs = RiskState(RiskLimits.from_config(config), capacity=4)  # grows on the way
    steps = (_quote, _positions)
    carried = 0
    for n in range(STEPS):
        if rng.random() < 0.5:
            _orders(rs, rng)
        else:
            rng.choice(steps)(rs, rng)
        sums, shares = _from_scratch(rs)
        assert rs.limits[c.L_OPEN_ORDERS_SUM :].tolist() == sums, n
        assert rs.state[:, c.X_GROSS :].tolist() == shares, n
        carried += int(rs.limits[c.L_GROSS] > 0)
    assert carried  # the big values made the gross sum carry past 2**62 at some point


def test_the_check_on_incremental_state_agrees_with_the_reference() -> None:
    rng = random.Random(11)
    config = RiskConfig(
        max_gross_exposure="30000", max_net_exposure="15000", max_open_orders=30, max_order_qty="100",
        max_position_qty="400", order_rate_per_s=None, strategy_order_rate_per_s=None, duplicate_window_ms=0,
        price_band_bps=100_000, allow_short=True,
    )  # fmt: skip
    rs = RiskState(RiskLimits.from_config(config))
    rs.strategy("s")
    decided: set[R] = set()
    for n in range(STEPS):
        rng.choice((_quote, _positions, _orders, _orders))(rs, rng)
        order = (rs.sym(rng.choice(SYMBOLS)), 0, rng.choice([1, -1]), c.LIMIT,
                 rng.randint(1, 60) * U, rng.randint(1, 500) * U, 0, NOW)  # fmt: skip
        rows, lim, buckets = rs.state.tolist(), rs.limits.tolist(), rs.buckets.tolist()
        want = reference_check(rows[: len(rs.index)], lim, buckets, *order)
        got = R.from_code(c.check_order(rs.state, rs.limits, rs.buckets, *order))
        assert got == want, (n, order)
        decided.add(want)
    assert {R.OK, R.MAX_GROSS_EXPOSURE, R.MAX_NET_EXPOSURE, R.MAX_OPEN_ORDERS} <= decided


def test_open_quantity_per_symbol_is_kept_exactly_without_rescanning() -> None:
    rng = random.Random(11)
    rs = RiskState(RiskLimits.from_config(RiskConfig()), capacity=4)
    for _ in range(3_000):
        _orders(rs, rng)
        for symbol in SYMBOLS:
            mine = [p for p in rs.pending.values() if p.symbol == symbol and p.remaining > 0]
            i = rs.sym(symbol)
            buy = sum(p.remaining for p in mine if p.side == "buy")
            sell = sum(p.remaining for p in mine if p.side == "sell")
            assert rs.state[i, c.PENDING_BUY] == min(buy, c.MAX_VALUE)
            assert rs.state[i, c.PENDING_SELL] == min(sell, c.MAX_VALUE)
            assert rs.state[i, c.OPEN_ORDERS] == len(mine)
