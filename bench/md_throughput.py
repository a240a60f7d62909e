"""Sustained market-data throughput through the real market_data service process.

Three processes besides this one: a feeder (an Alpaca-protocol market-data WebSocket server: greeting,
auth, subscribe ack, then pre-built msgpack frames of 10-50 messages sent as fast as the service's
socket takes them), the market_data service (``python -m services.market_data --config ...``) and a
subscriber on its PUB that counts messages per topic and checks each topic's sequence (gaps).

Three phases, each with its own subscriber: stock quotes on the stock stream, then crypto order-book
deltas on the crypto stream, twice: levels anywhere in 120 ticks from the mid (``books``), then
levels clustered at the touch (``books_touch``), where nearly every frame changes the published
top of book. One ``Book`` is published per symbol per frame, so the subscriber's count for books is
frames x symbols; the rate reported is venue deltas/s. A phase counts only if
the subscriber got exactly what the frames imply and saw no gap; otherwise ``*_dropped`` says how
many were missing.

    python -m bench.md_throughput [--quick] [--service-root DIR]

``--service-root`` runs the service from another copy of the code (e.g. a ``git archive`` of an
older commit), so before/after can be interleaved on the same (shared, noisy) machine.
CPU per message is the service's utime+stime (``/proc/<pid>/stat``) over the phase, divided by the
venue messages it handled: less sensitive to other load than msgs/s. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from bench.host import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "bench-key", "bench-secret-value"
STOCKS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD", "INTC", "NFLX"]
CRYPTO = ["BTC/USD", "ETH/USD", "SOL/USD", "LTC/USD"]
STOCK_PATH = "/v2/sip"
CRYPTO_PATH = "/v1beta3/crypto/us"
N_FRAMES = 400  # distinct pre-built frames per phase, sent in a cycle
MIN_MSGS, MAX_MSGS = 10, 50
PHASES = ("quotes", "books", "books_touch")
IDLE_END_S = 1.5  # the subscriber reports once no data arrived for this long after data


# ---- frames ----------------------------------------------------------------------------------


def _ts(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


def quote_frames(seed: int = 1) -> list[tuple[bytes, dict[str, int]]]:
    """(frame, {topic: messages it yields}) of 10-50 Alpaca stock quotes each."""
    rng = random.Random(seed)
    t = time.time_ns() - 60 * 1_000_000_000
    out = []
    for _ in range(N_FRAMES):
        msgs = []
        per_topic: dict[str, int] = {}
        for _ in range(rng.randint(MIN_MSGS, MAX_MSGS)):
            sym = rng.choice(STOCKS)
            bp = round(100 + rng.randrange(10_000) / 100, 2)
            t += rng.randrange(1, 5_000)
            msgs.append(
                {"T": "q", "S": sym, "bx": "V", "bp": bp, "bs": rng.randrange(1, 20), "ax": "Q",
                 "ap": round(bp + rng.randrange(1, 5) / 100, 2), "as": rng.randrange(1, 20), "c": ["R"],
                 "t": _ts(t), "z": "C"}
            )  # fmt: skip
            per_topic[f"md.q.{sym}"] = per_topic.get(f"md.q.{sym}", 0) + 1
        out.append((msgpack.packb(msgs, datetime=False), per_topic))
    return out


def book_frames(
    seed: int = 2, at_touch: bool = False
) -> tuple[list[bytes], list[tuple[bytes, dict[str, int]]]]:
    """(one snapshot frame per symbol, frames of 10-50 one-level deltas with {topic: Books}).

    A delta's level is anywhere in the 120 ticks from the mid, or, ``at_touch``, a geometric number
    of ticks from it (mean 1.5), as a live feed's updates cluster: then nearly every frame changes
    the published top of both sides of each symbol it touches."""
    rng = random.Random(seed)
    t = time.time_ns() - 60 * 1_000_000_000
    mid = {s: 1000.0 * (k + 1) for k, s in enumerate(CRYPTO)}
    snapshots = []
    for s in CRYPTO:
        snap = {"T": "o", "S": s, "t": _ts(t), "r": True,
                "b": [{"p": mid[s] - k / 4, "s": 1.5} for k in range(1, 100)],
                "a": [{"p": mid[s] + k / 4, "s": 1.5} for k in range(1, 100)]}  # fmt: skip
        snapshots.append(msgpack.packb([snap], datetime=False))
    out = []
    for _ in range(N_FRAMES):
        msgs = []
        symbols = set()
        for _ in range(rng.randint(MIN_MSGS, MAX_MSGS)):
            sym = rng.choice(CRYPTO)
            bid = rng.random() < 0.5
            ticks = min(119, 1 + int(rng.expovariate(2 / 3))) if at_touch else rng.randrange(1, 120)
            px = mid[sym] + (-1 if bid else 1) * ticks / 4
            size = 0.0 if rng.random() < 0.3 else rng.randrange(1, 10**6) / 10**4
            t += rng.randrange(1, 5_000)
            level = [{"p": px, "s": size}]
            msgs.append(
                {"T": "o", "S": sym, "t": _ts(t), "b": level if bid else [], "a": [] if bid else level}
            )
            symbols.add(sym)
        out.append((msgpack.packb(msgs, datetime=False), {f"md.o.{s}": 1 for s in symbols}))
    return snapshots, out


# ---- the feeder (child process) ----------------------------------------------------------------


class _Feeder:
    """Alpaca's stream protocol on one port; stock quotes on STOCK_PATH, book deltas on CRYPTO_PATH."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.subscribed = asyncio.Event()

    async def handler(self, ws: Any) -> None:
        path = ws.request.path
        await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        auth = msgpack.unpackb(await ws.recv())
        if auth != {"action": "auth", "key": KEY, "secret": SECRET}:
            await ws.send(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
            return
        await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        sub = msgpack.unpackb(await ws.recv())
        await ws.send(
            msgpack.packb([{"T": "subscription", **{k: v for k, v in sub.items() if k != "action"}}])
        )
        self.clients[path] = ws
        if STOCK_PATH in self.clients and CRYPTO_PATH in self.clients:
            self.subscribed.set()
        await ws.wait_closed()

    async def stream(self, path: str, frames: list[bytes], seconds: float) -> tuple[int, int, float]:
        """Send ``frames`` in a cycle for ``seconds`` as fast as the socket takes them."""
        ws = self.clients[path]
        sent = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        n = len(frames)
        while time.perf_counter() < deadline:
            for _ in range(16):
                await ws.send(frames[sent % n])
                sent += 1
        return sent // n, sent % n, time.perf_counter() - t0


async def _feeder_main() -> None:
    import uvloop  # noqa: F401 - the loop policy is set by the caller
    from websockets.asyncio.server import serve

    feeder = _Feeder()
    quotes = quote_frames()
    snapshots, books = book_frames()
    _, books_touch = book_frames(at_touch=True)
    server = await serve(feeder.handler, "127.0.0.1", 0, max_size=None, compression=None)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: lines.put_nowait(sys.stdin.readline()))
    while True:
        cmd = (await lines.get()).split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "wait":
            await feeder.subscribed.wait()
            print(json.dumps({"subscribed": True}), flush=True)
            continue
        phase, seconds = cmd[1], float(cmd[2])
        if phase == "quotes":
            path, table = STOCK_PATH, quotes
        else:
            path, table = CRYPTO_PATH, books if phase == "books" else books_touch
            for snap in snapshots:
                await feeder.clients[path].send(snap)
        cycles, extra, elapsed = await feeder.stream(path, [f for f, _ in table], seconds)
        expected: dict[str, int] = {}
        venue_msgs = 0
        for k, (frame, per_topic) in enumerate(table):
            times = cycles + (1 if k < extra else 0)
            venue_msgs += times * len(msgpack.unpackb(frame, timestamp=0))
            for topic, n in per_topic.items():
                expected[topic] = expected.get(topic, 0) + times * n
        if phase != "quotes":
            for s in CRYPTO:  # the snapshots' Books
                expected[f"md.o.{s}"] += 1
        frames = cycles * len(table) + extra
        print(
            json.dumps(
                {"frames": frames, "venue_msgs": venue_msgs, "elapsed": elapsed, "expected": expected}
            ),
            flush=True,
        )
    server.close()


