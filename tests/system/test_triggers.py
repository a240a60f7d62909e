"""Every automatic kill-switch trigger fired through the real processes (`zerotick up` under supervisord,
the real venue), each caused the way it would happen: prices moved at the venue, the venue's reject
injection, an order burst, the market-data feed paused, the venue's trade_updates refused, execution
killed, and a tick-to-order limit no machine meets. Two systems, several triggers each in sequence,
reset in between with `zerotick reset`. Each time: risk's trading state is the configured one, the
audit log has the trigger's entry, risk's metrics counted it, and the venue (read by alpaca-py) shows
no open orders, and no positions when the trigger flattens."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tests.kit.system import clean_env, free_port, read_logs, status_json, system_up, write_toml, zerotick
from tests.kit.waiting import wait_until
from zerotick.supervisor import Layout, rpc

SIM_KEY, SIM_SECRET = "zerotick-sim-key", "zerotick-sim-secret"
TOKEN = "triggers-test-token"
QUIET = "QTRG"  # a tradable stock with no synthetic data: its prices are only what the test injects
LADDER = 3


def _metrics_base() -> int:
    """A base port with the four service ports after it free."""
    for _ in range(50):
        base = free_port()
        if base + 3 > 65000:
            continue
        try:
            for p in range(base, base + 4):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise AssertionError("no four free consecutive ports")


def _doc(tmp_path: Path, sim_port: int, metrics: int, strategies: list[dict[str, Any]], **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL"], "quiet_stocks": [QUIET],
                "crypto": [], "message_rate": 40.0, "rate_limit_per_min": 100_000},
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": metrics},
        "market_data": {"stocks": ["AAPL", QUIET], "crypto": [], "subscribe_bars": False},
        "execution": {"rate_limit_per_min": 100_000, "rate_limit_burst": 100, "reconnect_min_s": 0.2,
                      "reconnect_max_s": 1.0},
        "control": {"token": TOKEN},
        "signal": {"strategies": strategies},
        **extra,
    }  # fmt: skip
    lines = []
    ks = doc.pop("kill_switch", {})
    path = write_toml(tmp_path / "zerotick.toml", doc)
    for name, body in ks.items():  # write_toml knows one level of sections
        lines.append(f"[kill_switch.{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in body.items())
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


class System:
    def __init__(self, config: Path, env: dict[str, str], run_dir: Path, sim_port: int, metrics: int) -> None:
        self.config, self.env, self.run_dir = config, env, run_dir
        self.sim = f"http://127.0.0.1:{sim_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics + 2}/metrics"  # risk is the third service
        self.client = TradingClient(SIM_KEY, SIM_SECRET, paper=True, url_override=self.sim)
        self._px = Decimal("100.00")

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            self.sim + path, data=orjson.dumps(body or {}), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return orjson.loads(resp.read())

    def quote(self, mid: Decimal) -> None:
        self.post("/sim/inject/quote", {"symbol": QUIET, "bid_px": str(mid - Decimal("0.01")),
                                        "ask_px": str(mid + Decimal("0.01")), "bid_sz": "1000",
                                        "ask_sz": "1000"})  # fmt: skip

    def probe_quote(self) -> None:
        """A fresh ask on the quiet symbol: the probe buys one share at it (each price unique, so
        risk's duplicate guard never holds one back)."""
        self._px += Decimal("0.01")
        self.quote(self._px)

    def risk(self) -> dict[str, Any]:
        return status_json(self.config, self.env)["processes"]["risk"]["service"]

    def state(self) -> str:
        return str(status_json(self.config, self.env)["trading_state"]["state"])

    def wait_state(self, state: str, timeout: float = 20, nudge: Callable[[], None] | None = None) -> None:
        def reached() -> bool:
            if self.state() == state:
                return True
            if nudge is not None:
                nudge()
            return False

        try:
            wait_until(reached, timeout, f"trading state {state}", interval=0.25)
        except AssertionError:
            print(read_logs(self.run_dir))
            raise

    def reset(self) -> None:
        out = zerotick("reset", "--reason", "trigger drill", "--config", str(self.config), env=self.env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert self.state() == "active"

    def fired_count(self, trigger: str) -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            text = resp.read().decode()
        key = f'zt_kill_switch_trigger_fired_total{{trigger="{trigger}"}} '
        return next((float(line[len(key) :]) for line in text.splitlines() if line.startswith(key)), 0.0)

    def audit(self, event: str, trigger: str) -> list[dict[str, Any]]:
        lines = (self.run_dir / "audit.jsonl").read_text().splitlines()
        return [a for a in map(orjson.loads, lines) if a["event"] == event and a.get("trigger") == trigger]

    def open_orders(self) -> int:
        return len(self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)))

    def position(self) -> Decimal:
        return sum((Decimal(p.qty) for p in self.client.get_all_positions() if p.symbol == QUIET), Decimal(0))

    def assert_tripped(self, trigger: str, state: str, flatten: bool, cancels: bool = True) -> None:
        """The trigger's firing as recorded everywhere: risk's state and status, the audit log (the
        trigger entry with its numbers, then execution's confirmation), the metric, the venue."""
        assert self.state() == state
        entry = self.audit("trigger", trigger)
        assert len(entry) == 1, entry
        rec = entry[0]["record"]
        assert (rec["state"], rec["source"], rec["who"], rec["flatten"]) == (
            state,
            "trigger",
            trigger,
            flatten,
        )
        assert entry[0]["value"] and entry[0]["limit"] and entry[0]["detail"] == rec["reason"]
        assert self.risk()["triggers"][trigger]["fired"]
        assert self.fired_count(trigger) == 1.0
        if cancels:
            wait_until(lambda: self.audit("trip_result" if state == "halted" else "enforced", trigger), 30,
                       f"execution's confirmation of {trigger}")  # fmt: skip
            assert self.open_orders() == 0
        if flatten:
            assert self.client.get_all_positions() == []


