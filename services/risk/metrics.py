"""Risk-specific Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common.enums import Trigger, TripSource
from common.metrics import LATENCY_BUCKETS, TRIPS, AgeGauge

DECISIONS = Counter("zt_risk_decisions_total", "Risk decisions by reason code", ["reason"])
CHECK_LATENCY = Histogram(
    "zt_risk_check_seconds", "The pre-trade check of one intent", buckets=LATENCY_BUCKETS
)
QUOTE_AGE = AgeGauge(
    "zt_risk_quote_age_seconds",
    "Now minus the exchange time of the quote risk would judge an order by, per configured symbol",
    "symbol",
)
# Display only: the exact figures live in risk's position books (services/risk/book_metrics.py).
POSITION_QTY = Gauge(
    "zt_position_qty", "Signed position in units (strategy all = the account)", ["symbol", "strategy"]
)
POSITION_VALUE = Gauge("zt_position_value_usd", "The account's position at the quote mid, in USD", ["symbol"])
PNL_REALIZED = Gauge(
    "zt_pnl_realized_usd", "Realized P&L in USD (strategy all = the account)", ["symbol", "strategy"]
)
PNL_UNREALIZED = Gauge(
    "zt_pnl_unrealized_usd", "Unrealized P&L at the quote mid in USD", ["symbol", "strategy"]
)
EQUITY = Gauge(
    "zt_equity_usd",
    "Equity in USD: venue = the account snapshot's, model = its cash plus positions at the mid",
    ["source"],
)
DAY_PNL = Gauge(
    "zt_risk_day_pnl_usd",
    "The trading day's P&L in USD, as the daily loss limit and the daily_loss trigger judge it",
)
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


def declare_kill_switch_series() -> None:
    """Every trip cause's and trigger's series exists from the start (0), so a dashboard shows them
    and an alert's increase() sees the first trip."""
    for cause in (TripSource.CLI, TripSource.CONTROL, *Trigger):  # who counts a trip: kill_switch, triggers
        TRIPS.labels(cause)
    for trigger in Trigger.values():
        TRIGGER_FIRED.labels(trigger)