# ---- the subscriber (child process) -------------------------------------------------------------


def _subscriber_main(endpoint: str, prefix: str) -> None:
    import zmq

    from common import topics, wire

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 2_000_000)
    sock.setsockopt(zmq.SUBSCRIBE, topics.MD_FEED)
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(endpoint)
    ready = False
    counts: dict[bytes, int] = {}
    next_seq: dict[bytes, int] = {}
    gaps = 0
    first = last = 0.0
    frame_header = wire.frame_header
    while True:
        if first and time.perf_counter() - last > IDLE_END_S:
            break
        if not sock.poll(250):
            continue
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            topic, _epoch, seq, n, _ = frame_header(frame)
            if topic.startswith(topics.MD_FEED):
                if not ready:
                    ready = True
                    print(json.dumps({"ready": True}), flush=True)
                continue
            last = time.perf_counter()
            if not first:
                first = last
            expect = next_seq.get(topic)
            if expect is not None and seq != expect:
                gaps += seq - expect
            next_seq[topic] = seq + n
            counts[topic] = counts.get(topic, 0) + n
    print(
        json.dumps(
            {"counts": {t.decode(): n for t, n in counts.items()}, "gaps": gaps, "span_s": last - first}
        ),
        flush=True,
    )
    sock.close(0)
    ctx.term()


# ---- the run -------------------------------------------------------------------------------------


