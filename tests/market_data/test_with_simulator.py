"""The real market_data process against the real simulator process (both started by PID here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import wire
from common.fixed import to_fixed
from simulator.app import READY_PREFIX, parse_ready_line
from tests.kit.market_data import (
    REPO,
    MdSubscriber,
    start_service,
    stop_process,
    wait_feeds_subscribed,
    write_config,
)


def _start_simulator(cfg: Path, log_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_"))}
    env["ZEROTICK_CONFIG"] = str(cfg)
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--config", str(cfg), "--port", "0", "--metrics-port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(log_path, "w"),
        text=True,
    )
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(READY_PREFIX):
            return proc, parse_ready_line(line.strip())
    stop_process(proc)  # type: ignore[arg-type]
    raise AssertionError(f"simulator printed no ready line: {log_path.read_text()[-2000:]}")


def _post(origin: str, path: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        origin + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"{}")


def test_quotes_and_books_from_simulator_and_recovery_after_drop(tmp_path: Path) -> None:
    sim_cfg = write_config(tmp_path, "ws://unused/v2/iex", "ws://unused/v1beta3/crypto/us")
    sim, urls = _start_simulator(sim_cfg, tmp_path / "sim.log")
    rest = urls["rest"]
    md_dir = tmp_path / "md"
    md_dir.mkdir()
    cfg = write_config(md_dir, urls["iex"], urls["crypto"])
    sub = MdSubscriber(md_dir / "run")
    md = start_service(cfg, tmp_path / "md.log")
    try:
        wait_feeds_subscribed(md_dir / "run", ("stocks", "crypto"), sub)
        _post(
            rest,
            "/sim/inject/quote",
            {"symbol": "AAPL", "bid_px": "123.45", "bid_sz": 1, "ask_px": "123.55", "ask_sz": 2},
        )
        q = sub.wait_for(
            lambda t, m: isinstance(m, wire.Quote) and m.symbol == "AAPL" and m.bid_px == to_fixed("123.45"),
            what="injected quote",
        )
        assert q.ask_px == to_fixed("123.55") and q.recv_ns >= q.exch_ns > 0
        _post(
            rest,
            "/sim/inject/book",
            {"symbol": "BTC/USD", "bids": [["100", "1"]], "asks": [["101", "2"]], "reset": True},
        )
        book = sub.wait_for(lambda t, m: isinstance(m, wire.Book) and m.symbol == "BTC/USD", what="book")
        assert book.bids[0] == (to_fixed(100), to_fixed(1)) and book.asks[0] == (to_fixed(101), to_fixed(2))

        _post(rest, "/sim/faults/streams/drop", {})
        sub.wait_feed("stocks", "disconnected")
        sub.wait_feed("stocks", "subscribed")
        _post(
            rest,
            "/sim/inject/quote",
            {"symbol": "AAPL", "bid_px": "124", "bid_sz": 1, "ask_px": "124.5", "ask_sz": 1},
        )
        sub.wait_for(
            lambda t, m: isinstance(m, wire.Quote) and m.symbol == "AAPL" and m.bid_px == to_fixed(124),
            what="quote after reconnect",
        )
    finally:
        stop_process(md)
        stop_process(sim)  # type: ignore[arg-type]
        sub.close()
