"""Subscriber drain: throughput and the longest single pass (how long the loop is blocked) per
``DRAIN_BATCH``, and the per-frame cost of sequencing (publish, header + gap tracking).

    python -m bench.zmq_drain
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import uvloop
import zmq

from common import wire
from common.zmq_io import Publisher, Subscriber

FRAMES = 200_000


def _quote(i: int) -> wire.Quote:
    return wire.Quote(symbol="AAPL", bid_px=i, bid_sz=1, ask_px=i + 1, ask_sz=1, exch_ns=i, recv_ns=i)


async def _run(batch: int, folder: str) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    ctx = zmq.Context()
    got = [0]
    done = asyncio.Event()

    def on_batch(topic: bytes, msgs: list[object]) -> None:
        if topic == b"md.t.AAPL":
            got[0] += len(msgs)
            if got[0] >= FRAMES:
                done.set()

    pub = Publisher(ctx, f"ipc://{folder}/b{batch}", "bench", sndhwm=FRAMES * 2)
    sub = Subscriber(
        ctx, loop, [f"ipc://{folder}/b{batch}"], [b"md."], on_batch, "bench", FRAMES * 2, batch=batch
    )
    await asyncio.sleep(0.2)
    sub._reader.close()
    q = [_quote(1)]
    for _ in range(FRAMES):
        pub.publish(b"md.t.AAPL", q)
    await asyncio.sleep(0.5)
    longest = 0.0
    drain = sub._reader.drain

    def timed() -> None:
        nonlocal longest
        t = time.perf_counter()
        drain()
        longest = max(longest, time.perf_counter() - t)

    sub._reader.drain = timed  # type: ignore[method-assign]
    t0 = time.perf_counter()
    sub._reader.kick()
    await done.wait()
    elapsed = time.perf_counter() - t0
    sub.close()
    pub.close()
    ctx.term()
    return FRAMES / elapsed, longest


def _publish_cost() -> tuple[float, float]:
    msgs = [_quote(1)]
    n = 500_000
    t = time.perf_counter()
    for _ in range(n):
        wire.encode_batch(b"md.q.AAPL", msgs)
    plain = (time.perf_counter() - t) / n
    seqs: dict[bytes, int] = {}
    t = time.perf_counter()
    for _ in range(n):
        s = seqs.get(b"md.q.AAPL", 0)
        seqs[b"md.q.AAPL"] = s + 1
        wire.encode_seq_batch(b"md.q.AAPL", 7, s, msgs)
    return plain, (time.perf_counter() - t) / n


def _header_cost() -> tuple[float, float]:
    n = 500_000
    v1 = wire.encode_batch(b"md.q.AAPL", [_quote(1)])
    v2 = wire.encode_seq_batch(b"md.q.AAPL", 7, 1, [_quote(1)])
    t = time.perf_counter()
    for _ in range(n):
        wire.decode_batch(v1)
    a = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(n):
        topic, _, _, _, off = wire.frame_header(v2)
        wire.decode_body(v2, topic, off)
    return a, (time.perf_counter() - t) / n


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for batch in (16, 64, 256, 1024, 4096, 1_000_000):
            rate, longest = uvloop.run(_run(batch, folder))
            print(f"batch {batch:>9}: {rate:>10,.0f} frames/s, longest pass {longest * 1e3:8.2f} ms")
    plain, seq = _publish_cost()
    print(f"encode: v1 {plain * 1e9:.0f} ns, sequenced {seq * 1e9:.0f} ns per frame")
    v1, v2 = _header_cost()
    print(f"decode: v1 {v1 * 1e9:.0f} ns, header + body {v2 * 1e9:.0f} ns per frame")


if __name__ == "__main__":
    main()
