"""The venue's state file: a venue SIGKILLed and restarted with it continues (orders, positions,
cash, ids); without it, it starts empty; an unusable file stops it from starting. And quotes exist
for every symbol with data from the ready line on (the feed is paused: no quote but the seeded one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopLossRequest, TakeProfitRequest

from common.config import SimConfig
from simulator.app import parse_ready_line
from simulator.exchange import Exchange
from simulator.models import OrderBody
from simulator.state_file import StateFileError, restore, snapshot

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "zerotick-sim-key", "zerotick-sim-secret"


def D(x: object) -> Decimal:
    return Decimal(str(x))


def test_snapshot_restore_round_trip_with_legs_and_pending_steps() -> None:
    steps: list[Callable[[], None]] = []
    cfg = SimConfig(stocks=["AAPL"], crypto=[], ack_delay_ms=10)
    ex = Exchange(cfg, schedule=lambda _delay, fn: steps.append(fn))
    ex.on_quote("AAPL", D(100), D(1000), D("100.1"), D(1000), 0)
    ex.submit(OrderBody(symbol="AAPL", qty=D(5), side="buy", type="market", time_in_force="day"))
    for step in steps:
        step()
    steps.clear()
    bracket = ex.submit(
        OrderBody.model_validate(
            {"symbol": "AAPL", "qty": 2, "side": "buy", "type": "limit", "time_in_force": "gtc",
             "limit_price": 99, "order_class": "bracket", "take_profit": {"limit_price": 110},
             "stop_loss": {"stop_price": 90}}
        )
    )  # fmt: skip
    pending = ex.submit(OrderBody(symbol="AAPL", qty=D(1), side="buy", type="market", time_in_force="day"))
    assert pending.status == "pending_new" and len(steps) == 2
    for step in steps[:1]:
        step()  # the bracket is acknowledged and rests; the market order is still pending

    twin = Exchange(cfg, schedule=lambda _delay, fn: steps.append(fn))
    steps.clear()
    restore(twin, snapshot(ex))
    assert snapshot(twin) == snapshot(ex)
    assert twin.account_json()["cash"] == ex.account_json()["cash"]
    restored = twin.get_order(bracket.id)
    assert [leg.parent for leg in restored.legs] == [restored, restored]
    assert twin.get_order_by_client_id(pending.client_order_id).status == "pending_new"
    assert len(steps) == 1  # the pending ack is scheduled again
    steps[0]()
    twin.on_quote("AAPL", D(98), D(1000), D(99), D(1000), 0)  # the resting bracket entry still matches
    assert restored.status == "filled" and twin.get_order(pending.id).status == "filled"
    assert twin.account.position_qty("AAPL") == 8
    with pytest.raises(StateFileError):
        restore(twin, b'{"format": 1, "orders": [')


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_", "ZEROTICK_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(tmp_path)
    cmd = [sys.executable, "-m", "simulator", "--port", "0", "--metrics-port", "0", "--paused", *extra]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.wait(10)
        return proc, ""
    return proc, parse_ready_line(line)["rest"]


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _wait_written(path: Path, needle: str) -> None:
    deadline = time.monotonic() + 10
    while not (path.exists() and needle in path.read_text()):
        assert time.monotonic() < deadline, "state file not written"
        time.sleep(0.02)


def test_sigkilled_venue_restarts_with_and_without_its_state_file(tmp_path: Path) -> None:
    state = tmp_path / "venue.json"
    proc, rest = _start(tmp_path, "--state-file", str(state))
    try:
        client = TradingClient(KEY, SECRET, url_override=rest)
        # right after the ready line, with the feed paused: priced from the seeded quote
        bought = client.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=7, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        btc = client.submit_order(
            MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
        assert bought.status == OrderStatus.NEW and btc.status == OrderStatus.NEW
        assert client.get_order_by_id(bought.id).status == OrderStatus.FILLED
        resting = client.submit_order(
            LimitOrderRequest(
                symbol="MSFT", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1,
                order_class="bracket", take_profit=TakeProfitRequest(limit_price=5),
                stop_loss=StopLossRequest(stop_price=0.5),
            )
        )  # fmt: skip
        account = client.get_account()
        _wait_written(state, str(resting.id))
    finally:
        _kill(proc)

    proc, rest = _start(tmp_path, "--state-file", str(state))
    try:
        client = TradingClient(KEY, SECRET, url_override=rest)
        assert D(client.get_open_position("AAPL").qty) == 7
        assert D(client.get_account().cash) == D(account.cash)
        again = client.get_order_by_id(resting.id)
        assert again.status == OrderStatus.NEW and {leg.status for leg in again.legs or []} == {
            OrderStatus.HELD
        }
        assert client.get_order_by_client_id(bought.client_order_id).status == OrderStatus.FILLED
        client.cancel_order_by_id(resting.id)
        _wait_written(state, '"canceled"')
    finally:
        _kill(proc)

    proc, rest = _start(tmp_path)  # no state file: an empty venue
    try:
        client = TradingClient(KEY, SECRET, url_override=rest)
        assert client.get_all_positions() == [] and client.get_orders() == []
        with pytest.raises(APIError) as err:
            client.get_order_by_id(resting.id)
        assert err.value.status_code == 404
        fresh = client.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        assert fresh.id not in {bought.id, btc.id, resting.id}
    finally:
        _kill(proc)

    state.write_text('{"format": 1, "orders": [')  # torn or foreign: refuse to start, never reset
    proc, rest = _start(tmp_path, "--state-file", str(state))
    assert rest == "" and proc.returncode == 2
