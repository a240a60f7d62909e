"""Bounded everything, end to end (docs/architecture.md, "Bounded queues").

The venue, execution, risk and signal run as real processes; the test itself is market_data: it
binds market_data's PUB and floods md.q.MSFT at 100k+ quotes/s (with signal stopped for 1.5 s in the
middle) while a strategy on AAPL places one order. Signal keeps answering control, its memory stays
bounded, sent == received + gaps + conflated exactly, and the AAPL intent is approved. Then: a second
copy of signal on the same run folder refuses to start, and a caller that floods risk with requests
and never reads a reply does not make risk spin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import zmq

from common import wire
from common.clock import wall_ns
from common.config import Settings, load_settings
from common.enums import ControlCmd, FeedState
from common.zmq_io import Publisher
from tests.kit.system import ROOT, clean_env, free_port, kill_pid, write_toml
from tests.kit.waiting import wait_until

FLOOD_RATE = 120_000  # quotes/s
PER_FRAME = 20
FLOOD_S = 6.0
STALL_S = 1.5
HWM = 1_000  # frames: small, so the stall overflows the queues and drops must be counted
RSS_GROWTH_CAP_MB = 100


def _config(tmp_path: Path, sim_port: int) -> Path:
    doc: dict[str, Any] = {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
                "message_rate": 1.0, "rate_limit_per_min": 100_000},
        "zmq": {"run_dir": str(tmp_path / "run"), "rcvhwm": HWM, "sndhwm": HWM},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": []},
        "execution": {"rate_limit_per_min": 100_000, "rate_limit_burst": 100},
        "risk": {"max_quote_age_ms": 5_000, "max_position_qty": "100000", "duplicate_window_ms": 0,
                 "max_gross_exposure": "100000000", "max_net_exposure": "100000000",
                 "order_rate_per_s": "1000", "strategy_order_rate_per_s": "1000"},
        "control": {"token": "flood-test"},
        "signal": {"strategies": [
            {"name": "flooded", "kind": "probe", "symbols": ["MSFT"], "params": {"max_orders": 1}},
            {"name": "other", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": 1}},
        ]},
    }  # fmt: skip
    return write_toml(tmp_path / "zerotick.toml", doc)


class Control:
    """A DEALER to one service's control socket (one per thread)."""

    def __init__(self, ctx: zmq.Context, settings: Settings, service: str) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(settings.zmq.endpoint(service, "rpc"))
        self._n = 0

    def call(self, cmd: ControlCmd, timeout_s: float = 5.0) -> tuple[wire.Reply, float]:
        self._n += 1
        req_id = self._n.to_bytes(8, "little")
        t0 = time.perf_counter()
        self.sock.send_multipart([req_id, wire.encode(wire.Control(cmd=cmd))])
        while self.sock.poll(int(timeout_s * 1000)):
            rid, body = self.sock.recv_multipart()
            if rid == req_id:
                reply = wire.decode(body)
                assert isinstance(reply, wire.Reply)
                return reply, time.perf_counter() - t0
        raise TimeoutError(f"no answer to {cmd} within {timeout_s}s")

    def status(self) -> dict[str, Any]:
        reply, _ = self.call(ControlCmd.STATUS)
        return dict(orjson.loads(reply.data))

    def close(self) -> None:
        self.sock.close(0)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _quote(symbol: str, px: int) -> wire.Quote:
    now = wall_ns()
    return wire.Quote(
        symbol=symbol, bid_px=px, bid_sz=10**9, ask_px=px + 10**7, ask_sz=10**9, exch_ns=now, recv_ns=now
    )


def _start(module: str, config: Path, logs: Path) -> subprocess.Popen[bytes]:
    out = open(logs / f"{module.rsplit('.', 1)[-1]}.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", module, "--config", str(config)],
        env=clean_env(),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _topic_stats(ctl: Control, topic: str) -> dict[str, int]:
    return dict(ctl.status()["subscriptions"]["market_data"].get(topic, {}))


