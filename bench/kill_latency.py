"""Kill-switch latency through real processes: how long `zerotick kill --flatten` takes to leave
the venue with nothing open, with the services up and with every service hung.

    python -m bench.kill_latency [--trials 20] [--oob-trials 20] [--ladder 20]

The whole system runs as users run it (`zerotick up`: supervisord, the four services, the venue) in
a temp folder. A ``ladder`` strategy keeps ``--ladder`` buy limits resting below the bid on MSFT and
a ``probe`` strategy buys AAPL at the ask, so positions are open. Each trial:
  * via the services: `zerotick reset`, wait until the venue (read with alpaca-py) shows the ladder
    resting and a position, then `zerotick kill --flatten`. Recorded: the TripReport's
    ``confirm_us`` (the command's arrival at risk -> the venue shows 0 open orders and 0 positions,
    measured by risk) and the command's wall time from process start to exit;
  * out of band: the same, then supervisord and every service are SIGSTOPped (the venue keeps
    running) and `zerotick kill --flatten` must empty the venue itself. Recorded: the command's wall
    time, and its own ``elapsed_ms`` (inside kill(): the rest is interpreter start, imports, config).
After each kill alpaca-py must see 0 open orders and 0 positions, or the trial counts as failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from bench.limits import OPEN_EXECUTION, OPEN_RISK, QUIET_TRIGGERS
from bench.report import Series, host_note, loadavg, table
from common.config import SERVICES
from tests.kit.system import clean_env, free_port, read_logs, status_json, system_up, write_toml
from tests.kit.waiting import wait_until

SIM_KEY, SIM_SECRET = "zerotick-sim-key", "zerotick-sim-secret"
TOKEN = "bench-kill-token"


@dataclass
class System:
    config: Path
    run_dir: Path
    elsewhere: Path  # the CLI runs from here, not from where `up` ran
    env: dict[str, str]
    client: TradingClient
    ladder: int


def config_doc(run_dir: Path, sim_port: int, ladder: int) -> dict[str, Any]:
    return {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
                "message_rate": 40.0, "rate_limit_per_min": 100_000_000},
        "zmq": {"run_dir": str(run_dir)},
        "metrics": {"base_port": 0},
        "log": {"level": "WARNING"},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": [], "subscribe_bars": False},
        "risk": {**OPEN_RISK, "max_position_qty": "50"},
        "kill_switch": QUIET_TRIGGERS,
        "execution": OPEN_EXECUTION,
        "control": {"token": TOKEN},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"]},
            {"name": "ladder1", "kind": "ladder", "symbols": ["MSFT"], "params": {"levels": ladder, "step_bps": 5}},
        ]},
    }  # fmt: skip


def venue_counts(client: TradingClient) -> tuple[int, int]:
    """(open orders, positions) as the venue shows them."""
    orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
    return len(orders), len(client.get_all_positions())


def cli(system: System, *args: str, timeout: float = 60) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run the CLI from another folder; (wall ms from process start to exit, the result)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "zerotick.cli", *args, "--config", str(system.config)],
        env=system.env, cwd=system.elsewhere, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return (time.perf_counter() - t0) * 1000, out


@contextmanager
def running(tmp: Path, ladder: int) -> Iterator[System]:
    sim_port = free_port()
    (tmp / "cfg").mkdir()
    (tmp / "elsewhere").mkdir()
    run_dir = tmp / "cfg" / "run"
    cfg = write_toml(tmp / "cfg" / "zerotick.toml", config_doc(run_dir, sim_port, ladder))
    env = clean_env()
    client = TradingClient(SIM_KEY, SIM_SECRET, paper=True, url_override=f"http://127.0.0.1:{sim_port}")
    with system_up(cfg, env, run_dir):
        yield System(cfg, run_dir, tmp / "elsewhere", env, client, ladder)


def _signal(pid: int | None, sig: int) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def arm(system: System) -> None:
    """Back to ACTIVE, then wait until the ladder rests and a position is open at the venue."""

    def reset() -> bool:
        return cli(system, "reset", "--reason", "bench")[1].returncode == 0

    wait_until(reset, 60, "`zerotick reset` accepted", interval=0.5)

    def armed() -> bool:
        orders, positions = venue_counts(system.client)
        return orders >= system.ladder and positions >= 1

    wait_until(armed, 60, f"{system.ladder} resting orders and a position", interval=0.05)


def kill(system: System) -> tuple[float, dict[str, Any] | None, str]:
    """`zerotick kill --flatten`: (wall ms, its JSON output, why it failed or "")."""
    wall_ms, out = cli(system, "kill", "--flatten", "--reason", "bench")
    try:
        doc = orjson.loads(out.stdout)
    except orjson.JSONDecodeError:
        return wall_ms, None, f"exit {out.returncode}, no JSON: {out.stderr.strip()[-300:]}"
    orders, positions = venue_counts(system.client)
    if out.returncode != 0 or not doc.get("confirmed"):
        return wall_ms, doc, f"exit {out.returncode}, not confirmed: {doc.get('venue')}"
    if orders or positions:
        return wall_ms, doc, f"kill returned but the venue shows {orders} open orders, {positions} positions"
    return wall_ms, doc, ""


def trial_via_services(system: System, confirm: Series, wall: Series) -> None:
    arm(system)
    wall_ms, doc, why = kill(system)
    via = (doc or {}).get("via_services") or {}
    if not why and not (via.get("ok") and via.get("type") == "TripReport"):
        why = f"the services did not confirm: {via or (doc or {}).get('services_error')}"
    if not why and via.get("canceled", 0) < system.ladder:
        why = f"only {via.get('canceled')} orders canceled by the services"
    if why:
        confirm.failures.append(why)
        wall.failures.append(why)
        return
    confirm.samples.append(via["confirm_us"] / 1000)
    wall.samples.append(wall_ms)


def hang(system: System) -> list[int]:
    """SIGSTOP supervisord (so it restarts nothing), then every service; the venue keeps running."""
    st = status_json(system.config, system.env)
    stopped = [st["supervisord_pid"]] + [st["processes"][s]["pid"] for s in SERVICES]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    return stopped


def resume(system: System, stopped: list[int]) -> None:
    for pid in reversed(stopped):  # services first, supervisord last
        _signal(pid, signal.SIGCONT)
    wait_until(lambda: status_json(system.config, system.env)["all_up"], 60, "every process up again")


def trial_out_of_band(system: System, wall: Series, inside: Series) -> None:
    arm(system)
    stopped = hang(system)
    try:
        wall_ms, doc, why = kill(system)
    finally:
        resume(system, stopped)
    if not why and (doc or {}).get("via_services") is not None:
        why = f"a hung risk answered? {doc}"
    if why:
        wall.failures.append(why)
        inside.failures.append(why)
        return
    assert doc is not None
    wall.samples.append(wall_ms)
    inside.samples.append(float(doc["elapsed_ms"]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=20, help="trials with the services up")
    p.add_argument(
        "--oob-trials", type=int, default=None, help="trials with every service hung (default: --trials)"
    )
    p.add_argument("--ladder", type=int, default=20, help="buy limits the ladder keeps resting")
    args = p.parse_args(argv)
    oob_trials = args.trials if args.oob_trials is None else args.oob_trials
    confirm = Series(
        "via services: arrival at risk -> venue empty", "ms", f"target <= 100 ms ({args.ladder} resting)"
    )
    wall = Series("via services: `zerotick kill --flatten` wall", "ms")
    oob_wall = Series("out of band (all hung): command wall", "ms", "target <= 1000 ms")
    oob_inside = Series("out of band: inside kill() (elapsed_ms)", "ms")
    print(
        f"kill-switch latency, {args.trials} + {oob_trials} trials, ladder {args.ladder}, python {sys.version.split()[0]}"
    )
    start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="zt-kill-"))
    with running(tmp, args.ladder) as system:
        try:
            for _ in range(args.trials):
                trial_via_services(system, confirm, wall)
            for _ in range(oob_trials):
                trial_out_of_band(system, oob_wall, oob_inside)
        except AssertionError:
            print(read_logs(system.run_dir), file=sys.stderr)
            raise
    print(table([confirm, wall, oob_wall, oob_inside]))
    print(host_note(start))


if __name__ == "__main__":
    main()
