"""Order events are never lost: a receiver on real sockets starts from execution's snapshot and
delivers the events after its seq, fills gaps and a lost tail by replay, delivers each event once
and in order, starts over from a new snapshot when execution's sequence does, and refuses a
snapshot it cannot line up with the events."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvloop

from common import topics, wire
from common.config import Settings
from common.order_events import OrderEvent, OrderEventReceiver
from common.service import Service
from tests.kit.waiting import until


def _update(seq: int) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=seq, client_order_id=f"zt-{seq}", venue_order_id="v", strategy="s", symbol="AAPL", side="buy",
        status="new", event="new", qty=1, filled_qty=0, filled_avg_px=0, limit_px=1, reason="", venue_ns=1, recv_ns=2,
    )  # fmt: skip


class FakeExecution(Service):
    """Holds a sequenced log; publishes only what the test says, answers Replay from the log."""

    name = "execution"
    CONTROL_READ_ONLY = frozenset({"positions"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.log: list[OrderEvent] = []
        self.replays = 0
        self.snapshot_at = 0  # the seq its snapshots are as of
        self.snapshot_reply: Any = None  # a test's own answer instead
        self.pid = os.getpid()  # what its heartbeats say; a test changes it to play a restart

    async def _heartbeats(self) -> None:
        seq = 0
        while True:
            seq += 1
            hb = wire.Heartbeat(service=self.name, pid=self.pid, seq=seq, state="ok",
                                last_event_seq=self.last_event_seq(), ts_ns=1)  # fmt: skip
            self.pub.publish(topics.heartbeat(self.name), [hb])
            await asyncio.sleep(self.settings.zmq.heartbeat_interval_ms / 1000)

    def record(self, n: int, publish: set[int] | None = None) -> None:
        for _ in range(n):
            ev = _update(len(self.log) + 1)
            self.log.append(ev)
            if publish is None or ev.seq in publish:
                self.pub.publish(topics.sym(topics.EX_UPDATE, "AAPL"), [ev])

    def last_event_seq(self) -> int:
        return len(self.log)

    def control(self, cmd: wire.Control) -> Any:
        if self.snapshot_reply is not None:
            return self.snapshot_reply
        return wire.PositionsSnapshot(as_of_seq=self.snapshot_at, positions=[])

    def handle(self, msg: Any) -> Any:
        if isinstance(msg, wire.Replay):
            self.replays += 1
            return wire.Reply(ok=True, detail="", data=wire.encode_list(self.log[msg.after_seq :]))
        return super().handle(msg)


class Host(Service):
    name = "risk"


def _settings(tmp_path: Path) -> Settings:
    return Settings(zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 50}, metrics={"base_port": 0})


def test_gaps_tail_and_history_are_replayed_once_in_order(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], int]:
        settings = _settings(tmp_path)
        ex = FakeExecution(settings)
        ex_task = asyncio.get_running_loop().create_task(ex.run_forever())
        ex.record(3)  # history before the receiver exists
        host = Host(settings)
        host_task = asyncio.get_running_loop().create_task(host.run_forever())
        got: list[int] = []
        rx = OrderEventReceiver(host, lambda ev: got.append(ev.seq), lambda snap: None)
        await until(lambda: got == [1, 2, 3])  # after the snapshot (as of 0): the history
        await asyncio.sleep(0.2)  # the SUB is connected
        ex.record(3, publish={4, 6})  # 5 lost on the wire: a gap
        await until(lambda: got[-1:] == [6])
        ex.record(2, publish=set())  # 7, 8 lost entirely: only the heartbeat tells
        await until(lambda: got[-1:] == [8])
        for t in (ex, host):
            t.request_stop()
        await asyncio.gather(ex_task, host_task)
        assert rx.last_seq == 8 and rx.skipped == 0
        return got, ex.replays

    got, replays = uvloop.run(main())
    assert got == [1, 2, 3, 4, 5, 6, 7, 8]
    assert replays >= 3


def test_execution_restart_starts_the_sequence_over(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], int]:
        settings = _settings(tmp_path)
        ex = FakeExecution(settings)
        loop = asyncio.get_running_loop()
        ex_task = loop.create_task(ex.run_forever())
        ex.record(5)
        host = Host(settings)
        host_task = loop.create_task(host.run_forever())
        got: list[int] = []
        resets: list[int] = []
        snaps: list[int] = []
        rx = OrderEventReceiver(
            host, lambda ev: got.append(ev.seq), lambda snap: snaps.append(snap.as_of_seq),
            on_reset=lambda: resets.append(len(got)),
        )  # fmt: skip
        await until(lambda: got == [1, 2, 3, 4, 5])
        # execution comes back as a new process with an empty log: its heartbeats say so
        ex.log = []
        ex.pid = 999_999
        await until(lambda: resets == [5])
        ex.record(2)
        await until(lambda: got[5:] == [1, 2])
        assert snaps == [0, 0]  # a new snapshot for the new sequence
        for t in (ex, host):
            t.request_stop()
        await asyncio.gather(ex_task, host_task)
        return got, rx.resets

    got, resets = uvloop.run(main())
    assert got == [1, 2, 3, 4, 5, 1, 2]
    assert resets >= 1


def test_evicted_events_are_skipped_and_reported(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], int]:
        settings = _settings(tmp_path)
        ex = FakeExecution(settings)
        loop = asyncio.get_running_loop()
        ex_task = loop.create_task(ex.run_forever())
        ex.record(6)
        # execution's bounded log no longer holds 1..3
        full = list(ex.log)
        orig = ex.handle

        def evicting(msg: Any) -> Any:
            if isinstance(msg, wire.Replay):
                return wire.Reply(
                    ok=True, detail="evicted", data=wire.encode_list([e for e in full if e.seq > 3])
                )
            return orig(msg)

        ex.handle = evicting  # type: ignore[method-assign]
        host = Host(settings)
        host_task = loop.create_task(host.run_forever())
        got: list[int] = []
        rx = OrderEventReceiver(host, lambda ev: got.append(ev.seq), lambda snap: None)
        await until(lambda: got == [4, 5, 6])
        for t in (ex, host):
            t.request_stop()
        await asyncio.gather(ex_task, host_task)
        return got, rx.skipped

    got, skipped = uvloop.run(main())
    assert got == [4, 5, 6]
    assert skipped == 3


def test_a_start_reads_the_snapshot_and_only_the_events_after_it(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], list[int], list[int]]:
        settings = _settings(tmp_path)
        ex = FakeExecution(settings)
        loop = asyncio.get_running_loop()
        ex_task = loop.create_task(ex.run_forever())
        ex.record(5)
        ex.snapshot_at = 3  # its state as of seq 3 holds what events 1..3 did
        host = Host(settings)
        host_task = loop.create_task(host.run_forever())
        got: list[int] = []
        snaps: list[int] = []
        replays_from: list[int] = []
        orig = ex.handle

        def watching(msg: Any) -> Any:
            if isinstance(msg, wire.Replay):
                replays_from.append(msg.after_seq)
            return orig(msg)

        ex.handle = watching  # type: ignore[method-assign]
        rx = OrderEventReceiver(
            host, lambda ev: got.append(ev.seq), lambda snap: snaps.append(snap.as_of_seq)
        )
        await until(lambda: got == [4, 5])
        assert rx.anchored and rx.snapshot_seq == 3
        for t in (ex, host):
            t.request_stop()
        await asyncio.gather(ex_task, host_task)
        return got, snaps, replays_from

    got, snaps, replays_from = uvloop.run(main())
    assert got == [4, 5] and snaps == [3]
    assert min(replays_from) == 3  # nothing before the snapshot was asked for


@pytest.mark.parametrize(
    "reply",
    [
        wire.Reply(ok=False, detail="not ready: venue positions not loaded yet"),
        wire.PositionsSnapshot(as_of_seq=-1, positions=[]),  # the venue's: not sequenced
        wire.PositionsSnapshot(as_of_seq=1 << 63, positions=[]),
        wire.PositionsSnapshot(
            as_of_seq=2,
            positions=[wire.Position(symbol="AAPL", qty=1 << 63, avg_px=1, realized_pnl=0, ts_ns=1)],
        ),
        wire.PositionsSnapshot(
            as_of_seq=2, positions=[], open_orders=[msgspec.structs.replace(_update(1), filled_qty=-5)]
        ),
        wire.Heartbeat(service="execution", pid=1, seq=1, state="ok", last_event_seq=0, ts_ns=1),
    ],
)
def test_a_snapshot_that_cannot_anchor_is_refused_and_asked_again(tmp_path: Path, reply: Any) -> None:
    async def main() -> tuple[list[int], list[int], bool]:
        settings = _settings(tmp_path)
        ex = FakeExecution(settings)
        loop = asyncio.get_running_loop()
        ex_task = loop.create_task(ex.run_forever())
        ex.record(2)
        ex.snapshot_reply = reply
        host = Host(settings)
        host_task = loop.create_task(host.run_forever())
        got: list[int] = []
        snaps: list[int] = []
        rx = OrderEventReceiver(
            host, lambda ev: got.append(ev.seq), lambda snap: snaps.append(snap.as_of_seq)
        )
        await asyncio.sleep(0.5)  # asked several times (backoff from 50 ms), refused every time
        refused = not rx.anchored
        ex.snapshot_reply = None  # a usable one now
        await until(lambda: got == [1, 2])
        for t in (ex, host):
            t.request_stop()
        await asyncio.gather(ex_task, host_task)
        return got, snaps, refused

    got, snaps, refused = uvloop.run(main())
    assert refused and snaps == [0] and got == [1, 2]