def test_flood_keeps_control_memory_counts_and_other_orders(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port())
    settings = load_settings(config)
    settings.peer_secret()  # created once, before the services race for it
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = {m: _start(m, config, logs) for m in ("simulator", "services.execution", "services.risk")}
    ctx = zmq.Context()
    pub = Publisher(ctx, settings.zmq.endpoint("market_data", "pub"), "flood-test", sndhwm=HWM)
    procs["services.signal"] = _start("services.signal", config, logs)
    sig_pid = procs["services.signal"].pid
    sig, risk = Control(ctx, settings, "signal"), Control(ctx, settings, "risk")
    try:
        wait_until(lambda: risk.status()["trading_ready"], 60, "risk ready (positions from execution)")
        wait_until(lambda: sig.call(ControlCmd.PING)[0].ok, 30, "signal answering")

        def joined() -> bool:
            status = wire.FeedStatus(feed="stocks", state=FeedState.SUBSCRIBED, detail="", ts_ns=wall_ns())
            pub.publish(b"md.fs.stocks", [status])
            return bool(_topic_stats(sig, "md.fs.stocks"))

        wait_until(joined, 20, "signal subscribed to the test's market data")
        rss_before = _rss_mb(sig_pid)

        pings: list[tuple[float, float]] = []  # (sent at, round trip), monotonic seconds
        stall_window = [0.0, 0.0]  # when signal was SIGSTOPped and SIGCONTed (monotonic)
        rss_max = [rss_before]
        flooding = threading.Event()
        flooding.set()

        def watch() -> None:
            ctl = Control(ctx, settings, "signal")
            try:
                while flooding.is_set():
                    rss_max[0] = max(rss_max[0], _rss_mb(sig_pid))
                    if not stalled.is_set():
                        started = time.monotonic()
                        pings.append((started, ctl.call(ControlCmd.PING, timeout_s=10)[1]))
                    time.sleep(0.02)
            finally:
                ctl.close()

        stalled = threading.Event()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        topic, sent, t0 = b"md.q.MSFT", 0, time.monotonic()
        aapl_sent = stall_done = False
        while (elapsed := time.monotonic() - t0) < FLOOD_S:
            if elapsed > 1.5 and not stall_done and not stalled.is_set():
                stalled.set()
                stall_window[0] = time.monotonic()
                os.kill(sig_pid, signal.SIGSTOP)
            if stalled.is_set() and elapsed > 1.5 + STALL_S:
                os.kill(sig_pid, signal.SIGCONT)
                stall_window[1] = time.monotonic()
                stalled.clear()
                stall_done = True
            if stall_done and not aapl_sent and elapsed > 4.0:
                pub.publish(b"md.q.AAPL", [_quote("AAPL", 190 * 10**9)])
                aapl_sent = True
            while sent < FLOOD_RATE * elapsed:
                pub.publish(topic, [_quote("MSFT", (400 + (sent + i) % 7) * 10**9) for i in range(PER_FRAME)])
                sent += PER_FRAME
            time.sleep(0.001)
        rate = sent / (time.monotonic() - t0)
        flooding.clear()
        watcher.join(15)
        time.sleep(0.5)
        pub.publish(topic, [_quote("MSFT", 401 * 10**9)])  # losses at the end show at the next frame
        sent += 1

        def accounted() -> dict[str, int] | None:
            s = _topic_stats(sig, "md.q.MSFT")
            return s if s and s["received"] + s["gaps"] + s["conflated"] == sent else None

        stats = wait_until(accounted, 20, f"every one of {sent} quotes accounted for")
        # a ping that was on its way when the test SIGSTOPped signal measures the stall, not the flood
        stop, cont = stall_window
        rtts = sorted(rtt for sent_at, rtt in pings if sent_at + rtt < stop or sent_at > cont)
        p99 = rtts[int(len(rtts) * 0.99) - 1] if rtts else float("nan")
        print(
            f"\nflood: {sent} quotes at {rate:,.0f}/s; signal {stats}; ping n={len(rtts)} "
            f"p50={rtts[len(rtts) // 2] * 1e3:.2f} ms p99={p99 * 1e3:.2f} ms max={rtts[-1] * 1e3:.2f} ms; "
            f"RSS {rss_before:.0f} -> max {rss_max[0]:.0f} MB"
        )
        assert rate >= 100_000, f"the test could only publish {rate:,.0f} quotes/s"
        assert stats["gaps"] > 0, "the stall overflowed the queues: drops must show as gaps"
        assert len(rtts) >= 50 and rtts[-1] < 1.0, rtts[-5:]
        assert rss_max[0] - rss_before < RSS_GROWTH_CAP_MB
        # "flooded" can have one order approved at most: a second approval is the AAPL one
        wait_until(lambda: sig.status()["decisions"].get("approved") == 2, 20, "the AAPL intent approved")
        assert sig.status()["strategies"]["other"]["intents"] == 1

        # A second copy of signal on the same run folder refuses to start and leaves the first alone.
        second = subprocess.run(
            [sys.executable, "-m", "services.signal", "--config", str(config)],
            env=clean_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "signal is already running on run folder" in second.stderr, second.stderr[-2000:]
        assert f"pid {sig_pid}" in second.stderr
        assert sig.call(ControlCmd.PING)[0].ok

        # A caller that sends requests and never reads a reply does not make risk spin.
        risk_pid = procs["services.risk"].pid
        deaf = ctx.socket(zmq.DEALER)
        deaf.setsockopt(zmq.RCVHWM, 10)
        deaf.setsockopt(zmq.LINGER, 0)
        deaf.connect(settings.zmq.endpoint("risk", "rpc"))
        body = wire.encode(wire.Control(cmd=ControlCmd.PING))
        n, deadline = 0, time.monotonic() + 20
        while n < 200_000 and time.monotonic() < deadline:  # beyond risk's reply queue (100k)
            try:
                deaf.send_multipart([n.to_bytes(8, "little"), body], zmq.NOBLOCK)
                n += 1
            except zmq.Again:
                time.sleep(0.001)
        time.sleep(3.0)  # risk works through the requests
        cpu0, w0 = _cpu_s(risk_pid), time.monotonic()
        time.sleep(3.0)
        busy = (_cpu_s(risk_pid) - cpu0) / (time.monotonic() - w0)
        print(f"deaf caller: {n} requests; risk CPU afterwards {busy:.1%}")
        assert busy < 0.25, f"risk used {busy:.0%} of a CPU for a caller that reads nothing"
        assert risk.call(ControlCmd.PING)[0].ok
        deaf.close(0)
    except BaseException:
        for f in sorted(logs.glob("*.log")):
            print(f"===== {f.name}\n{f.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for p in procs.values():  # a stopped process cannot stop until it is continued
            try:
                os.kill(p.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for module in ("services.signal", "services.risk", "services.execution", "simulator"):
            kill_pid(procs[module].pid)
        sig.close()
        risk.close()
        pub.close()
        ctx.term()
