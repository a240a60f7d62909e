"""What a restart of execution reads from a long journal, with and without a book snapshot, what
the snapshot costs on the loop, and what replaying the whole order-event sequence to a peer would
cost (risk and signal start from execution's snapshot instead: ``replay_all_s`` is what that saves).

The journal is filled straight through SQLite with ``orders`` filled orders (an update ``new``, a
Fill, an update ``filled`` each), as execution would have journaled them over a long run.

    python -m bench.journal_start [--orders 100000]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from common import wire
from common.fixed import to_fixed
from services.execution.orders.event_log import EventLog
from services.execution.orders.journal import JOURNAL_FILE, KEEP_CLOSED, SqliteJournal
from services.execution.orders.restore import restore
from services.execution.orders.tracker import OrderTracker

REPLAY_PAGE = 10_000


class _Quiet:
    def publish(self, topic: bytes, msgs: list[Any]) -> None:
        pass


def _history(path: Path, orders: int) -> int:
    """``orders`` filled orders journaled; returns the last seq."""
    j = SqliteJournal(path)
    px, qty = to_fixed("187.25"), to_fixed("1")
    events: list[tuple[int, bytes]] = []
    submits: list[tuple[str, int, int, bytes]] = []
    seq = 0
    for i in range(orders):
        coid, side = f"zt-bench.{i}", ("buy", "sell")[i % 2]
        common = {"client_order_id": coid, "venue_order_id": f"v{i}", "strategy": "s1", "symbol": "AAPL",
                  "side": side, "venue_ns": 1, "recv_ns": 1}  # fmt: skip
        for status, filled in (("new", 0), ("filled", qty)):
            if filled:
                seq += 1
                fill = wire.Fill(
                    seq=seq, exec_id=f"e{i}", qty=qty, px=px, cum_qty=qty, position_qty=None, **common
                )  # type: ignore[arg-type]
                events.append((seq, wire.encode(fill)))
            seq += 1
            update = wire.OrderUpdate(
                seq=seq, status=status, event=status, qty=qty, filled_qty=filled, filled_avg_px=px if filled else 0,
                limit_px=px, reason="", **common,  # type: ignore[arg-type]
            )  # fmt: skip
            events.append((seq, wire.encode(update)))
        body = {
            "symbol": "AAPL",
            "qty": "1",
            "side": side,
            "type": "limit",
            "limit_price": "187.25",
            "client_order_id": coid,
        }
        submits.append((coid, 1, 1, orjson.dumps(body)))
    db = j._db
    assert db is not None
    with db:
        db.execute("BEGIN")
        db.executemany("INSERT INTO events (seq, ev) VALUES (?, ?)", events)
        db.executemany("INSERT INTO submits (coid, attempt, ts_ns, body) VALUES (?, ?, ?, ?)", submits)
    j.record_base(0, [], new_epoch=False)
    j.close()
    return seq


def _start(path: Path) -> tuple[float, OrderTracker, SqliteJournal, int]:
    """Seconds to open, load and rebuild; the tracker, its journal and how many events were read."""
    t0 = time.perf_counter()
    j = SqliteJournal(path)
    rec = j.load()
    tracker = OrderTracker(EventLog(100_000), j, _Quiet(), max_tracked=100_000)  # type: ignore[arg-type]
    restore(tracker, rec)
    return time.perf_counter() - t0, tracker, j, len(rec.events)


def _snapshot(tracker: OrderTracker, j: SqliteJournal) -> tuple[float, float]:
    """Milliseconds: the tracker's walk, the journal's write."""
    t0 = time.perf_counter()
    snap = tracker.snapshot(KEEP_CLOSED)
    t1 = time.perf_counter()
    j.record_snapshot(snap)
    return 1000 * (t1 - t0), 1000 * (time.perf_counter() - t1)


def measure(orders: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="zt-journal-"))
    path = folder / JOURNAL_FILE
    last = _history(path, orders)
    size = sum(p.stat().st_size for p in folder.iterdir())
    whole_s, tracker, j, whole_read = _start(path)
    first_ms = _snapshot(tracker, j)
    again_ms = _snapshot(tracker, j)
    t0 = time.perf_counter()
    after, replayed = 0, 0
    while events := j.events_after(after, REPLAY_PAGE):
        got = wire.decode_list(wire.encode_list(events))  # execution encodes a page, the peer decodes it
        after, replayed = got[-1].seq, replayed + len(got)
    replay_s = time.perf_counter() - t0
    book = tracker.positions.exact()
    j.close()
    snap_s, again, j2, snap_read = _start(path)
    assert again.positions.exact() == book and again.events.last_seq == last
    j2.close()
    return {
        "orders": orders,
        "events": last,
        "journal_mib": round(size / 2**20, 1),
        "start_whole_journal_s": round(whole_s, 3),
        "events_read_whole": whole_read,
        "start_from_snapshot_s": round(snap_s, 3),
        "events_read_from_snapshot": snap_read,
        "orders_rebuilt_from_snapshot": len(again.orders),
        "snapshot_first_ms": {"tracker": round(first_ms[0], 1), "journal": round(first_ms[1], 1)},
        "snapshot_periodic_ms": {"tracker": round(again_ms[0], 1), "journal": round(again_ms[1], 1)},
        "replay_all_s": round(replay_s, 3),
        "replay_all_events": replayed,
    }


def run(quick: bool = False) -> dict[str, Any]:
    return measure(20_000 if quick else 100_000)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100_000)
    for k, v in measure(ap.parse_args().orders).items():
        print(f"{k:<32} {v}")


if __name__ == "__main__":
    main()
