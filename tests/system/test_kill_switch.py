"""The kill switch as an operator uses it, through real processes: `zerotick up` under supervisord, the
real venue, `zerotick kill` run from another folder; alpaca-py reads the venue back as the judge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus, QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest

from tests.kit.system import clean_env, free_port, kill_pid, read_logs, status_json, system_up, write_toml
from tests.kit.waiting import wait_until

SIM_KEY, SIM_SECRET = "zerotick-sim-key", "zerotick-sim-secret"
TOKEN = "kill-switch-test-token"
LADDER = 20


def _doc(run_dir: str, sim_port: int) -> dict[str, Any]:
    return {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
                "message_rate": 40.0, "rate_limit_per_min": 100_000},
        "zmq": {"run_dir": run_dir},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": [], "subscribe_bars": False},
        "execution": {"rate_limit_per_min": 100_000, "rate_limit_burst": 100},
        "control": {"token": TOKEN},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": 3}},
            {"name": "ladder1", "kind": "ladder", "symbols": ["MSFT"],
             "params": {"levels": LADDER, "step_bps": 5}},
        ]},
    }  # fmt: skip


def _client(port: int) -> TradingClient:
    return TradingClient(SIM_KEY, SIM_SECRET, paper=True, url_override=f"http://127.0.0.1:{port}")


def _open_orders(client: TradingClient) -> list[Any]:
    return list(client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)))


def _closed_statuses(client: TradingClient) -> dict[Any, OrderStatus]:
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=500))
    return {o.id: o.status for o in closed}


def _all_orders(client: TradingClient) -> int:
    return len(client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)))


def _cli(*args: str, config: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI run from ``cwd``: not the folder `up` was run from."""
    return subprocess.run(
        [sys.executable, "-m", "zerotick.cli", *args, "--config", str(config)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _trading(client: TradingClient, positions: bool) -> bool:
    return len(_open_orders(client)) >= LADDER and (not positions or bool(client.get_all_positions()))


def _assert_nothing_sent(client: TradingClient, watch_s: float) -> None:
    before = _all_orders(client)
    time.sleep(watch_s)
    assert _all_orders(client) == before, "an order reached the venue while HALTED"
    assert _open_orders(client) == [] and client.get_all_positions() == []


def test_kill_flatten_drill_restart_and_reset(tmp_path: Path) -> None:
    sim_port = free_port()
    cfg_dir, elsewhere = tmp_path / "cfg", tmp_path / "elsewhere"
    cfg_dir.mkdir()
    elsewhere.mkdir()
    config = write_toml(cfg_dir / "zerotick.toml", _doc(str(cfg_dir / "run"), sim_port))
    run_dir = cfg_dir / "run"
    env = clean_env()
    client = _client(sim_port)
    with system_up(config, env, run_dir):
        wait_until(lambda: _trading(client, positions=True), 60, "probe fills and a resting ladder")
        resting = {o.id for o in _open_orders(client)}
        kill = _cli("kill", "--flatten", "--reason", "drill", config=config, env=env, cwd=elsewhere)
        returned_orders = _all_orders(client)
        assert kill.returncode == 0, kill.stdout + kill.stderr + read_logs(run_dir)
        out = orjson.loads(kill.stdout)
        assert out["confirmed"] and out["via_services"]["ok"], out
        # The venue judges what became of the orders resting before the kill: each was canceled, or
        # filled before the cancels reached it (a ladder level near the touch can fill in between).
        # Risk may adopt the halt the CLI wrote to the state file and trip execution before the
        # CLI's own command arrives, which then finds nothing left: so the venue is asked, not `out`.
        assert len(resting) >= LADDER - 3, resting  # the wait saw LADDER open; a level may fill since
        ended = _closed_statuses(client)
        assert {ended.get(i) for i in resting} <= {OrderStatus.CANCELED, OrderStatus.FILLED}, (out, ended)
        assert OrderStatus.CANCELED in {ended[i] for i in resting}, (out, ended)
        assert _open_orders(client) == [] and client.get_all_positions() == []
        time.sleep(2.0)
        assert _all_orders(client) == returned_orders, "an order arrived after the kill returned"
        st = orjson.loads(_cli("status", "--json", config=config, env=env, cwd=elsewhere).stdout)
        assert st["trading_state"]["state"] == "halted" and st["trading_state"]["execution_gate"] == "halted"
        audit = [orjson.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
        assert [a["event"] for a in audit if a["event"] in ("trip_result", "kill_result")] == [
            "trip_result", "kill_result",
        ]  # fmt: skip
    # the whole system restarts: HALTED, and nothing is sent while we watch
    with system_up(config, env, run_dir) as st:
        assert status_json(config, env)["trading_state"]["state"] == "halted", st
        _assert_nothing_sent(client, watch_s=4.0)
        # an order zerotick does not know is open at the venue: reset refuses
        stray = client.submit_order(
            LimitOrderRequest(symbol="AAPL", qty=1, side="buy", limit_price=1, time_in_force="day")
        )
        reset = _cli("reset", "--reason", "drill over", config=config, env=env, cwd=elsewhere)
        assert reset.returncode != 0 and "does not know" in reset.stderr, reset.stdout + reset.stderr
        assert status_json(config, env)["trading_state"]["state"] == "halted"
        client.cancel_order_by_id(stray.id)
        reset = _cli("reset", "--reason", "drill over", config=config, env=env, cwd=elsewhere)
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert status_json(config, env)["trading_state"]["state"] == "active"
        wait_until(lambda: len(_open_orders(client)) >= LADDER, 30, "trading again after the reset")
        down = _cli("down", config=config, env=env, cwd=elsewhere)
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr


@contextmanager
def standalone_venue(tmp_path: Path, port: int) -> Iterator[None]:
    """The venue as its own process: it outlives every zerotick process."""
    sim_cfg = write_toml(tmp_path / "sim.toml", {"sim": {
        "port": port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [], "message_rate": 40.0,
        "rate_limit_per_min": 100_000, "one_connection_per_key": False}})  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "zerotick.cli", "sim", "--config", str(sim_cfg)],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _client(port).get_clock() is not None, 30, "the venue")
        yield
    finally:
        kill_pid(proc.pid)


@pytest.mark.parametrize("hang", [False, True], ids=["sigkill", "sigstop"])
def test_out_of_band_kill_with_every_service_dead_or_hung(tmp_path: Path, hang: bool) -> None:
    port = free_port()
    doc = _doc(str(tmp_path / "run"), port)
    del doc["sim"]
    config = write_toml(tmp_path / "zerotick.toml", doc)
    run_dir = tmp_path / "run"
    env = clean_env(
        APCA_API_KEY_ID=SIM_KEY,
        APCA_API_SECRET_KEY=SIM_SECRET,
        APCA_API_BASE_URL=f"http://127.0.0.1:{port}",
        ZT_ALPACA__STOCK_STREAM_URL=f"ws://127.0.0.1:{port}/v2/iex",
        ZT_ALPACA__CRYPTO_STREAM_URL=f"ws://127.0.0.1:{port}/v1beta3/crypto/us",
    )
    client = _client(port)
    with standalone_venue(tmp_path, port):
        stopped: list[int] = []
        try:
            with system_up(config, env, run_dir) as st:
                wait_until(lambda: _trading(client, positions=True), 60, "fills and a resting ladder")
                pids = [p["pid"] for p in st["processes"].values() if p["pid"]]
                sup = st["supervisord_pid"]
                os.kill(sup, signal.SIGKILL)  # nobody restarts them
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP if hang else signal.SIGKILL)
                    stopped.append(pid)
                t0 = time.monotonic()
                kill = _cli(
                    "kill", "--flatten", "--reason", "oob drill", config=config, env=env, cwd=tmp_path
                )
                took = time.monotonic() - t0
                assert kill.returncode == 0, kill.stdout + kill.stderr
                out = orjson.loads(kill.stdout)
                assert (
                    out["confirmed"]
                    and out["via_services"] is None
                    and "not reachable" in out["services_error"]
                )
                assert _open_orders(client) == [] and client.get_all_positions() == []
                assert took < 5.0  # the bench measures it; here it only must not hang
                if hang:  # they wake up: execution must read the halt before any order POST
                    for pid in pids:
                        os.kill(pid, signal.SIGCONT)
                    _assert_nothing_sent(client, watch_s=3.0)
                for pid in pids:
                    kill_pid(pid, signal.SIGKILL)
            with system_up(config, env, run_dir):
                assert status_json(config, env)["trading_state"]["state"] == "halted"
                _assert_nothing_sent(client, watch_s=4.0)
        finally:
            for pid in stopped:
                kill_pid(pid, signal.SIGKILL)
