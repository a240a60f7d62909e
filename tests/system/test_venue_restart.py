"""The venue SIGKILLed and restarted under a running zerotick, with and without its state file.

With it, the venue comes back with its orders and positions and every ledger still agrees. Without
it, the venue comes back empty with new ids: execution marks the open orders the venue forgot
`venue_lost`, re-bases its position book on the venue's, raises both alarms (status, metrics, log),
and risk releases their pending quantity: no ghost order holds any."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from common.config import SERVICES
from tests.kit import ledger
from tests.kit.system import clean_env, free_port, free_port_block, kill_pid, read_logs, system_up, write_toml
from tests.kit.waiting import wait_until

LADDER = 4
PROBE = 5
OPEN = ("new", "partially_filled", "accepted")


class Venue:
    """The venue as its own process on a fixed port, so it can be SIGKILLed and started again."""

    def __init__(self, folder: Path, port: int, state_file: Path | None) -> None:
        self.folder, self.port, self.state_file = folder, port, state_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, paused: bool) -> None:
        sim: dict[str, Any] = {
            "port": self.port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
            "message_rate": 20.0, "rate_limit_per_min": 100_000, "one_connection_per_key": False,
            "feed_start_paused": paused,
        }  # fmt: skip
        if self.state_file is not None:
            sim["state_file"] = str(self.state_file)
        self.starts += 1
        cfg = write_toml(self.folder / f"sim-{self.starts}.toml", {"sim": sim})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zerotick.cli", "sim", "--config", str(cfg)],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: ledger.client(self.port).get_clock() is not None, 30, "the venue")

    def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            kill_pid(self.proc.pid)
            self.proc.wait(10)


@contextmanager
def venue(folder: Path, port: int, state_file: Path | None) -> Iterator[Venue]:
    v = Venue(folder, port, state_file)
    try:
        v.start(paused=False)
        yield v
    finally:
        v.stop()


def _config(tmp_path: Path, metrics_base: int) -> Path:
    return write_toml(tmp_path / "zerotick.toml", {
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": metrics_base},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": [], "subscribe_bars": False},
        "execution": {"rate_limit_per_min": 100_000, "rate_limit_burst": 100},
        "kill_switch": {t: {"enabled": False} for t in ("stale_data", "trade_stream_down")},
        "control": {"token": "venue-restart-token"},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": PROBE}},
            {"name": "ladder1", "kind": "ladder", "symbols": ["MSFT"], "params": {"levels": LADDER, "step_bps": 20}},
        ]},
    })  # fmt: skip


def _metric(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _agree(config: Path, env: dict[str, str], port: int) -> dict[str, Any] | None:
    """The venue, execution and risk, once their positions agree and risk holds pending for exactly
    the orders open at the venue."""
    c = ledger.client(port)
    venue_pos = ledger.venue_positions(c)
    venue_open = [o for o in ledger.venue_orders(c) if o.status.value in OPEN]
    risk = ledger.risk_status(config, env)
    ex_pos = ledger.execution_positions(config, env)
    if ledger.nonzero(risk["positions"]) != venue_pos or ex_pos != venue_pos:
        return None
    if risk["open_orders"] != len(venue_open) or not risk["trading_ready"]:
        return None
    return {"venue_pos": venue_pos, "venue_open": venue_open, "risk": risk}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("keep_state", [True, False], ids=["state_file", "no_state_file"])
def test_venue_sigkilled_and_restarted(tmp_path: Path, keep_state: bool) -> None:
    port = free_port()
    metrics_base = free_port_block(len(SERVICES), avoid=(port,))  # service i serves metrics on base + i
    exec_metrics = metrics_base + SERVICES.index("execution")
    config = _config(tmp_path, metrics_base)
    run_dir = tmp_path / "run"
    env = clean_env(
        APCA_API_KEY_ID=ledger.SIM_KEY,
        APCA_API_SECRET_KEY=ledger.SIM_SECRET,
        APCA_API_BASE_URL=f"http://127.0.0.1:{port}",
        ZT_ALPACA__STOCK_STREAM_URL=f"ws://127.0.0.1:{port}/v2/iex",
        ZT_ALPACA__CRYPTO_STREAM_URL=f"ws://127.0.0.1:{port}/v1beta3/crypto/us",
    )
    c = ledger.client(port)
    state_file = tmp_path / "venue.state.json" if keep_state else None
    with venue(tmp_path, port, state_file) as v, system_up(config, env, run_dir):
        wait_until(
            lambda: (
                ledger.venue_positions(c) == {"AAPL": Decimal(PROBE)}
                and len([o for o in ledger.venue_orders(c) if o.status.value in OPEN]) >= LADDER
            ),
            90,
            "probe fills and a resting ladder",
        )
        ledger.sim_post(port, "/sim/feed/pause")  # no quote, no new intent: the ladder rests as it is
        before = wait_until(lambda: _agree(config, env, port), 30, "agreement before the venue dies")
        lost_coids = {o.client_order_id for o in before["venue_open"]}
        ex_before = ledger.ctl(config, env, "execution", "status")
        time.sleep(0.3)  # the venue's state file is written at most every 50 ms
        v.sigkill()
        v.start(paused=True)
        wait_until(
            lambda: (
                (s := ledger.ctl(config, env, "execution", "status"))["reconciles"] > ex_before["reconciles"]
                and s["trade_stream_connected"]
            ),
            60,
            "execution reconnected to the restarted venue and reconciled",
        )
        after = wait_until(lambda: _agree(config, env, port), 60, "agreement after the venue restarted")
        ex_status = ledger.ctl(config, env, "execution", "status")
        ex_orders = ledger.execution_orders(config, env)
        lost_metric = _metric(exec_metrics, "zt_exec_venue_lost_orders_total")
        rebased_metric = _metric(exec_metrics, "zt_exec_positions_rebased_total")
        logs = read_logs(run_dir)

    if keep_state:
        # the venue came back as it was: same open orders and positions, nothing lost, no alarm
        assert {o.client_order_id for o in after["venue_open"]} == lost_coids
        assert after["venue_pos"] == before["venue_pos"] == {"AAPL": Decimal(PROBE)}
        assert ex_status["reconcile_alarms"] == [] and lost_metric == 0 and rebased_metric == 0
        for o in after["venue_open"]:
            assert ex_orders[o.client_order_id]["status"] == o.status.value
        assert after["risk"]["open_orders"] == len(lost_coids) == LADDER
    else:
        # an empty venue: every order it forgot is venue_lost, the book re-based to flat, both alarmed
        assert after["venue_open"] == [] and after["venue_pos"] == {}
        assert {c: ex_orders[c]["status"] for c in lost_coids} == dict.fromkeys(lost_coids, "venue_lost")
        alarms = " | ".join(ex_status["reconcile_alarms"])
        assert f"venue lost {len(lost_coids)} open orders" in alarms, alarms
        assert "book re-based on the venue" in alarms, alarms
        assert lost_metric == len(lost_coids) and rebased_metric >= 1
        assert "reconcile alarm" in logs
        # no ghost: risk holds no pending quantity and no open order, its positions are the venue's
        assert after["risk"]["open_orders"] == 0
        assert all(Decimal(q) == 0 for sides in after["risk"]["pending"].values() for q in sides.values())
        assert ledger.nonzero(after["risk"]["positions"]) == {}
    print(
        f"\nVENUE RESTART ({'with' if keep_state else 'without'} state file): open orders before "
        f"{len(lost_coids)}, after {len(after['venue_open'])}; positions before {dict(before['venue_pos'])}, "
        f"after {dict(after['venue_pos'])}; venue_lost {lost_metric:.0f}, re-based {rebased_metric:.0f}; "
        f"alarms {ex_status['reconcile_alarms']}"
    )
