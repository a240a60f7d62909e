"""Execution's own Prometheus metrics (shared ones live in common/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common.metrics import LATENCY_BUCKETS

ORDERS = Counter("zt_exec_orders_total", "Orders by outcome", ["outcome"])  # submitted/acked/rejected/filled
REST_LATENCY = Histogram(
    "zt_exec_rest_latency_seconds", "Alpaca REST round trip", ["endpoint"], buckets=LATENCY_BUCKETS
)
POST_LATENCY = Histogram("zt_exec_order_post_seconds", "Order POST round trip", buckets=LATENCY_BUCKETS)
REST_ERRORS = Counter("zt_exec_rest_errors_total", "Failed REST calls", ["endpoint", "kind"])
RATE_TOKENS = Gauge("zt_exec_rate_limit_tokens", "Tokens left in the REST rate-limit bucket")
STREAM_CONNECTED = Gauge(
    "zt_exec_trade_stream_connected", "1 while trade_updates is authorized and listening"
)
RECONCILES = Counter("zt_exec_reconciles_total", "Reconciliations with the venue", ["trigger"])
STALE_BLOCKED = Counter(
    "zt_exec_stale_blocked_total", "Orders not sent: the tick they were built from was too old by then"
)
ACCOUNT_ERRORS = Counter("zt_exec_account_errors_total", "Venue account replies that could not be used")
JOURNAL_OK = Gauge("zt_exec_journal_ok", "1 while the order journal can be written (0: trading halted)")
JOURNAL_WRITE_ERRORS = Counter("zt_exec_journal_write_errors_total", "Order journal writes that failed")
VENUE_LOST = Counter(
    "zt_exec_venue_lost_orders_total", "Orders the venue acknowledged and no longer knows (venue state lost)"
)
ADOPTED = Counter("zt_exec_adopted_orders_total", "Venue orders zerotick did not send, adopted and flagged")
BOOK_REBASED = Counter(
    "zt_exec_positions_rebased_total", "Positions book re-based on the venue's (it differed after reconcile)"
)
