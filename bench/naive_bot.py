"""The baseline a user would otherwise run, measured exactly like zerotick (bench/wire_to_wire.py):
one process, alpaca-py's StockDataStream quote handler calling TradingClient.submit_order, against
the same venue with the same background feed and the same probe quotes. The bot takes in the same
stock quotes as zerotick (AAPL, MSFT, the probe symbol) but no crypto order books.

    python -m bench.naive_bot [--probes 2000] [--probe-rate 100] [--background-rate 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests

from bench.calibrate import IdlePoll, zmq_rtt_us
from bench.wire_to_wire import PROBE_SYMBOL, probe, summary
from simulator.app import READY_PREFIX, parse_ready_line
from tests.kit.system import clean_env, kill_pid, write_toml

KEY, SECRET = "naive-key", "naive-secret"

BOT = """
import sys
from alpaca.data.live import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest

key, secret, rest, iex, symbol = sys.argv[1:6]
client = TradingClient(key, secret, url_override=rest)
stream = StockDataStream(key, secret, url_override=iex)

async def on_quote(q):
    client.submit_order(LimitOrderRequest(symbol=q.symbol, qty=1, side=OrderSide.BUY,
                                          limit_price=q.ask_price, time_in_force=TimeInForce.DAY))

async def on_other(q):
    pass  # the same stock quotes zerotick's market_data takes in; only the probe symbol trades

stream.subscribe_quotes(on_quote, symbol)
stream.subscribe_quotes(on_other, "AAPL", "MSFT")
print("bot ready", flush=True)
stream.run()
"""


def run(probes: int, probe_rate: float, background_rate: float, warmup: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="zt-naive-"))
    cfg = write_toml(
        tmp / "venue.toml",
        {"sim": {"key_id": KEY, "secret_key": SECRET, "metrics_port": 0, "stocks": ["AAPL", "MSFT"],
                 "quiet_stocks": [PROBE_SYMBOL], "crypto": ["BTC/USD"], "message_rate": background_rate,
                 "rate_limit_per_min": 100_000_000, "starting_cash": "1000000000", "log_level": "WARNING"}},
    )  # fmt: skip
    env = clean_env()
    venue = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--config", str(cfg), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    bot: subprocess.Popen[str] | None = None
    try:
        assert venue.stdout is not None
        line = venue.stdout.readline().strip()
        if not line.startswith(READY_PREFIX):
            raise SystemExit(f"venue did not start: {line!r}")
        urls = parse_ready_line(line)
        bot = subprocess.Popen(
            [sys.executable, "-c", BOT, KEY, SECRET, urls["rest"], urls["iex"], PROBE_SYMBOL],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        assert bot.stdout is not None
        bot.stdout.readline()  # "bot ready"; the stream connects right after
        http = requests.Session()
        http.trust_env = False
        deadline = time.monotonic() + 30
        while http.get(f"{urls['rest']}/sim/health", timeout=5).json().get("md_connections", 0) < 1:
            if time.monotonic() > deadline:
                raise SystemExit("the bot never connected its market-data stream")
            time.sleep(0.1)
        time.sleep(1.0)  # subscribed
        lat_us = probe(http, urls["rest"], probes, probe_rate, warmup)
        return {**summary(lat_us, probes), "probe_rate": probe_rate, "background_rate": background_rate}
    finally:
        if bot is not None:
            kill_pid(bot.pid)
        kill_pid(venue.pid)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--probe-rate", type=float, default=100.0)
    p.add_argument("--background-rate", type=float, default=1000.0)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--idle-poll", action="store_true")
    args = p.parse_args(argv)
    print(f"naive alpaca-py bot, {os.cpu_count()} cpus, idle-poll {'ON' if args.idle_poll else 'off'}")
    with IdlePoll() if args.idle_poll else contextlib.nullcontext():
        for i in range(args.runs):
            cal = zmq_rtt_us()
            print(f"calibration: paced zmq RTT p50 {cal['p50_us']:.0f} us, p99 {cal['p99_us']:.0f} us")
            res = run(args.probes, args.probe_rate, args.background_rate, args.warmup)
            print(f"run {i + 1}: " + orjson.dumps(res).decode())
            print(
                f"  p50 {res['p50_us']:.0f} us   p90 {res['p90_us']:.0f} us   p99 {res['p99_us']:.0f} us   "
                f"p99.9 {res['p99.9_us']:.0f} us   (n={res['orders_matched']}, missing={res['missing']})"
            )


if __name__ == "__main__":
    main()