def _child(args: list[str], root: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_", "ZEROTICK_"))}
    env["PYTHONPATH"] = str(root)
    return subprocess.Popen(
        [sys.executable, *args], cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"child {proc.args} said nothing within {timeout:g} s (exit {proc.poll()})")
    return json.loads(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _config(tmp: Path, port: int) -> Path:
    cfg = tmp / "zerotick.toml"
    stocks = ", ".join(f'"{s}"' for s in STOCKS)
    crypto = ", ".join(f'"{s}"' for s in CRYPTO)
    cfg.write_text(
        f'[alpaca]\nstock_stream_url = "ws://127.0.0.1:{port}{STOCK_PATH}"\n'
        f'crypto_stream_url = "ws://127.0.0.1:{port}{CRYPTO_PATH}"\n\n'
        f'[sim]\nkey_id = "{KEY}"\nsecret_key = "{SECRET}"\n\n'
        f'[zmq]\nrun_dir = "{tmp / "run"}"\n\n[metrics]\nbase_port = 0\n\n[log]\nlevel = "WARNING"\n\n'
        f"[market_data]\nstocks = [{stocks}]\ncrypto = [{crypto}]\nsubscribe_trades = false\n"
        "subscribe_bars = false\nstale_after_s = 600.0\n"
    )
    return cfg


def _phase(
    feeder: subprocess.Popen[str], service_pid: int, endpoint: str, phase: str, seconds: float
) -> dict[str, float]:
    prefix = "md.q." if phase == "quotes" else "md.o."
    sub = _child(["-m", "bench.md_throughput", "--subscriber", endpoint, prefix], ROOT)
    try:
        _read_json(sub, 15)  # connected: it got a feed status
        assert feeder.stdin is not None
        cpu0 = cpu_seconds(service_pid)
        feeder.stdin.write(f"go {phase} {seconds}\n")
        feeder.stdin.flush()
        sent = _read_json(feeder, seconds + 30)
        got = _read_json(sub, 120)
        cpu = cpu_seconds(service_pid) - cpu0
    finally:
        _stop(sub)
    expected: dict[str, int] = sent["expected"]
    missing = sum(max(0, n - got["counts"].get(t, 0)) for t, n in expected.items())
    venue_msgs = sent["venue_msgs"]
    span = max(got["span_s"], 1e-9)
    return {
        f"{phase}_msgs_per_s": round(venue_msgs / span) if not missing and not got["gaps"] else 0,
        f"{phase}_offered_msgs_per_s": round(venue_msgs / sent["elapsed"]),
        f"{phase}_cpu_us_per_msg": round(cpu / venue_msgs * 1e6, 3),
        f"{phase}_service_cpu_pct": round(cpu / span * 100, 1),
        f"{phase}_venue_msgs": venue_msgs,
        f"{phase}_frames": sent["frames"],
        f"{phase}_published": sum(got["counts"].values()),
        f"{phase}_dropped": missing,
        f"{phase}_gaps": got["gaps"],
    }


def run(quick: bool = False, service_root: Path | None = None) -> dict[str, float]:
    """Every phase against one service process; a flat dict of numbers (rates, CPU, drops)."""
    seconds = 3.0 if quick else 10.0
    root = service_root or ROOT
    feeder = _child(["-m", "bench.md_throughput", "--feeder"], ROOT)
    service = None
    try:
        port = _read_json(feeder, 30)["port"]
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            cfg = _config(tmp, port)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_", "ZEROTICK_"))}
            env["PYTHONPATH"] = str(root)
            env.setdefault("NUMBA_CACHE_DIR", str(root / ".numba_cache"))
            with open(tmp / "service.log", "wb") as log:
                service = subprocess.Popen(
                    [sys.executable, "-m", "services.market_data", "--config", str(cfg)],
                    cwd=root,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            assert feeder.stdin is not None
            feeder.stdin.write("wait\n")
            feeder.stdin.flush()
            _read_json(feeder, 60)
            from common.config import ZmqConfig

            endpoint = ZmqConfig(run_dir=tmp / "run").endpoint("market_data", "pub")
            result: dict[str, float] = {"seconds_per_phase": seconds}
            for phase in PHASES:
                result.update(_phase(feeder, service.pid, endpoint, phase, seconds))
            feeder.stdin.write("quit\n")
            feeder.stdin.flush()
            _stop(service)
    finally:
        if service is not None:
            _stop(service)
        _stop(feeder)
    return result


def _rows(result: dict[str, float]) -> Iterator[str]:
    for phase, unit in zip(PHASES, ("quotes", "book deltas", "at the touch"), strict=True):
        yield (
            f"  {unit:12s} sustained {result[f'{phase}_msgs_per_s']:>9,} msgs/s "
            f"(offered {result[f'{phase}_offered_msgs_per_s']:,}/s)  "
            f"service CPU {result[f'{phase}_cpu_us_per_msg']:.2f} us/msg "
            f"({result[f'{phase}_service_cpu_pct']:.0f}% of a core)  "
            f"dropped {result[f'{phase}_dropped']}  gaps {result[f'{phase}_gaps']}"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per phase instead of 10 s")
    p.add_argument("--service-root", type=Path, help="run the service from this copy of the code")
    p.add_argument("--feeder", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--subscriber", nargs=2, metavar=("ENDPOINT", "PREFIX"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.feeder:
        import uvloop

        uvloop.run(_feeder_main())
        return
    if args.subscriber:
        _subscriber_main(*args.subscriber)
        return
    result = run(args.quick, args.service_root)
    print(
        f"md_throughput: frames of {MIN_MSGS}-{MAX_MSGS} messages, {result['seconds_per_phase']:g} s per phase"
    )
    for row in _rows(result):
        print(row)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
