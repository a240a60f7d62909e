"""The dashboard computed from two snapshots, with every service's answers built by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import Enum as PromEnum

from common.enums import ServiceHealth
from zerotick.top import render, view
from zerotick.top.history import Window
from zerotick.top.promtext import Metrics, parse
from zerotick.top.snapshot import Probe, Snapshot

S = 1_000_000_000


def _md_metrics(messages: int) -> Metrics:
    r = CollectorRegistry()
    Counter("zt_md_messages_total", "x", ["feed", "type"], registry=r).labels("stocks", "quote").inc(messages)
    return parse(generate_latest(r).decode())


def _risk_metrics(decisions: dict[str, int], state: str = "active") -> Metrics:
    r = CollectorRegistry()
    c = Counter("zt_risk_decisions_total", "x", ["reason"], registry=r)
    for reason, n in decisions.items():
        c.labels(reason).inc(n)
    PromEnum(
        "zt_trading_state", "x", ["service"], states=["active", "reduce_only", "halted"], registry=r
    ).labels("risk").state(state)
    return parse(generate_latest(r).decode())


def _exec_metrics(fast: int, slow: int) -> Metrics:
    r = CollectorRegistry()
    h = Histogram("zt_tick_to_order_seconds", "x", ["venue"], buckets=(1e-3, 2e-3, 5e-3, 1.0), registry=r)
    for _ in range(fast):
        h.labels("sim").observe(1.5e-3)
    for _ in range(slow):
        h.labels("sim").observe(0.5)
    return parse(generate_latest(r).decode())


def _status(state: str, **extra: Any) -> dict[str, Any]:
    return {"state": state, "pid": 42, "uptime_s": 12.5, "tasks": {}, **extra}


RISK_STATUS = _status(
    "active",
    trading_state="active",
    trading_state_record={"reason": "first start", "source": "startup", "who": "startup"},
    positions={"AAPL": {"qty": "3", "avg_px": "100.5", "realized_pnl": "1.25"}},
)


def _snapshot(t: float, md: int, risk: dict[str, int], fast: int, slow: int, **kw: Any) -> Snapshot:
    probes = {
        "market_data": Probe("market_data", _md_metrics(md), status=_status("ok", feeds={})),
        "signal": Probe("signal", status=_status("ok")),
        "risk": Probe("risk", _risk_metrics(risk), status=RISK_STATUS),
        "execution": Probe(
            "execution", _exec_metrics(fast, slow), status=_status("ok", trading_state="active")
        ),
    }
    probes.update(kw.pop("probes", {}))
    return Snapshot(taken_s=t, wall_ns=int(t * S), probes=probes, **kw)


ORDERS = [
    {"client_order_id": "zt-a.1", "symbol": "AAPL", "side": "buy", "qty": "1", "filled_qty": "0",
     "limit_price": "99", "status": "new", "strategy": "s1", "venue_ns": 5 * S},
    {"client_order_id": "zt-a.2", "symbol": "AAPL", "side": "buy", "qty": "2", "filled_qty": "2",
     "filled_avg_price": "100.5", "limit_price": "101", "status": "filled", "strategy": "s1", "venue_ns": 7 * S},
    {"client_order_id": "zt-a.3", "symbol": "MSFT", "side": "sell", "qty": "1", "filled_qty": "0",
     "limit_price": "300", "status": "rejected", "reason": "insufficient qty", "strategy": "s1", "venue_ns": 8 * S},
]  # fmt: skip


def test_rates_latency_and_rejects_are_of_the_window_between_the_two_snapshots() -> None:
    base = _snapshot(100.0, md=1000, risk={"ok": 10, "max_position": 4}, fast=0, slow=20)
    cur = _snapshot(102.0, md=1300, risk={"ok": 16, "max_position": 7}, fast=40, slow=20, orders=ORDERS)
    d = view.build(base, cur)

    assert d.window_s == 2.0
    rates = {r.label: r for r in d.rates}
    assert rates["market data messages"].per_s == 150.0
    assert rates["market data messages"].total == 1300
    assert rates["risk decisions"].per_s == 4.5
    assert rates["risk rejects"].per_s == 1.5
    # not exported by these services: no value, no error
    assert rates["venue rejects"].per_s is None and rates["venue rejects"].total is None

    (t2o,) = [r for r in d.latencies if r.label.startswith("tick-to-order")]
    assert t2o.count == 40  # the 20 slow ones are older than the window
    assert 1e-3 < t2o.p50_s <= 2e-3 and 1e-3 < t2o.p99_s <= 2e-3  # type: ignore[operator]

    assert [(r.source, r.reason, r.count) for r in d.rejects] == [
        ("risk", "max_position", 3),
        ("venue", "insufficient qty", 1),
    ]
    assert [o.client_order_id for o in d.open_orders] == ["zt-a.1"]
    assert [(o.client_order_id, o.price) for o in d.fills] == [("zt-a.2", "100.5")]


def test_the_first_snapshot_has_totals_but_no_window() -> None:
    d = view.build(None, _snapshot(1.0, md=10, risk={"ok": 1}, fast=1, slow=0))
    assert d.window_s is None
    assert all(r.per_s is None for r in d.rates)
    assert all(r.p50_s is None and r.count is None for r in d.latencies)
    assert {r.label: r.total for r in d.rates}["market data messages"] == 10


def test_trading_state_positions_and_pnl() -> None:
    positions = {"AAPL": {"qty": "3", "avg_px": "100.5", "realized_pnl": "1.25"},
                 "MSFT": {"qty": "-1", "avg_px": "300", "realized_pnl": "-0.50"},
                 "FLAT": {"qty": "0", "avg_px": "0", "realized_pnl": "0"}}  # fmt: skip
    d = view.build(None, _snapshot(1.0, 1, {}, 0, 0, positions=positions))
    assert (d.trading.state, d.trading.reason, d.trading.execution_gate) == (
        "active",
        "first start",
        "active",
    )
    assert [(p.symbol, p.qty) for p in d.positions] == [("AAPL", "3"), ("MSFT", "-1")]
    assert d.realized_usd == Decimal("0.75")
    assert d.unrealized_usd is None  # risk does not export zt_pnl_unrealized_usd here


def test_trading_state_falls_back_to_risks_metric_when_its_control_socket_is_silent() -> None:
    silent_risk = Probe("risk", _risk_metrics({}, state="halted"), status_error="no answer within 500 ms")
    d = view.build(None, _snapshot(1.0, 1, {}, 0, 0, probes={"risk": silent_risk}))
    assert d.trading.state == "halted"
    row = {s.name: s for s in d.services}["risk"]
    assert row.health is ServiceHealth.DEGRADED and "control socket" in row.reason


def test_service_health_with_its_reason() -> None:
    probes = {
        "market_data": Probe(
            "market_data",
            status=_status(
                "degraded",
                feeds={
                    "stocks": {"state": "stale", "detail": "no data for 6 s"},
                    "crypto": {"state": "subscribed", "detail": ""},
                },
            ),
        ),
        "signal": Probe(
            "signal", metrics_error="connection refused", status_error="not running (no connection)"
        ),
        "risk": Probe("risk", status=_status("not_ready")),
        "execution": Probe(
            "execution", status=_status("ok", ready=True, trade_stream_connected=False, journal={"ok": True})
        ),
    }
    d = view.build(None, Snapshot(taken_s=1.0, wall_ns=S, probes=probes))
    rows = {s.name: s for s in d.services}
    assert rows["market_data"].health is ServiceHealth.DEGRADED
    assert rows["market_data"].reason == "feed stocks stale (no data for 6 s)"
    assert (rows["signal"].health, rows["signal"].reason) == (
        ServiceHealth.DOWN,
        "not running (no connection)",
    )
    assert (rows["risk"].health, rows["risk"].reason) == (ServiceHealth.UP, "not ready")
    assert (rows["execution"].health, rows["execution"].reason) == (
        ServiceHealth.DEGRADED,
        "trade stream disconnected",
    )
    assert d.trading.state == "unknown"


def test_the_plain_frame_shows_values_and_a_dash_for_what_is_missing() -> None:
    base = _snapshot(100.0, md=1000, risk={"ok": 10}, fast=0, slow=0)
    cur = _snapshot(101.0, md=1100, risk={"ok": 10}, fast=5, slow=0, orders=ORDERS)
    text = render.plain_frame(view.build(base, cur), width=160)
    assert "trading ACTIVE" in text
    assert "market data messages" in text and "100.0" in text and "1,100" in text
    assert "venue rejects" in text and render.MISSING in text
    for name in ("market_data", "signal", "risk", "execution"):
        assert name in text
    assert "zt-a.1" in text and "insufficient qty" in text
    assert "\x1b[" not in text  # no terminal control codes


def test_the_window_starts_at_the_newest_snapshot_old_enough() -> None:
    w = Window(seconds=3.0)
    snaps = [Snapshot(taken_s=float(t), wall_ns=t * S) for t in range(8)]
    assert w.push(snaps[0]) is None
    assert w.push(snaps[1]) is snaps[0]  # filling: the oldest there is
    assert w.push(snaps[2]) is snaps[0]
    assert w.push(snaps[3]) is snaps[0]
    assert w.push(snaps[4]) is snaps[1]
    assert w.push(snaps[7]) is snaps[4]  # after a pause: still one base
