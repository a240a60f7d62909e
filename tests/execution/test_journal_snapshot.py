"""Start-up reads the journal from its last book snapshot. A restart from a snapshot rebuilds the
same book (exactly), the same open orders, the same unresolved submits and the same refused ids as a
restart from the whole history; it reads only the kept orders and what came after the snapshot;
every seq is still served to a peer that replays from 0. A book re-based on the venue after the
snapshot, and an unreadable snapshot, fall back to the base and to the whole journal. The running
service takes the snapshot when it is ready, when it has been quiet, and when it stops."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from common.clock import wall_ns
from common.fixed import to_fixed
from services.execution import service as execution_service
from services.execution.orders.event_log import EventLog
from services.execution.orders.journal import JOURNAL_FILE, SqliteJournal
from services.execution.orders.order_state import SUBMIT_FAILED, UNKNOWN, TrackedOrder
from services.execution.orders.restore import restore
from services.execution.orders.tracker import UNCONFIRMED_KEEP_NS, OrderTracker
from tests.execution.test_service import make_settings
from tests.kit.execution import running_execution
from tests.kit.tiny_venue import tiny_venue
from tests.kit.waiting import until


class _Quiet:
    def publish(self, topic: bytes, msgs: list[Any]) -> None:
        pass


def _tracker(j: SqliteJournal) -> OrderTracker:
    return OrderTracker(EventLog(100_000), j, _Quiet(), max_tracked=100_000)  # type: ignore[arg-type]


class Flow:
    """Orders through a tracker bound to a journal, as execution drives them: submit journaled,
    then trade updates (new, partial fills, a fill or a cancel)."""

    def __init__(self, tracker: OrderTracker, rng: random.Random) -> None:
        self.t, self.rng, self.n = tracker, rng, 0
        self.open: dict[str, dict[str, Any]] = {}
        self.held: set[str] = set()  # open orders ``run`` leaves alone

    def submit(self, acknowledged: bool = True, hold: bool = False) -> str:
        self.n += 1
        coid = f"zt-p.{self.n}"
        symbol, side = self.rng.choice(["AAPL", "MSFT"]), self.rng.choice(["buy", "sell"])
        qty = self.rng.randint(1, 9)
        self.t.track(TrackedOrder(client_order_id=coid, symbol=symbol, side=side, qty=to_fixed(qty)))
        self.t.journal.record_submit(
            coid, 1, {"symbol": symbol, "side": side, "qty": str(qty), "client_order_id": coid}
        )
        doc = {"id": f"v-{coid}", "client_order_id": coid, "symbol": symbol, "side": side, "qty": str(qty),
               "filled_qty": "0", "filled_avg_price": None, "limit_price": "100", "status": "new",
               "updated_at": "2026-12-01T15:00:00Z"}  # fmt: skip
        if acknowledged:
            self.t.apply_trade_update({"event": "new", "order": doc})
            self.open[coid] = doc
        if hold:
            self.held.add(coid)
        return coid

    def step(self, coid: str) -> None:
        """A partial fill, a fill of the rest, or a cancel."""
        doc = self.open[coid]
        left = int(doc["qty"]) - int(doc["filled_qty"])
        roll = self.rng.random()
        if roll < 0.2:
            doc["status"] = "canceled"
            self.t.apply_trade_update({"event": "canceled", "order": doc})
        else:
            qty = left if roll > 0.6 or left == 1 else self.rng.randint(1, left - 1)
            px = f"{self.rng.randint(9000, 11000) / 100:.2f}"
            filled = int(doc["filled_qty"]) + qty
            old_avg = float(doc["filled_avg_price"] or 0)
            doc["filled_avg_price"] = f"{(old_avg * int(doc['filled_qty']) + float(px) * qty) / filled:.6f}"
            doc["filled_qty"] = str(filled)
            doc["status"] = "filled" if filled == int(doc["qty"]) else "partially_filled"
            event = "fill" if doc["status"] == "filled" else "partial_fill"
            self.t.apply_trade_update({"event": event, "order": doc, "qty": str(qty), "price": px})
        if doc["status"] in ("filled", "canceled"):
            del self.open[coid]

    def run(self, orders: int) -> None:
        for _ in range(orders):
            self.submit()
            movable = sorted(set(self.open) - self.held)
            for coid in self.rng.sample(movable, k=min(3, len(movable))):
                if self.rng.random() < 0.6:
                    self.step(coid)


def _snapshot(t: OrderTracker, j: SqliteJournal, keep_closed: int) -> None:
    j.record_snapshot(t.snapshot(keep_closed))


def _journaled_with_a_snapshot(path: Path, seed: int, orders: int) -> OrderTracker:
    """A journal with ``orders`` orders through a tracker and a snapshot at the end (2 closed kept)."""
    j = SqliteJournal(path)
    j.record_base(0, [], new_epoch=False)
    live = _tracker(j)
    Flow(live, random.Random(seed)).run(orders)
    _snapshot(live, j, keep_closed=2)
    j.close()
    return live


def _open_orders(t: OrderTracker) -> dict[str, tuple[str, int, int]]:
    return {c: (o.status, o.filled_qty, o.filled_avg_px) for c, o in t.orders.items() if not o.terminal}


def _restart(path: Path) -> tuple[OrderTracker, list[TrackedOrder], int]:
    j = SqliteJournal(path)
    rec = j.load()
    t = _tracker(j)
    unknown = restore(t, rec)
    return t, unknown, len(rec.events)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_restart_from_the_snapshot_is_the_restart_from_the_whole_history(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "a" / JOURNAL_FILE
    j = SqliteJournal(path)
    j.record_base(0, [], new_epoch=False)
    live = _tracker(j)
    flow = Flow(live, rng)
    flow.run(300)
    open_at_snapshot = [flow.submit(hold=True) for _ in range(3)]  # open across the snapshot
    lost = flow.submit(acknowledged=False)  # journaled, then the POST's outcome is lost
    _snapshot(live, j, keep_closed=5)
    snapshot_seq = live.events.last_seq
    flow.run(40)
    flow.step(open_at_snapshot[0])
    lost_after = flow.submit(acknowledged=False)
    j.close()
    whole = tmp_path / "b" / JOURNAL_FILE
    shutil.copytree(path.parent, whole.parent)
    with sqlite3.connect(whole) as db:
        db.execute("DELETE FROM snapshot")

    fast, fast_unknown, fast_read = _restart(path)
    slow, slow_unknown, slow_read = _restart(whole)

    assert fast.positions.exact() == slow.positions.exact() == live.positions.exact()
    assert fast.events.last_seq == slow.events.last_seq == live.events.last_seq
    assert _open_orders(fast) == _open_orders(slow)
    acknowledged = {c: v for c, v in _open_orders(fast).items() if c not in (lost, lost_after)}
    assert acknowledged == {c: v for c, v in _open_orders(live).items() if c not in (lost, lost_after)} != {}
    assert (
        {o.client_order_id for o in fast_unknown}
        == {o.client_order_id for o in slow_unknown}
        == {lost, lost_after}
    )
    assert all(fast.orders[c].status == UNKNOWN for c in (lost, lost_after))
    assert all(fast.is_known(c) for c in live.orders)  # every id ever sent is still refused
    closed_kept = [o for o in fast.orders.values() if o.terminal and o.update_seq <= snapshot_seq]
    assert len(closed_kept) == 5
    # read: the kept orders' last updates and the events after the snapshot, not the history
    assert fast_read < slow_read / 3
    assert fast_read <= len(fast.orders) + (live.events.last_seq - snapshot_seq)
    # a peer replaying from 0 still gets every seq, from the journal
    seqs = [e.seq for e in fast.journal.events_after(0, 1 << 30)]  # type: ignore[attr-defined]
    assert seqs == list(range(1, live.events.last_seq + 1))
    assert fast.events.first_seq == snapshot_seq + 1  # memory holds the contiguous tail only


def test_a_book_re_based_after_the_snapshot_starts_from_the_base(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    j = SqliteJournal(path)
    j.record_base(0, [], new_epoch=False)
    live = _tracker(j)
    flow = Flow(live, random.Random(7))
    flow.run(50)
    _snapshot(live, j, keep_closed=5)
    venue = [p.to_wire(1) for p in live.positions.all()]  # the venue's view: avg prices rounded
    live.reset_positions(venue)
    j.record_base(live.events.last_seq, venue, new_epoch=True)
    flow.run(20)
    j.close()
    again, _, _ = _restart(path)
    assert again.positions.exact() == live.positions.exact()


def test_an_unreadable_snapshot_reads_the_whole_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / JOURNAL_FILE
    live = _journaled_with_a_snapshot(path, seed=8, orders=30)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE snapshot SET book = ?", (b'[["AAPL", "ten", "1", "0"]]',))
    again, _, read = _restart(path)
    assert "book snapshot unreadable" in caplog.text
    assert read == live.events.last_seq
    assert again.positions.exact() == live.positions.exact()
    assert _open_orders(again) == _open_orders(live)


def test_an_end_that_is_our_verdict_is_kept_a_day_when_the_order_was_posted(tmp_path: Path) -> None:
    """A POSTed order judged never placed (or lost by the venue) may still show up at the venue: the
    next start must know it, not ignore it as a retired id. One refused before any POST need not."""
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    j.record_base(0, [], new_epoch=False)
    t = _tracker(j)
    flow = Flow(t, random.Random(9))
    posted, refused = flow.submit(acknowledged=False), flow.submit(acknowledged=False)
    now = wall_ns()
    for coid, post_ns in ((posted, now), (refused, 0)):
        order = t.orders[coid]
        order.last_post_ns = post_ns
        order.mark(SUBMIT_FAILED, "lookup found nothing")
        t.emit_update(order, "submit_failed", now)
    snap = t.snapshot(keep_closed=0)
    assert [c for c, _ in snap.kept] == [posted] and refused in snap.retired
    t.orders[posted].updated_ns = now - 2 * UNCONFIRMED_KEEP_NS  # a day later it goes too
    assert posted in t.snapshot(keep_closed=0).retired


def test_execution_snapshots_when_ready_when_quiet_and_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution_service, "SNAPSHOT_EVERY", 4)
    monkeypatch.setattr(execution_service, "SNAPSHOT_QUIET_NS", 0)

    async def main() -> None:
        async with tiny_venue() as venue:
            settings = make_settings(tmp_path / "run", venue)
            async with running_execution(settings, venue) as h:
                assert h.svc.journal.snapshot_seq == 0  # taken when it became ready
                for i in range(3):
                    assert (await h.order(f"zt-s.{i}", qty="10")).accepted
                    await until(lambda i=i: h.svc.tracker.orders[f"zt-s.{i}"].status == "new")
                    await venue.fill(f"zt-s.{i}", "10", f"99.{i}")
                await until(lambda: h.svc.tracker.positions.qty("AAPL") == to_fixed(30))
                await until(lambda: h.svc.journal.snapshot_seq >= 4, timeout_s=5)  # the watch took one
                assert (await h.order("zt-s.open", qty="1")).accepted
                await until(lambda: h.svc.tracker.orders["zt-s.open"].status == "new")
                book, last, path = h.svc.tracker.positions.exact(), h.svc.events.last_seq, h.svc.journal.path
            with sqlite3.connect(path) as db:
                assert db.execute("SELECT as_of_seq FROM snapshot").fetchone() == (last,)  # the stop's
            async with running_execution(settings, venue) as h2:
                svc = h2.svc
                assert svc.tracker.positions.exact() == book
                assert svc.tracker.orders["zt-s.open"].status == "new"
                assert all(svc.tracker.is_known(f"zt-s.{i}") for i in range(3))
                assert not (await h2.order("zt-s.1", qty="10")).accepted  # refused: sent before

    asyncio.run(main())


def test_a_snapshot_of_another_layout_is_dropped_and_one_older_than_a_new_epoch_s_base_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / JOURNAL_FILE
    live = _journaled_with_a_snapshot(path, seed=10, orders=20)
    with sqlite3.connect(path) as db:  # a base of a later epoch, yet older than the snapshot
        db.execute("UPDATE base SET epoch = epoch + 1")
    again, _, read = _restart(path)
    assert "after a base of another epoch" in caplog.text
    assert read == live.events.last_seq and again.positions.exact() == live.positions.exact()
    again.journal.close()  # type: ignore[attr-defined]
    with sqlite3.connect(path) as db:  # another version's layout
        db.execute("DROP TABLE snapshot")
        db.execute("CREATE TABLE snapshot (id INTEGER PRIMARY KEY, as_of_seq INTEGER, book BLOB)")
        db.execute("INSERT INTO snapshot VALUES (1, 5, x'00')")
    j = SqliteJournal(path)
    assert j.ok and "another layout dropped" in caplog.text
    rec = j.load()
    assert len(rec.events) == live.events.last_seq  # no snapshot: the whole journal
    t = _tracker(j)
    restore(t, rec)
    _snapshot(t, j, keep_closed=2)
    assert j.ok and j.snapshot_seq == live.events.last_seq