def _up(tmp_path: Path, strategies: list[dict[str, Any]], **extra: Any) -> tuple[Path, int, int]:
    sim_port, metrics = free_port(), _metrics_base()
    return _doc(tmp_path, sim_port, metrics, strategies, **extra), sim_port, metrics


@pytest.mark.timeout(300)
def test_latency_stale_data_drawdown_and_daily_loss(tmp_path: Path) -> None:
    """Probe buys 5 shares of the quiet symbol; then: tick-to-order p99 beyond 0.01 ms (REDUCE_ONLY),
    reset; the feed paused while holding (HALTED, no flatten), reset; the price moved down 1.5 from
    the peak (drawdown beyond 5 dollars: REDUCE_ONLY), then down 5 (loss beyond 20 dollars: HALTED and
    flattened)."""
    config, sim_port, metrics = _up(
        tmp_path,
        [{"name": "probe1", "kind": "probe", "symbols": [QUIET], "params": {"max_orders": 5}}],
        kill_switch={
            "latency": {"p99_ms": 0.01, "min_samples": 5},
            "stale_data": {"after_s": 3},
            "drawdown": {"limit": "5"},
            "daily_loss": {"limit": "20"},
        },
    )
    env = clean_env()
    run_dir = tmp_path / "run"
    with system_up(config, env, run_dir):
        s = System(config, env, run_dir, sim_port, metrics)
        wait_until(lambda: s.risk()["trading_ready"], 60, "risk ready")
        # 1. latency: five orders, each one far slower than 0.01 ms from tick to POST
        wait_until(lambda: s.position() == 5 or s.probe_quote(), 60, "the probe's five shares")
        s.wait_state("reduce_only")
        s.assert_tripped("latency", "reduce_only", flatten=False)
        assert "tick-to-order p99" in s.audit("trigger", "latency")[0]["detail"]
        s.reset()
        # 2. stale data: no quote on any symbol for 3 s while holding 5 shares
        s.post("/sim/feed/pause")
        s.wait_state("halted")
        s.assert_tripped("stale_data", "halted", flatten=False)
        assert s.position() == 5  # not flattened
        s.post("/sim/feed/resume")
        wait_until(lambda: float(s.risk()["triggers"]["stale_data"]["value"].split()[0]) < 1, 20, "quotes")
        s.reset()
        # 3. drawdown: bought at ~100.0x, the mid falls to 98.50: 5 * ~1.5 from the peak (~0)
        s.quote(Decimal("98.50"))
        s.wait_state("reduce_only")
        s.assert_tripped("drawdown", "reduce_only", flatten=False)
        assert Decimal(s.audit("trigger", "drawdown")[0]["value"]) > 5
        assert s.fired_count("daily_loss") == 0  # 7.x lost: within the 20 limit
        # 4. daily loss: the mid at 95: 5 * ~5 lost, beyond 20; HALTED, and the position is closed
        s.quote(Decimal("95.00"))
        s.wait_state("halted")
        s.assert_tripped("daily_loss", "halted", flatten=True)
        assert Decimal(s.audit("trigger", "daily_loss")[0]["value"]) > 20
        assert s.audit("trip_result", "daily_loss")[0]["closed"] >= 1


