"""Trading-side Prometheus metrics of the venue (default registry, served on the venue's metrics port).

Labels stay low-cardinality: ``route`` is the aiohttp route template (``/v2/orders/{order_id}``, or
``unmatched``), ``code`` of a rejection is Alpaca's 8-digit error code, or ``async`` for an order that
was accepted and then rejected on the stream.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common.metrics import LATENCY_BUCKETS

ORDER_EVENTS = Counter("zt_sim_orders_total", "trade_updates events emitted by the venue", ["event"])
REST_REQUESTS = Counter(
    "zt_sim_rest_requests_total", "Trading REST requests answered", ["method", "route", "code"]
)
REST_LATENCY = Histogram(
    "zt_sim_rest_latency_seconds",
    "Trading REST handling time, request arrival to response built",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
TRADE_STREAM_CONNECTIONS = Gauge(
    "zt_sim_trade_stream_connections", "Open trade_updates WebSocket connections"
)
REJECTIONS = Counter(
    "zt_sim_rejections_total", "Order requests refused (4xx) or orders rejected after acceptance", ["code"]
)
STATE_WRITES = Counter("zt_sim_state_writes_total", "Venue state file writes", ["outcome"])  # ok | error

ASYNC_REJECTION = "async"
UNMATCHED_ROUTE = "unmatched"
