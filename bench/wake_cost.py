"""What a wake-up costs on this host: pieces of the order path timed warm and right after a sleep.

    .venv/bin/python -m bench.wake_cost [--samples N] [--sleep-ms 5] [--cpu 1]

Every process on zerotick's tick-to-order path sleeps between events and does its part right after
it wakes. Each piece below is timed two ways, in this one process: warm (the median of back-to-back
calls) and woken (one call right after a timer sleep of ``--sleep-ms``, as a service's loop wakes;
the median over ``--samples`` such wake-ups). Their ratio is what this host charges for touching
code and data that a sleep let go cold; the pipeline floor (bench/pipeline_floor.py) pays it for the
hops alone, zerotick pays it again for every piece of its own work.

The pieces are zerotick's own: a clock read (the vDSO), a bare system call, ``poll`` of one
descriptor with no wait (what each ZeroMQ drain does), the decode of an ``OrderRequest`` as
execution reads it from risk, the pre-trade check through ``RiskState.check``, the submit record's
encoding and ``write`` (the write-ahead before each POST, to a file in a temporary folder) and the
``stat`` of a file (the gate's look at the trading-state file).
"""

from __future__ import annotations

import argparse
import os
import random
import select
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import wire
from services.execution.orders.journal import encode_submit

WARM_CALLS = 2_000
SLEEP_MS = 5.0  # a service's gap between wake-ups at 1k msgs/s is of this order (risk's paced drain: 5 ms)


def _order_request() -> bytes:
    intent = wire.OrderIntent(
        intent_id="probe.1", strategy="probe", symbol="FAKEPACA", side="buy", qty=10**9,
        limit_px=100 * 10**9, tick_exch_ns=time.time_ns(), tick_recv_ns=time.time_ns(), signal_ns=time.time_ns(),
    )  # fmt: skip
    return wire.encode(wire.OrderRequest(client_order_id="zt-bench-1", intent=intent, risk_ns=time.time_ns()))


def _risk_check() -> Callable[[], Any]:
    from bench.risk_check import build_state, intents
    from services.risk import checks

    checks.warm_up()
    now = time.time_ns()
    rs, symbols = build_state(random.Random(1), now)
    batch = intents(random.Random(2), rs, symbols, 1)
    intent, check = batch[0], rs.check
    return lambda: check(intent, now)


@contextmanager
def pieces(folder: Path) -> Iterator[dict[str, Callable[[], Any]]]:
    """Each piece as a call; the files and descriptors it needs live as long as the context."""
    r, w = os.pipe()
    poller = select.poll()
    poller.register(r, select.POLLIN)
    log_fd = os.open(folder / "submits", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    state_file = folder / "trading_state.json"
    state_file.write_text("{}")
    raw = _order_request()
    body = {"symbol": "FAKEPACA", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day",
            "limit_price": "100.00", "client_order_id": "zt-bench-1"}  # fmt: skip
    written = 0

    def submit_record() -> None:
        nonlocal written
        written += os.write(log_fd, encode_submit("zt-bench-1", 1, time.time_ns(), body))
        if written > 1 << 20:  # keep the file small, as execution empties its log after each POST
            os.ftruncate(log_fd, 0)
            written = 0

    try:
        yield {
            "clock read (vDSO)": time.perf_counter_ns,
            "system call (getpid)": os.getpid,
            "poll, one descriptor, no wait": lambda: poller.poll(0),
            "OrderRequest decode": lambda: wire.decode(raw),
            "RiskState.check": _risk_check(),
            "submit record: encode + write": submit_record,
            "stat of the trading-state file": lambda: os.stat(state_file),
        }
    finally:
        for fd in (r, w, log_fd):
            os.close(fd)


def warm_ns(fn: Callable[[], Any], calls: int = WARM_CALLS) -> float:
    """Median ns per call over batches of back-to-back calls."""
    clock = time.perf_counter_ns
    per_batch = []
    for _ in range(20):
        t0 = clock()
        for _ in range(calls // 20):
            fn()
        per_batch.append((clock() - t0) / (calls // 20))
    return statistics.median(per_batch)


def woken_ns(fn: Callable[[], Any], samples: int, sleep_s: float) -> list[int]:
    """ns of one call right after each of ``samples`` sleeps (the clock's own cold read included:
    ``empty`` measures it)."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(samples):
        time.sleep(sleep_s)
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def measure(samples: int = 300, sleep_ms: float = SLEEP_MS) -> dict[str, dict[str, float]]:
    """Per piece: warm and woken ns (median), woken p90, and their ratio. ``empty`` is two clock
    reads with nothing between: the timing's own cost, warm and woken."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="zt-wake-") as tmp, pieces(Path(tmp)) as calls:
        for name, fn in {"empty": lambda: None, **calls}.items():
            fn()
            warm = round(warm_ns(fn), 1)
            woken = sorted(woken_ns(fn, samples, sleep_ms / 1000))
            mid = statistics.median(woken)
            out[name] = {
                "warm_ns": warm,
                "woken_ns": mid,
                "woken_p90_ns": woken[int(len(woken) * 0.9)],
                "ratio": round(mid / warm, 1) if warm > 0 else 0.0,
            }
    return out


def report(res: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    for name, st in res.items():
        lines.append(
            f"  {name:<34} warm {st['warm_ns']:>8.0f} ns   woken {st['woken_ns']:>8.0f} ns"
            f" (p90 {st['woken_p90_ns']:>7.0f})   x{st['ratio']:g}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--sleep-ms", type=float, default=SLEEP_MS)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU first (the services' CPU)")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    res = measure(args.samples, args.sleep_ms)
    print(f"the same work warm and right after a {args.sleep_ms:g} ms sleep (median of {args.samples})")
    print("\n".join(report(res)))


if __name__ == "__main__":
    main()
