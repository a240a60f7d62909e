"""Execution's own Prometheus metrics (shared ones live in common/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common.enums import OrderStatus, VenueRejectReason
from common.metric_labels import OTHER, LabelFold
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
ORDER_UPDATES = Counter(
    "zt_exec_order_updates_total", "Order updates by the status they put the order in", ["status"]
)
OPEN_ORDERS = Gauge("zt_exec_open_orders", "Orders open at the venue as execution tracks them")
FILLS = Counter("zt_exec_fills_total", "Fills", ["strategy", "symbol", "side"])
VENUE_REJECTS = Counter("zt_exec_venue_rejects_total", "Orders the venue refused", ["reason"])
JOURNAL_WRITE = Histogram(
    "zt_exec_journal_write_seconds", "One durable order-journal write", buckets=LATENCY_BUCKETS
)
_STATUSES = frozenset(OrderStatus.values())


class OrderEventCounters:
    """The order-event counters, labelled from configuration only (common.metric_labels); each
    labelled child is looked up once and cached."""

    def __init__(self, symbols: LabelFold | None = None, strategies: LabelFold | None = None) -> None:
        self._symbols = symbols or LabelFold(())
        self._strategies = strategies or LabelFold(())
        self._updates: dict[str, Counter] = {}
        self._fills: dict[tuple[str, str, str], Counter] = {}

    def update(self, status: str) -> None:
        label = status if status in _STATUSES else OTHER
        child = self._updates.get(label)
        if child is None:
            child = self._updates[label] = ORDER_UPDATES.labels(label)
        child.inc()
        if label == OrderStatus.REJECTED:
            VENUE_REJECTS.labels(VenueRejectReason.REJECTED_EVENT.value).inc()

    def fill(self, strategy: str, symbol: str, side: str) -> None:
        key = (self._strategies(strategy), self._symbols(symbol), side if side in ("buy", "sell") else OTHER)
        child = self._fills.get(key)
        if child is None:
            child = self._fills[key] = FILLS.labels(*key)
        child.inc()
