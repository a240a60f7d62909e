"""Disk full on the run folder while trading: the run folder is a small tmpfs the test mounts and then
fills. Execution's journal fails, risk's `journal` trigger HALTs, `zerotick status` says why, and no
order reaches the venue afterwards."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from bench.limits import OPEN_RISK
from tests.kit import ledger
from tests.kit.disk import fill, tmpfs
from tests.kit.system import clean_env, free_port, status_json, system_up, write_toml
from tests.kit.waiting import wait_until

TMPFS_SIZE = "48m"


def _doc(run_dir: Path, sim_port: int) -> dict[str, Any]:
    return {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
                "message_rate": 12.0, "rate_limit_per_min": 1_000_000, "starting_cash": "100000000"},
        "zmq": {"run_dir": str(run_dir)},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": [], "subscribe_bars": False},
        "execution": {"rate_limit_per_min": 1_000_000, "rate_limit_burst": 1_000},
        "risk": dict(OPEN_RISK),
        "kill_switch": {t: {"enabled": False} for t in (
            "order_rate", "reject_rate", "daily_loss", "drawdown", "latency", "stale_data")},
        "control": {"token": "disk-full-token"},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"]},
            {"name": "ladder1", "kind": "ladder", "symbols": ["MSFT"], "params": {"levels": 4, "step_bps": 20}},
        ]},
    }  # fmt: skip


@pytest.mark.timeout(240)
def test_disk_full_on_the_run_folder_halts_trading_and_says_why(tmp_path: Path) -> None:
    port = free_port()
    config = write_toml(tmp_path / "zerotick.toml", _doc(tmp_path / "run", port))
    env = clean_env()
    c = ledger.client(port)
    with tmpfs(tmp_path / "run", TMPFS_SIZE) as run_dir, system_up(config, env, run_dir):
        wait_until(lambda: len(ledger.venue_orders(c)) >= 10, 60, "trading")
        filled = fill(run_dir)

        def halted() -> dict[str, Any] | None:
            st = status_json(config, env)
            return st if st["trading_state"]["state"] == "halted" else None

        st = wait_until(halted, 30, "HALTED by the journal trigger")
        record = st["processes"]["risk"]["service"]["trading_state_record"]
        assert (record["source"], record["who"]) == ("trigger", "journal"), record
        assert "journal" in record["reason"], record
        journal = st["processes"]["execution"]["service"]["journal"]
        assert not journal["ok"] and journal["error"], journal
        assert st["processes"]["execution"]["service"]["trading_state"] == "halted"
        # the trip emptied the venue; nothing more reaches it while the disk stays full
        wait_until(
            lambda: not [o for o in ledger.venue_orders(c) if o.status.value == "new"], 20, "no open order"
        )
        count = len(ledger.venue_orders(c))
        time.sleep(3.0)
        assert len(ledger.venue_orders(c)) == count, "an order reached the venue after the halt"
        refused = ledger.ctl(config, env, "execution", "status")["journal"]
        with contextlib.suppress(FileNotFoundError):
            (run_dir / "filler").unlink()  # the disk back: `zerotick down` can write what it needs
    print(
        f"\nDISK FULL: filled {filled / 2**20:.1f} MiB of a {TMPFS_SIZE} tmpfs; halted by "
        f"{record['who']}: {record['reason']}; journal error: {refused['error']} "
        f"(write errors {refused['write_errors']}); venue orders {count}, none after the halt"
    )
