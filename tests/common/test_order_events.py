"""Order events are never lost: a receiver on real sockets fills gaps and a lost tail by replay,
delivers each event once and in order, and starts over when execution restarts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

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

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.log: list[OrderEvent] = []
        self.replays = 0
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
        rx = OrderEventReceiver(host, lambda ev: got.append(ev.seq))
        await until(lambda: got == [1, 2, 3])  # startup replay
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
        rx = OrderEventReceiver(host, lambda ev: got.append(ev.seq), on_reset=lambda: resets.append(len(got)))
        await until(lambda: got == [1, 2, 3, 4, 5])
        # execution comes back as a new process with an empty log: its heartbeats say so
        ex.log = []
        ex.pid = 999_999
        await until(lambda: resets == [5])
        ex.record(2)
        await until(lambda: got[5:] == [1, 2])
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
        rx = OrderEventReceiver(host, lambda ev: got.append(ev.seq))
        await until(lambda: got == [4, 5, 6])
        for t in (ex, host):
            t.request_stop()
        await asyncio.gather(ex_task, host_task)
        return got, rx.skipped

    got, skipped = uvloop.run(main())
    assert got == [4, 5, 6]
    assert skipped == 3
