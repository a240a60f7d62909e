"""Micro-benchmark: the numba pre-trade check per order, in process, ns/order (p50/p99/p99.9/max).

    .venv/bin/python -m bench.risk_check [--orders N]

Realistic state: 20 quoted symbols with positions and open orders, 4 strategies, the default
limits with the rate limits and the duplicate guard on (orders vary so most are approved). Two
paths, interleaved in rounds: ``RiskState.check`` from an ``OrderIntent`` (what risk's decide()
calls: symbol and strategy lookup, field clamping, the numba dispatch) and the bare compiled call.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable

from common import wire
from common.config import RiskConfig
from common.enums import RejectReason
from common.fixed import to_fixed
from services.risk import checks
from services.risk.limits import RiskLimits
from services.risk.state import RiskState

N_SYMBOLS = 20
STRATEGIES = ("alpha", "beta", "gamma", "delta")
ROUNDS = 5


def build_state(rng: random.Random, now: int) -> tuple[RiskState, list[str]]:
    config = RiskConfig(
        max_order_qty="1000", max_gross_exposure="10000000", max_net_exposure="10000000",
        max_open_orders=10_000, max_open_orders_per_symbol=1_000,
        order_rate_per_s="1000000", order_rate_burst=1_000_000,
        strategy_order_rate_per_s="1000000", strategy_order_rate_burst=1_000_000, max_quote_age_ms=3_600_000,
    )  # fmt: skip
    rs = RiskState(RiskLimits.from_config(config))
    symbols = [f"SYM{i:02d}" for i in range(N_SYMBOLS)]
    positions = []
    for s in symbols:
        mid = rng.randint(20, 400)
        rs.on_quote(
            wire.Quote(symbol=s, bid_px=to_fixed(mid) - 10**7, bid_sz=to_fixed(100), ask_px=to_fixed(mid) + 10**7,
                       ask_sz=to_fixed(100), exch_ns=now, recv_ns=now)
        )  # fmt: skip
        positions.append(
            wire.Position(
                symbol=s, qty=to_fixed(rng.randint(0, 100)), avg_px=to_fixed(mid), realized_pnl=0, ts_ns=0
            )
        )
        for k in range(3):
            rs.add_pending(f"{s}-{k}", s, rng.choice(["buy", "sell"]), to_fixed(rng.randint(1, 10)))
    rs.set_positions(positions)
    return rs, symbols


def intents(rng: random.Random, rs: RiskState, symbols: list[str], n: int) -> list[wire.OrderIntent]:
    """Decoded from the wire, as risk's decide() gets them (sides and order types as Enum members)."""
    out = []
    for i in range(n):
        s = rng.choice(symbols)
        mid = int(rs.state[rs.sym(s), checks.MARK])
        out.append(
            wire.OrderIntent(
                intent_id=f"b.{i}", strategy=rng.choice(STRATEGIES), symbol=s, side="buy", qty=to_fixed(rng.randint(1, 50)),
                limit_px=mid + rng.randint(-100, 100) * 10**7,
            )
        )  # fmt: skip
    return [wire.decode(wire.encode(i)) for i in out]


def percentiles(samples: list[int]) -> str:
    s = sorted(samples)
    n = len(s)
    p50, p99, p999 = s[n // 2], s[int(n * 0.99)], s[int(n * 0.999)]
    return f"p50 {p50:>5} ns  p99 {p99:>5} ns  p99.9 {p999:>6} ns  max {s[-1]:>7} ns"


def via_state(
    rs: RiskState, batch: list[wire.OrderIntent], now: int, out: list[int], codes: Counter[int]
) -> None:
    clock = time.perf_counter_ns
    check = rs.check
    for k, intent in enumerate(batch):
        t0 = clock()
        code = check(intent, now + k * 1000)
        out.append(clock() - t0)
        codes[code] += 1


def bare(
    rs: RiskState,
    batch: list[wire.OrderIntent],
    now: int,
    out: list[int],
    codes: Counter[int],
    fn: Callable[..., int] = checks.check_order,
) -> None:
    clock = time.perf_counter_ns
    state, limits, buckets = rs.state, rs.limits, rs.buckets
    args = [
        (
            rs.sym(i.symbol),
            rs.strategy(i.strategy),
            checks.SIDES[i.side],
            checks.LIMIT,
            i.qty,
            i.limit_px,
            i.stop_px,
        )
        for i in batch
    ]
    for k, (sym, strat, side, otype, qty, lpx, spx) in enumerate(args):
        t0 = clock()
        code = fn(state, limits, buckets, sym, strat, side, otype, qty, lpx, spx, now + k * 1000)
        out.append(clock() - t0)
        codes[code] += 1


def entry_point(
    rs: RiskState, batch: list[wire.OrderIntent], now: int, out: list[int], codes: Counter[int]
) -> None:
    bare(rs, batch, now, out, codes, checks.compiled_check())


PATHS: dict[str, Callable[..., None]] = {
    "RiskState.check(intent)": via_state,
    "check_order (dispatcher)": bare,
    "check_order (entry point)": entry_point,
}


def measure(n: int) -> tuple[dict[str, list[int]], dict[str, Counter[int]]]:
    """ns per check for each path (``n`` orders each, interleaved in rounds) and the decisions made."""
    checks.warm_up()
    now = time.time_ns()
    samples: dict[str, list[int]] = {name: [] for name in PATHS}
    codes: dict[str, Counter[int]] = {name: Counter() for name in PATHS}
    per_round = max(1, n // ROUNDS)
    for r in range(ROUNDS):
        for name, run in PATHS.items():
            rs, symbols = build_state(random.Random(r), now)  # a fresh state: both paths see the same
            batch = intents(random.Random(r + 100), rs, symbols, per_round)
            run(rs, batch, now + r * 10**9, samples[name], codes[name])
    return samples, codes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=200_000)
    n = ap.parse_args().orders
    samples, codes = measure(n)
    print(f"numba pre-trade check, {n} orders per path, {N_SYMBOLS} symbols, {len(STRATEGIES)} strategies")
    for name in PATHS:
        decided = ", ".join(f"{RejectReason.from_code(c).value} {k}" for c, k in codes[name].most_common(4))
        print(f"  {name:<26} {percentiles(samples[name])}   ({decided})")


if __name__ == "__main__":
    main()
