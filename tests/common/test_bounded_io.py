"""Bounded I/O on real ZeroMQ sockets: a flooded drain yields to the loop, every lost or skipped
message is counted exactly, a caller that never reads its replies does not make the server spin,
and a second copy of a service on the same run folder is refused."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
import uvloop
import zmq

from common import wire
from common.enums import ControlCmd
from common.service import AlreadyRunning, RunLock
from common.zmq_io import DRAIN_BATCH, OUTBOX_PER_PEER, Publisher, RpcServer, Subscriber


def _ep(tmp_path: Path, name: str) -> str:
    return f"ipc://{tmp_path}/{name}"


def _quote(i: int, symbol: str = "AAPL") -> wire.Quote:
    return wire.Quote(symbol=symbol, bid_px=i, bid_sz=1, ask_px=i + 1, ask_sz=1, exch_ns=i, recv_ns=i)


def _sub_pair(
    tmp_path: Path,
    loop: asyncio.AbstractEventLoop,
    handler: object,
    hwm: int,
    conflate: tuple[bytes, ...] = (),
) -> tuple[zmq.Context, Publisher, Subscriber]:
    ctx = zmq.Context()
    pub = Publisher(ctx, _ep(tmp_path, "p"), "bounded-test", sndhwm=hwm)
    sub = Subscriber(
        ctx,
        loop,
        [_ep(tmp_path, "p")],
        [b"md."],
        handler,
        "bounded-test",
        rcvhwm=hwm,
        conflate=conflate,  # type: ignore[arg-type]
    )
    return ctx, pub, sub


async def _joined(pub: Publisher, sub: Subscriber) -> None:
    """Slow joiner: publish on a side topic until the subscriber sees one."""
    for _ in range(200):
        pub.publish(b"md.fs.join", [wire.FeedStatus(feed="x", state="connected", detail="", ts_ns=0)])
        await asyncio.sleep(0.01)
        if b"md.fs.join" in sub.topics:
            return
    raise AssertionError("subscriber never joined")


def test_a_flooded_drain_yields_to_the_loop(tmp_path: Path) -> None:
    """50,000 frames already waiting: a timer due now runs long before the drain has taken them all."""

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        got = [0]

        def count(topic: bytes, msgs: list[object]) -> None:
            if topic == b"md.t.AAPL":
                got[0] += len(msgs)

        ctx, pub, sub = _sub_pair(tmp_path, loop, count, 100_000)
        await _joined(pub, sub)
        sub._reader.close()  # stop reading while the backlog builds
        for i in range(50_000):
            pub.publish(b"md.t.AAPL", [_quote(i)])
        await asyncio.sleep(0.3)
        seen_by_timer: list[int] = []
        loop.add_reader(sub._reader._fd, sub._reader.drain)
        sub._reader.kick()
        loop.call_later(0, lambda: seen_by_timer.append(got[0]))
        for _ in range(500):
            await asyncio.sleep(0.01)
            if got[0] >= 50_000:
                break
        sub.close()
        pub.close()
        ctx.term()
        return seen_by_timer[0], got[0]

    at_timer, total = uvloop.run(main())
    assert total == 50_000
    assert at_timer <= 2 * DRAIN_BATCH, at_timer


def test_drops_are_counted_exactly_and_quotes_conflated(tmp_path: Path) -> None:
    """Tiny high-water marks and a subscriber that does not read while 20,000 messages go out:
    for every topic, sent == received + gaps (+ conflated for quotes), and the newest quote arrives."""

    async def main() -> tuple[dict[str, dict[str, int]], list[int], int]:
        loop = asyncio.get_running_loop()
        last_quote: list[int] = []
        ctx, pub, sub = _sub_pair(
            tmp_path,
            loop,
            lambda t, m: last_quote.extend(q.bid_px for q in m if t == b"md.q.AAPL"),
            hwm=100,
            conflate=(b"md.q.",),
        )
        await _joined(pub, sub)
        sub._reader.close()
        n = 0
        for i in range(5_000):
            pub.publish(b"md.q.AAPL", [_quote(2 * i), _quote(2 * i + 1)])  # 2 per frame
            pub.publish(b"md.t.AAPL", [_quote(i)])
            n += 2
        loop.add_reader(sub._reader._fd, sub._reader.drain)
        sub._reader.kick()
        await asyncio.sleep(0.5)
        # losses at the end of a burst show when the next frame arrives
        pub.publish(b"md.q.AAPL", [_quote(10_000)])
        pub.publish(b"md.t.AAPL", [_quote(5_000)])
        await asyncio.sleep(0.3)
        stats = sub.stats()
        sub.close()
        pub.close()
        ctx.term()
        return stats, last_quote, n + 1

    stats, quotes, sent_quotes = uvloop.run(main())
    q, t = stats["md.q.AAPL"], stats["md.t.AAPL"]
    assert q["received"] + q["gaps"] + q["conflated"] == sent_quotes, q
    assert t["received"] + t["gaps"] == 5_001 and t["conflated"] == 0, t
    assert q["gaps"] > 0 and t["gaps"] > 0  # the high-water marks did drop
    assert quotes[-1] == 10_000
    assert quotes == sorted(quotes)  # conflation never reorders


def test_conflation_keeps_the_newest_frame_of_each_topic_in_a_pass(tmp_path: Path) -> None:
    async def main() -> tuple[list[tuple[bytes, int]], dict[str, dict[str, int]]]:
        loop = asyncio.get_running_loop()
        got: list[tuple[bytes, int]] = []
        ctx, pub, sub = _sub_pair(
            tmp_path, loop, lambda t, m: got.extend((t, x.bid_px) for x in m), 1000, conflate=(b"md.q.",)
        )
        await _joined(pub, sub)
        sub._reader.close()
        for i in range(10):
            pub.publish(b"md.q.AAPL", [_quote(i)])
            pub.publish(b"md.q.MSFT", [_quote(100 + i, "MSFT")])
            pub.publish(b"md.t.AAPL", [_quote(i)])
        await asyncio.sleep(0.2)
        sub._reader.drain()  # one pass: 30 frames, below DRAIN_BATCH
        stats = sub.stats()
        sub.close()
        pub.close()
        ctx.term()
        return got, stats

    got, stats = uvloop.run(main())
    trades = [px for t, px in got if t == b"md.t.AAPL"]
    assert trades == list(range(10))
    assert [px for t, px in got if t == b"md.q.AAPL"] == [9]
    assert [px for t, px in got if t == b"md.q.MSFT"] == [109]
    assert stats["md.q.AAPL"] == {"received": 1, "gaps": 0, "conflated": 9}


def test_a_caller_that_never_reads_replies_does_not_make_the_server_spin(tmp_path: Path) -> None:
    """20,000 pings from a DEALER that never reads: replies beyond its queue wait (at most
    OUTBOX_PER_PEER, the oldest dropped and counted), retried with backoff: the process's CPU time
    while nothing can progress stays a small fraction of the wall time."""

    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        srv = RpcServer(
            ctx, loop, _ep(tmp_path, "r"), lambda m: wire.Reply(ok=True, detail="pong"), "spin", hwm=10
        )
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVHWM, 10)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(_ep(tmp_path, "r"))
        body = wire.encode(wire.Control(cmd=ControlCmd.PING))
        sent = 0
        for i in range(20_000):
            try:
                dealer.send_multipart([i.to_bytes(8, "little"), body], zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                await asyncio.sleep(0.001)
        await asyncio.sleep(1.0)  # every request handled; replies parked
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(2.0)
        busy = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        parked = srv.outbox_len
        srv.close()
        dealer.close(0)
        ctx.term()
        return busy, parked

    busy, parked = uvloop.run(main())
    assert 0 < parked <= OUTBOX_PER_PEER
    assert busy < 0.2, f"server used {busy:.0%} of a CPU while its only caller read nothing"


def test_a_second_lock_on_the_same_run_folder_is_refused(tmp_path: Path) -> None:
    first = RunLock(tmp_path, "signal")
    with pytest.raises(AlreadyRunning, match=r"signal is already running on run folder .*pid \d+"):
        RunLock(tmp_path, "signal")
    other = RunLock(tmp_path, "risk")  # another service on the same folder is fine
    first.release()
    again = RunLock(tmp_path, "signal")  # released: the next start takes it
    again.release()
    other.release()


def test_a_refusal_waits_for_the_pid_of_a_holder_that_has_just_taken_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "up.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken, its pid not written yet
    writer = threading.Timer(0.1, lambda: os.pwrite(fd, b"4242\n", 0))
    writer.start()
    try:
        with pytest.raises(AlreadyRunning) as refused:
            RunLock(tmp_path, "up", log_refusal=False)
        assert refused.value.holder == "4242"
    finally:
        writer.join()
        os.close(fd)