@pytest.mark.timeout(300)
def test_reject_storm_order_rate_trade_stream_down_and_execution_killed(tmp_path: Path) -> None:
    """A ladder keeps working orders on AAPL; the probe buys the quiet symbol on demand. Then: the
    venue rejects 6 orders (beyond 5 a minute), reset; 31+ orders in a burst (beyond 30 a minute),
    reset; trade_updates refused by the venue for 3 s, reset; execution killed: HALTED after 3 s
    without heartbeats, and its working orders canceled once execution is back."""
    # pacing and capacity limits open: a burst of probe orders (filled on the stream a moment after
    # the POST reply) must reach the order-rate trigger, not pile up as max_open_orders rejects
    rates = {"order_rate_per_s": "1000", "order_rate_burst": 1000, "strategy_order_rate_per_s": "1000",
             "strategy_order_rate_burst": 1000, "max_open_orders_per_symbol": 1000,
             "max_open_orders": 10_000}  # fmt: skip
    config, sim_port, metrics = _up(
        tmp_path,
        [
            {"name": "probe1", "kind": "probe", "symbols": [QUIET]},
            {
                "name": "ladder1",
                "kind": "ladder",
                "symbols": ["AAPL"],
                "params": {"levels": LADDER, "step_bps": 50},
            },
        ],
        risk=rates,
        kill_switch={
            "latency": {"enabled": False},
            "reject_rate": {"max_count": 5},
            "order_rate": {"max_count": 30},
            "trade_stream_down": {"after_s": 3},
            "execution_unreachable": {"after_s": 3},
        },
    )
    env = clean_env()
    run_dir = tmp_path / "run"
    with system_up(config, env, run_dir):
        s = System(config, env, run_dir, sim_port, metrics)
        wait_until(lambda: s.risk()["trading_ready"] and s.open_orders() == LADDER, 60, "the ladder resting")
        # 1. reject storm: the venue accepts the next 6 orders, then rejects them on the stream
        s.post("/sim/faults/reject", {"count": 6, "reason": "storm"})
        s.wait_state("halted", nudge=s.probe_quote)
        s.assert_tripped("reject_rate", "halted", flatten=False)
        assert s.risk()["triggers"]["reject_rate"]["value"] == "6"
        s.post("/sim/faults/reject", {"count": 0})
        s.reset()
        # 2. order rate: the ladder comes back (3) and the probe buys on every injected quote
        s.wait_state("halted", nudge=lambda: [s.probe_quote() for _ in range(5)] and None)
        s.assert_tripped("order_rate", "halted", flatten=False)
        assert int(s.risk()["triggers"]["order_rate"]["value"]) == 31
        s.reset()
        wait_until(lambda: s.open_orders() == LADDER, 30, "the ladder resting again")
        # 3. trade_updates down: the venue drops it and refuses reconnects
        s.post("/sim/faults/trade_stream/down", {"seconds": 60})
        s.wait_state("halted")
        s.assert_tripped("trade_stream_down", "halted", flatten=False)
        s.post("/sim/faults/trade_stream/up")
        wait_until(lambda: status_json(config, env)["processes"]["execution"]["service"]["state"] == "ok", 30,
                   "trade_updates back")  # fmt: skip
        s.reset()
        wait_until(lambda: s.open_orders() == LADDER, 30, "the ladder resting again")
        # 4. execution killed, and supervisord told not to bring it back
        pid = status_json(config, env)["processes"]["execution"]["pid"]
        sup = rpc(Layout(run_dir)).supervisor
        sup.stopProcess("execution", False)
        os.kill(pid, signal.SIGKILL)
        s.wait_state("halted")
        s.assert_tripped("execution_unreachable", "halted", flatten=False, cancels=False)
        # execution cannot cancel: risk empties the venue itself, while execution is still down
        wait_until(lambda: s.audit("trip_result", "execution_unreachable"), 30, "the trip confirmed")
        [result] = s.audit("trip_result", "execution_unreachable")
        assert result["ok"] and "risk emptied the venue directly" in result["detail"], result
        assert s.open_orders() == 0
        sup.startProcess("execution", False)  # back: HALTED from the state file, sends nothing
        wait_until(lambda: status_json(config, env)["trading_state"]["execution_gate"] == "halted", 30,
                   "execution back, halted")  # fmt: skip
        assert s.open_orders() == 0 and s.state() == "halted"
