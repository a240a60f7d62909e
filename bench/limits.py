"""Risk settings for the system benchmarks: they send far more orders than a trading day would, so
the pre-trade limits that pace or cap order flow are opened wide and the automatic triggers that
count orders and rejects, and the latency trigger, are off. Every other check (trading state, stale quote, price band,
bad orders) still runs, as in production."""

from __future__ import annotations

from typing import Any

BIG = "1000000000"

OPEN_RISK: dict[str, Any] = {
    "max_order_notional": BIG,
    "max_position_qty": BIG,
    "max_gross_exposure": BIG,
    "max_net_exposure": BIG,
    "max_daily_loss": BIG,
    "max_open_orders": 1_000_000,
    "max_open_orders_per_symbol": 100_000,
    "order_rate_per_s": "1000000",
    "order_rate_burst": 1_000_000,
    "strategy_order_rate_per_s": "1000000",
    "strategy_order_rate_burst": 1_000_000,
    "duplicate_window_ms": 0,
}

QUIET_TRIGGERS: dict[str, Any] = {
    "order_rate": {"enabled": False},
    "reject_rate": {"enabled": False},
    "daily_loss": {"enabled": False},
    "drawdown": {"enabled": False},
    # the benches hang processes on purpose (kill_latency) or saturate the host: orders caught in a
    # hang would trip the tick-to-order p99 trigger, which is not what they measure
    "latency": {"enabled": False},
}

OPEN_EXECUTION: dict[str, Any] = {"rate_limit_per_min": 100_000_000, "rate_limit_burst": 100_000}
