"""The hot-path journal write: one committed INSERT of an order's request body before its POST
(SqliteJournal.record_submit), and the event write after it (record_event), in microseconds.

    python -m bench.journal_write [--n 20000] [--dir /path/on/the/run/disk]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import wire
from services.execution.orders.journal import JOURNAL_FILE, SqliteJournal


def _pct(xs: list[int], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    j = SqliteJournal(folder / JOURNAL_FILE)
    body = {"symbol": "AAPL", "qty": "100", "side": "buy", "type": "limit", "time_in_force": "day",
            "limit_price": "187.25", "client_order_id": ""}  # fmt: skip
    submit: list[int] = []
    event: list[int] = []
    for i in range(args.n):
        coid = f"zt-bench.{i}"
        body["client_order_id"] = coid
        t0 = time.perf_counter_ns()
        j.record_submit(coid, 1, body)
        t1 = time.perf_counter_ns()
        ev = wire.OrderUpdate(
            seq=i + 1, client_order_id=coid, venue_order_id="9d2f1c1e-0000-4000-8000-000000000000",
            strategy="bench", symbol="AAPL", side="buy", status="new", event="new", qty=100_000_000_000,
            filled_qty=0, filled_avg_px=0, limit_px=187_250_000_000, reason="", venue_ns=t1, recv_ns=t1,
        )  # fmt: skip
        t2 = time.perf_counter_ns()
        j.record_event(ev)
        t3 = time.perf_counter_ns()
        submit.append(t1 - t0)
        event.append(t3 - t2)
        if i % 2000 == 1999:
            j.check()  # the service's once-a-second health check, then the checkpoint (the fsyncs)
            j.checkpoint_done(j.checkpoint())  # the service runs this one in a worker thread
    j.close()
    print(f"journal {folder} (synchronous=NORMAL, WAL), n={args.n}, load {os.getloadavg()[0]:.2f}")
    for name, xs in (("record_submit (hot path, before the POST)", submit), ("record_event (after)", event)):
        print(f"{name}: p50 {_pct(xs, 0.5):.1f} us  p99 {_pct(xs, 0.99):.1f} us  max {max(xs) / 1000:.0f} us")


if __name__ == "__main__":
    main()
