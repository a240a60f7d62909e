"""How many market-data messages/s the venue sustains to ONE msgpack subscriber.

Starts ``python -m simulator --port 0`` (stocks only, so one connection sees every message),
subscribes a raw ``websockets`` client to everything on /v2/test, counts for ``--seconds`` after a
warm-up and prints sustained msgs/s, frames/s, the inter-frame gap p50/p99 and the venue's CPU.

    python -m bench.venue_md_rate [--seconds 10] [--rate 50000] [--batch-max 16]

A benchmark, not a test: numbers depend on the machine (docs/architecture.md, "Measured baselines").
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import uvloop
import websockets

from bench.host import cpu_seconds
from simulator.app import parse_ready_line

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "bench-key", "bench-secret"
STOCKS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD", "INTC", "FAKEPACA"]


def _config(path: Path, batch_max: int) -> None:
    stocks = ", ".join(f'"{s}"' for s in STOCKS)
    path.write_text(
        f'[sim]\nkey_id = "{KEY}"\nsecret_key = "{SECRET}"\nstocks = [{stocks}]\ncrypto = []\n'
        f"batch_max = {batch_max}\nbar_interval_s = 60.0\n"
    )


def _pct(sorted_vals: list[int], q: float) -> float:
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))] if sorted_vals else float("nan")


async def _subscribe_and_count(url: str, warmup_s: float, seconds: float) -> tuple[int, int, list[int]]:
    async with websockets.connect(
        url, additional_headers={"Content-Type": "application/msgpack"}, max_size=None
    ) as ws:
        await ws.recv()
        await ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        if msgpack.unpackb(await ws.recv())[0].get("msg") != "authenticated":
            raise SystemExit("auth failed")
        channels = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
        await ws.send(msgpack.packb({"action": "subscribe", **{c: ["*"] for c in channels}}))
        await ws.recv()  # ack
        end_warmup = time.perf_counter() + warmup_s
        while time.perf_counter() < end_warmup:
            await ws.recv()
        msgs = frames = 0
        stamps: list[int] = []
        deadline = time.perf_counter_ns() + int(seconds * 1e9)
        while True:
            data = await ws.recv()
            now = time.perf_counter_ns()
            if now > deadline:
                break
            msgs += len(msgpack.unpackb(data))
            frames += 1
            stamps.append(now)
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
    return msgs, frames, gaps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=50_000.0, help="target venue msgs/s")
    p.add_argument("--batch-max", type=int, default=16, help="messages per frame at most")
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        _config(cfg, args.batch_max)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_", "ZEROTICK_"))}
        env["PYTHONPATH"] = str(ROOT)
        cmd = [sys.executable, "-m", "simulator", "--config", str(cfg), "--port", "0", "--metrics-port", "0"]
        cmd += ["--rate", str(args.rate)]
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert proc.stdout is not None
            urls = parse_ready_line(proc.stdout.readline().strip())
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            msgs, frames, gaps = uvloop.run(_subscribe_and_count(urls["test"], args.warmup, args.seconds))
            venue_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    print(
        f"venue_md_rate: target {args.rate:,.0f} msgs/s, batch_max {args.batch_max}, {args.seconds:g} s, 1 msgpack subscriber"
    )
    print(f"  sustained   {msgs / args.seconds:12,.0f} msgs/s   ({msgs / max(1, frames):.1f} msgs/frame)")
    print(f"  frames      {frames / args.seconds:12,.0f} frames/s")
    print(f"  frame gap   p50 {_pct(gaps, 0.50) / 1e3:8.1f} us   p99 {_pct(gaps, 0.99) / 1e3:8.1f} us")
    print(f"  venue CPU   {venue_cpu * 100:5.1f} % of one core")


if __name__ == "__main__":
    main()
