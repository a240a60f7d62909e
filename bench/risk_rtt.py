"""The signal -> risk -> signal round trip through the real risk process: an OrderIntent sent on
risk's "intents" socket until its RiskDecision comes back, timed with perf_counter_ns.

    python -m bench.risk_rtt [--approvals 2000] [--rejects 1000] [--gap-ms 1.0]

`zerotick up` runs the venue, execution, risk and market data (signal with no strategies) in a temp
folder. This process connects to risk's intents endpoint authenticated as "signal" (ZeroMQ PLAIN,
``common.peer_link.credentials``) and sends intents one at a time, ``--gap-ms`` apart (so both
sides go idle between messages, as in the pipeline), interleaving two kinds:
  * approved: a 1-share buy limit at $1 on AAPL (far below the bid: it rests), which risk checks,
    forwards to execution (and execution places at the venue) before it answers;
  * rejected: the same with a quantity above ``max_order_qty``, which the numba check refuses.
Printed next to it, measured in the same run: this machine's bare ZeroMQ REQ/REP round trip
(bench/calibrate.py), the floor of any hop here. Target: approvals p50 <= 150 us.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from bench.calibrate import zmq_rtt_samples_us
from bench.limits import OPEN_EXECUTION, OPEN_RISK, QUIET_TRIGGERS
from bench.report import Series, host_note, loadavg, table
from common import wire
from common.clock import wall_ns
from common.config import Settings, load_settings
from common.fixed import to_fixed
from common.peer_link import credentials
from tests.kit.system import clean_env, free_port, status_json, system_up, write_toml
from tests.kit.waiting import wait_until

SYMBOL = "AAPL"
MAX_ORDER_QTY = 10
WARMUP = 200


def config_doc(run_dir: Path, sim_port: int) -> dict[str, Any]:
    return {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": [SYMBOL, "MSFT"], "crypto": [],
                "message_rate": 100.0, "rate_limit_per_min": 100_000_000, "starting_cash": "1000000000"},
        "zmq": {"run_dir": str(run_dir)},
        "metrics": {"base_port": 0},
        "log": {"level": "WARNING"},
        "market_data": {"stocks": [SYMBOL, "MSFT"], "crypto": [], "subscribe_bars": False},
        "signal": {"strategies": []},
        "risk": {**OPEN_RISK, "max_order_qty": str(MAX_ORDER_QTY), "price_band_bps": 100_000},
        "kill_switch": QUIET_TRIGGERS,
        "execution": OPEN_EXECUTION,
    }  # fmt: skip


@contextmanager
def running(tmp: Path) -> Iterator[Path]:
    """`zerotick up` in ``tmp``; yields the config once risk has loaded positions."""
    run_dir = tmp / "run"
    cfg = write_toml(tmp / "zerotick.toml", config_doc(run_dir, free_port()))
    env = clean_env()
    with system_up(cfg, env, run_dir):
        wait_until(
            lambda: status_json(cfg, env)["processes"]["risk"]["service"]["trading_ready"], 30, "risk ready"
        )
        yield cfg


class IntentClient:
    """A blocking DEALER on risk's intents endpoint, authenticated as "signal"."""

    def __init__(self, settings: Settings) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        credentials(settings, "signal")(self.sock)
        self.sock.connect(settings.zmq.endpoint("risk", "intents"))
        self._ids = 0

    def round_trip(self, intent: wire.OrderIntent, timeout_ms: int = 2_000) -> tuple[float, Any]:
        """(send -> decision in us, the decision)."""
        self._ids += 1
        req_id = self._ids.to_bytes(8, "little")
        body = wire.encode(intent)
        t0 = time.perf_counter_ns()
        self.sock.send_multipart([req_id, body])
        while self.sock.poll(timeout_ms, zmq.POLLIN):
            rid, reply = self.sock.recv_multipart()
            if rid == req_id:
                return (time.perf_counter_ns() - t0) / 1000, wire.decode(reply)
        raise TimeoutError(f"risk did not answer {intent.intent_id} within {timeout_ms} ms")

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def intent(run: str, n: int, approve: bool) -> wire.OrderIntent:
    qty = 1 if approve else MAX_ORDER_QTY * 100
    return wire.OrderIntent(
        intent_id=f"{run}.{n}", strategy="bench", symbol=SYMBOL, side="buy", qty=to_fixed(qty),
        limit_px=to_fixed(1), signal_ns=wall_ns(),
    )  # fmt: skip


def measure(client: IntentClient, approvals: int, rejects: int, gap_s: float) -> tuple[Series, Series]:
    ok = Series("approved: intent -> decision (-> execution)", "us", "target p50 <= 150 us")
    no = Series("rejected (max_order_qty): intent -> decision", "us")
    total = approvals + rejects
    run = f"rtt{os.getpid()}"
    for n in range(WARMUP + total):
        approve = n < WARMUP or (n - WARMUP) * approvals // total != (n - WARMUP + 1) * approvals // total
        us, decision = client.round_trip(intent(run, n, approve))
        expected = "ok" if approve else "max_order_qty"
        if n >= WARMUP:
            series = ok if approve else no
            if isinstance(decision, wire.RiskDecision) and decision.reason == expected:
                series.samples.append(us)
            else:
                series.failures.append(f"{expected} expected, got {decision}"[:200])
        time.sleep(gap_s)
    return ok, no


def floor_series(gap_s: float) -> Series:
    s = Series("floor: bare zmq REQ/REP ipc RTT (calibrate)", "us")
    s.samples = zmq_rtt_samples_us(3000, gap_s)
    return s


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--approvals", type=int, default=2000)
    p.add_argument("--rejects", type=int, default=1000)
    p.add_argument("--gap-ms", type=float, default=1.0, help="pause between round trips")
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args(argv)
    gap_s = args.gap_ms / 1000
    print(
        f"signal -> risk -> signal round trip, {os.cpu_count()} cpus, python {sys.version.split()[0]}, idle-poll off"
    )
    for i in range(args.runs):
        start = loadavg()
        floor = floor_series(gap_s)
        with running(Path(tempfile.mkdtemp(prefix="zt-rtt-"))) as cfg:
            client = IntentClient(load_settings(str(cfg)))
            try:
                ok, no = measure(client, args.approvals, args.rejects, gap_s)
            finally:
                client.close()
        print(f"run {i + 1}: paced {args.gap_ms} ms apart, {WARMUP} warm-up round trips dropped")
        print(table([ok, no, floor]))
        print(host_note(start))


if __name__ == "__main__":
    main()
