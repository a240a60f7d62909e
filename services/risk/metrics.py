"""Risk-specific Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter("zt_risk_decisions_total", "Risk decisions by reason code", ["reason"])
POSITION = Gauge("zt_risk_position", "Signed position in units (display only)", ["symbol"])
RECONCILED = Counter(
    "zt_risk_position_reconciled_total", "Fills whose venue position differed from ours", ["symbol"]
)
TRIGGER_FIRED = Counter(
    "zt_kill_switch_trigger_fired_total", "Automatic kill-switch triggers that changed the state", ["trigger"]
)
QUOTES_REFUSED = Counter(
    "zt_risk_quotes_refused_total",
    "Quotes not kept: a symbol outside the allow list, or beyond the cap on unconfigured symbols",
)
