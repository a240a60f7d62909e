"""Micro-benchmark: the venue's state file (simulator/state_file.py), per write, by order count.

    .venv/bin/python -m bench.venue_state_file

Each write is a full snapshot: ``snapshot`` runs on the venue's loop (the part that delays orders),
``write_atomic`` (temp file, fsync, rename) in a thread. 19 in 20 orders are filled market orders
(closed: cached after the first write), 1 in 20 a resting limit. Median of several rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import orjson

from common.config import SimConfig
from simulator.exchange import Exchange
from simulator.models import OrderBody
from simulator.state_file import snapshot, write_atomic


def _venue(orders: int) -> Exchange:
    ex = Exchange(SimConfig(stocks=["AAPL"], crypto=[], starting_cash=Decimal("1e9")))
    ex.on_quote("AAPL", Decimal(100), Decimal(10**9), Decimal("100.01"), Decimal(10**9), 0)
    for i in range(orders):
        limit = {"type": "limit", "limit_price": 90, "time_in_force": "gtc"} if i % 20 == 0 else {}
        body = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day", **limit}
        ex.submit(OrderBody.model_validate(body))
    return ex


def main(rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "venue.json"
        print(f"{'orders':>8} {'bytes':>10} {'snapshot ms':>12} {'cached ms':>10} {'write ms':>9}")
        for n in (100, 1_000, 10_000):
            ex = _venue(n)
            snap: list[float] = []
            cached: list[float] = []
            write: list[float] = []
            cache: dict[str, orjson.Fragment] = {}
            snapshot(ex, cache)  # what the flusher has after its first write
            for _ in range(rounds):
                t0 = time.perf_counter()
                data = snapshot(ex)
                t1 = time.perf_counter()
                assert snapshot(ex, cache) == data
                t2 = time.perf_counter()
                write_atomic(path, data)
                t3 = time.perf_counter()
                snap.append(t1 - t0)
                cached.append(t2 - t1)
                write.append(t3 - t2)
            ms = statistics.median
            print(
                f"{n:>8} {len(data):>10} {ms(snap) * 1e3:>12.2f} {ms(cached) * 1e3:>10.2f}"
                f" {ms(write) * 1e3:>9.2f}"
            )


if __name__ == "__main__":
    main()
