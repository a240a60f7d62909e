"""The sequenced event log behind Replay."""

from __future__ import annotations

from common import wire
from services.execution.orders.event_log import EventLog


def update(n: int) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=999, client_order_id=f"c{n}", venue_order_id="", strategy="s", symbol="AAPL", side="buy",
        status="new", event="new", qty=1, filled_qty=0, filled_avg_px=0, limit_px=0, reason="",
        venue_ns=0, recv_ns=0,
    )  # fmt: skip


def test_seq_is_gap_free_and_replay_returns_the_tail() -> None:
    log = EventLog(capacity=100)
    stamped = [log.append(update(i)) for i in range(5)]
    assert [e.seq for e in stamped] == [1, 2, 3, 4, 5]
    assert [e.seq for e in log.after(2)] == [3, 4, 5]
    assert log.after(5) == [] and [e.seq for e in log.after(0, limit=2)] == [1, 2]


def test_bounded_log_serves_what_it_still_has() -> None:
    log = EventLog(capacity=3)
    for i in range(6):
        log.append(update(i))
    assert log.first_seq == 4 and log.last_seq == 6
    assert [e.seq for e in log.after(0)] == [4, 5, 6]
    assert [e.seq for e in log.after(4)] == [5, 6]
