"""The whole system as a user runs it: `zerotick up` under a real supervisord, real processes, real
ZeroMQ sockets, the real venue; the official alpaca-py SDK checks the venue's side of the story."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus, QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tests.kit.system import clean_env, free_port, kill_pid, status_json, system_up, write_toml, zerotick
from tests.kit.waiting import wait_until
from zerotick.supervisor import Layout, supervisord_pid

PROBE_ORDERS = 5


def _config(tmp_path: Path, sim_port: int, **extra: dict[str, Any]) -> Path:
    doc: dict[str, Any] = {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": ["BTC/USD"],
                "message_rate": 40.0},
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": ["BTC/USD"]},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": PROBE_ORDERS}},
        ]},
    }  # fmt: skip
    for section, body in extra.items():
        doc.setdefault(section, {}).update(body)
    return write_toml(tmp_path / "zerotick.toml", doc)


def _risk_positions(config: Path, env: dict[str, str]) -> dict[str, Decimal]:
    out = zerotick("ctl", "risk", "status", "--config", str(config), env=env)
    assert out.returncode == 0, out.stderr
    import orjson

    st = orjson.loads(out.stdout)
    return {s: Decimal(p["qty"]) for s, p in st["positions"].items() if Decimal(p["qty"]) != 0}


def _venue_positions(client: TradingClient) -> dict[str, Decimal]:
    return {p.symbol: Decimal(p.qty) for p in client.get_all_positions()}


def _filled_orders(client: TradingClient) -> list[Any]:
    orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
    return [o for o in orders if o.status == OrderStatus.FILLED]


@pytest.mark.timeout(240)
def test_whole_system_trades_on_the_venue_under_supervisord(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port)
    env = clean_env()
    run_dir = tmp_path / "run"
    with system_up(config, env, run_dir) as st:
        assert st["venue"] == "sim"
        assert set(st["processes"]) == {"sim", "market_data", "signal", "risk", "execution"}
        assert all(p["supervisor"] == "RUNNING" and p["up"] for p in st["processes"].values())

        client = TradingClient(
            "zerotick-sim-key", "zerotick-sim-secret", url_override=f"http://127.0.0.1:{port}"
        )
        filled = wait_until(
            lambda: (f := _filled_orders(client)) and len(f) >= PROBE_ORDERS and f,
            90,
            "the probe's orders filled",
        )
        # exactly the probe's orders, each once, each with zerotick's deterministic client id
        assert len(filled) == PROBE_ORDERS
        assert all(o.symbol == "AAPL" and o.client_order_id.startswith("zt-") for o in filled)
        assert len({o.client_order_id for o in filled}) == PROBE_ORDERS

        # quotes reached signal and its intents passed risk
        sig = status_json(config, env)["processes"]["signal"]["service"]
        assert sig["intents_sent"] >= PROBE_ORDERS  # some may meet not_ready while risk starts
        assert sig["decisions"].get("approved", 0) == PROBE_ORDERS

        # risk's positions equal the venue's, once the fills have travelled back
        venue = _venue_positions(client)
        assert venue == {"AAPL": Decimal(PROBE_ORDERS)}
        wait_until(lambda: _risk_positions(config, env) == venue, 30, "risk positions == venue positions")

        # market data is flowing on both feeds
        md = status_json(config, env)["processes"]["market_data"]["service"]
        assert {f: v["state"] for f, v in md["feeds"].items()} == {
            "stocks": "subscribed",
            "crypto": "subscribed",
        }

    assert supervisord_pid(Layout(run_dir)) is None


@pytest.mark.timeout(240)
def test_configuration_alone_points_the_system_at_another_venue(tmp_path: Path) -> None:
    """A second, independently started venue on other ports, with other keys: nothing but
    configuration (Alpaca's env names plus the stream URL settings) points zerotick at it."""
    sim_cfg = write_toml(
        tmp_path / "venue-b.toml",
        {"sim": {"key_id": "venue-b-key", "secret_key": "venue-b-secret", "metrics_port": 0, "message_rate": 40.0,
                 "stocks": ["AAPL", "MSFT"], "crypto": ["BTC/USD"]}},
    )  # fmt: skip
    venue = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--config", str(sim_cfg), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        from simulator.app import parse_ready_line

        assert venue.stdout is not None
        urls = parse_ready_line(venue.stdout.readline().strip())
        config = _config(tmp_path, free_port())
        env = clean_env(
            APCA_API_KEY_ID="venue-b-key",
            APCA_API_SECRET_KEY="venue-b-secret",
            APCA_API_BASE_URL=urls["rest"],
            ZT_ALPACA__TRADE_STREAM_URL=urls["trade_updates"],
            ZT_ALPACA__STOCK_STREAM_URL=urls["iex"],
            ZT_ALPACA__CRYPTO_STREAM_URL=urls["crypto"],
        )
        with system_up(config, env, tmp_path / "run") as st:
            assert st["venue"] == "custom"
            assert "sim" not in st["processes"]  # no embedded venue: keys are configured
            ex = st["processes"]["execution"]["service"]
            assert ex["trading_base_url"] == urls["rest"]
            client = TradingClient("venue-b-key", "venue-b-secret", url_override=urls["rest"])
            filled = wait_until(
                lambda: (f := _filled_orders(client)) and len(f) >= PROBE_ORDERS and f,
                90,
                "orders at venue B",
            )
            assert len(filled) == PROBE_ORDERS
            wait_until(
                lambda: (
                    _risk_positions(config, env)
                    == _venue_positions(client)
                    == {"AAPL": Decimal(PROBE_ORDERS)}
                ),
                30,
                "risk positions == venue B positions",
            )
    finally:
        kill_pid(venue.pid)
        venue.wait(10)


@pytest.mark.timeout(240)
def test_execution_killed_mid_trading_is_restarted_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    """SIGKILL execution while the probe trades: supervisord restarts it, it rebuilds its view from the
    venue, risk re-snapshots, trading resumes; every order exists once and positions still agree."""
    import os
    import signal

    orders = 10
    port = free_port()
    config = _config(
        tmp_path,
        port,
        sim={"message_rate": 6.0},  # ~2 AAPL quotes a second: the probe trades slowly enough to be killed midway
        signal={"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": orders}},
        ]},
    )  # fmt: skip
    env = clean_env()
    with system_up(config, env, tmp_path / "run") as st:
        client = TradingClient(
            "zerotick-sim-key", "zerotick-sim-secret", url_override=f"http://127.0.0.1:{port}"
        )
        wait_until(lambda: len(_filled_orders(client)) >= 2, 60, "the first fills")
        old_pid = st["processes"]["execution"]["pid"]
        os.kill(old_pid, signal.SIGKILL)
        assert len(_filled_orders(client)) < orders  # really midway
        restarted = wait_until(
            lambda: (
                (s := status_json(config, env))["all_up"]
                and s["processes"]["execution"]["pid"] not in (None, old_pid)
                and s
            ),
            60,
            "execution restarted by supervisord",
        )
        assert restarted["processes"]["execution"]["supervisor"] == "RUNNING"
        filled = wait_until(
            lambda: (f := _filled_orders(client)) and len(f) >= orders and f, 90, "all probe orders filled"
        )
        assert len(filled) == orders
        assert len({o.client_order_id for o in filled}) == orders
        all_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
        assert len(all_orders) == orders  # nothing sent twice, nothing extra
        venue = _venue_positions(client)
        assert venue == {"AAPL": Decimal(orders)}
        wait_until(
            lambda: _risk_positions(config, env) == venue, 30, "risk positions == venue after the restart"
        )
