"""A stalled process must not turn old quotes into orders: after a 5 s SIGSTOP of signal or of
market_data, every order that reaches the venue was built from a tick younger than
`risk.max_quote_age_ms` (by the tick's exchange timestamp); the backlog of old quotes was conflated
away by signal or refused as stale."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tests.kit.system import clean_env, free_port, system_up, write_toml, zerotick
from tests.kit.waiting import wait_until

MAX_QUOTE_AGE_MS = 500
TRANSIT_ALLOWANCE_S = 0.2  # POST written -> the venue stamps it, on a loaded 2-core host


def _config(tmp_path: Path, sim_port: int) -> Path:
    doc: dict[str, Any] = {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL"], "crypto": [], "message_rate": 20.0,
                "rate_limit_per_min": 100_000},
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL"], "crypto": [], "subscribe_trades": False, "subscribe_bars": False},
        "execution": {"rate_limit_per_min": 100_000, "rate_limit_burst": 100},
        "risk": {"max_quote_age_ms": MAX_QUOTE_AGE_MS, "max_position_qty": "100000", "duplicate_window_ms": 0,
                 "max_open_orders": 100_000, "max_open_orders_per_symbol": 100_000,
                 "max_gross_exposure": "100000000", "max_net_exposure": "100000000",
                 "order_rate_per_s": "1000", "strategy_order_rate_per_s": "1000"},
        "control": {"token": "stall-test"},
        "signal": {"strategies": [{"name": "probe1", "kind": "probe", "symbols": ["AAPL"]}]},
    }  # fmt: skip
    return write_toml(tmp_path / "zerotick.toml", doc)


def _orders(config: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    out = zerotick("ctl", "execution", "orders", "--config", str(config), env=env)
    assert out.returncode == 0, out.stderr
    return list(orjson.loads(out.stdout))


def _status(config: Path, env: dict[str, str], service: str) -> dict[str, Any]:
    out = zerotick("ctl", service, "status", "--config", str(config), env=env)
    assert out.returncode == 0, out.stderr
    return dict(orjson.loads(out.stdout))


def _backlog_handled(config: Path, env: dict[str, str]) -> int:
    """How the quotes that piled up during the stall were kept from becoming orders: skipped unread by
    signal's conflation (a newer quote of the symbol was already waiting), refused by risk as
    `stale_quote`, or held back by execution right before the POST."""
    signal_subs = _status(config, env, "signal")["subscriptions"].get("market_data", {})
    conflated = sum(t["conflated"] for topic, t in signal_subs.items() if topic.startswith("md.q."))
    refused = _status(config, env, "risk")["decisions"].get("stale_quote", 0)
    return int(conflated + refused)


@pytest.mark.parametrize("stalled", ["signal", "market_data"])
def test_no_order_from_an_old_quote_after_a_stall(tmp_path: Path, stalled: str) -> None:
    sim_port = free_port()
    config = _config(tmp_path, sim_port)
    env = clean_env()
    client = TradingClient("zerotick-sim-key", "zerotick-sim-secret", paper=True,
                           url_override=f"http://127.0.0.1:{sim_port}")  # fmt: skip
    with system_up(config, env, tmp_path / "run") as st:
        wait_until(lambda: len(_orders(config, env)) >= 5, 30, "orders flowing")
        pid = st["processes"][stalled]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(5.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(3.0)  # the backlog is processed
        handled = _backlog_handled(config, env)
        limit_ns = MAX_QUOTE_AGE_MS * 1_000_000
        venue = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
        ours = {o["client_order_id"]: o for o in _orders(config, env)}  # after: it knows all of those
        assert venue, "no order reached the venue"
        missing = [o.client_order_id for o in venue if o.client_order_id not in ours]
        assert not missing, missing
        for order in venue:
            mine = ours[order.client_order_id]
            assert mine["tick_exch_ns"] > 0 and mine["posted_ns"] > 0, mine
            assert mine["posted_ns"] - mine["tick_exch_ns"] <= limit_ns, mine
            arrived_ns = int(order.submitted_at.timestamp() * 1e9)  # type: ignore[union-attr]
            assert arrived_ns - mine["tick_exch_ns"] <= limit_ns + TRANSIT_ALLOWANCE_S * 1e9, mine
        assert handled > 0, "the backlog of old quotes was neither conflated nor judged stale"
