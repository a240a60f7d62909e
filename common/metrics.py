"""Prometheus metrics shared by every service (the contract: docs/metrics.md). Names are ``zt_*``;
labels are low-cardinality. No ``_created`` series: importing this module turns them off for the
whole process (services and the venue).

Latency histograms use buckets from 5 us to 5 s: the interesting range of a ZeroMQ hop on this
kind of machine is 50-500 us, of a venue round trip 0.3-50 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client import Enum as PromEnum
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from common.clock import wall_ns
from common.enums import TradingState
from common.log import redact

disable_created_metrics()

LATENCY_BUCKETS = (
    5e-6, 10e-6, 25e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,
    1e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0,
)  # fmt: skip

STAGE_LATENCY = Histogram(
    "zt_stage_latency_seconds",
    "Latency of one pipeline stage (from the previous stage's timestamp to this one)",
    ["service", "stage"],
    buckets=LATENCY_BUCKETS,
)
TICK_TO_ORDER = Histogram(
    "zt_tick_to_order_seconds",
    "From the local receive of the tick to the order request leaving for the venue",
    ["venue"],
    buckets=LATENCY_BUCKETS,
)
# How late a periodic timer fires: a healthy loop is late by tens of microseconds, a blocked one by
# milliseconds and more.
LOOP_LAG_BUCKETS = (
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
    250e-3, 1.0,
)  # fmt: skip
WIRE_ERRORS = Counter(
    "zt_wire_errors_total", "Frames or requests that could not be decoded", ["service", "socket"]
)
ZMQ_DROPS = Counter("zt_zmq_dropped_total", "Messages dropped at a full ZeroMQ queue", ["service", "socket"])
ZMQ_GAPS = Counter(
    "zt_zmq_gaps_total",
    "Messages a subscriber never received, from the publisher's per-topic sequence (topic = family, e.g. md.q)",
    ["service", "topic"],
)
ZMQ_CONFLATED = Counter(
    "zt_zmq_conflated_total",
    "Messages a subscriber skipped because a newer one of the same topic was already waiting",
    ["service", "topic"],
)
RPC_LATENCY = Histogram(
    "zt_rpc_latency_seconds", "Request/reply round trip", ["service", "peer"], buckets=LATENCY_BUCKETS
)
RPC_OUTCOMES = Counter("zt_rpc_requests_total", "Request outcomes", ["service", "peer", "outcome"])
SERVICE_UP = Gauge("zt_service_up", "1 while the service runs", ["service"])
SERVICE_READY = Gauge("zt_service_ready", "1 while the service reports ready", ["service"])
ZMQ_PUBLISHED = Counter(
    "zt_zmq_published_total", "Messages published (topic = family, e.g. md.q)", ["service", "topic"]
)
ZMQ_RECEIVED = Counter(
    "zt_zmq_received_total",
    "Messages subscribers handed to the service (topic = family, e.g. md.q)",
    ["service", "topic"],
)
PEER_ALIVE = Gauge("zt_peer_alive", "1 while the peer service's heartbeats arrive", ["service", "peer"])
RECONNECTS = Counter(
    "zt_reconnects_total",
    "Reconnects of an external link (stocks, crypto, trade_updates)",
    ["service", "link"],
)
LOOP_LAG = Histogram(
    "zt_event_loop_lag_seconds",
    "How much later than asked a periodic timer of the event loop fires",
    ["service"],
    buckets=LOOP_LAG_BUCKETS,
)
HEARTBEATS = Counter("zt_heartbeats_total", "Heartbeats published", ["service"])
LINK_FAILURES = Counter(
    "zt_link_failures_total", "Failed attempts on a link to the venue, by class", ["service", "link", "kind"]
)


class RedactingRegistry:
    """What /metrics serves: the default registry with registered secrets masked in label values."""

    def __init__(self, registry: Collector = REGISTRY) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            if any(redact(v) != v for s in metric.samples for v in s.labels.values()):
                metric.samples = [
                    s._replace(labels={k: redact(v) for k, v in s.labels.items()}) for s in metric.samples
                ]
            yield metric

    def restricted_registry(self, names: Iterable[str]) -> RedactingRegistry:
        return RedactingRegistry(self._registry.restricted_registry(names))  # type: ignore[attr-defined]


class AgeGauge(Collector):
    """A gauge of ``now - timestamp`` per label value, computed when scraped (so it keeps growing
    while nothing arrives). ``watch`` names the label values (configured ones only) and the function
    that reads each one's latest wall-ns timestamp (None or 0: nothing yet, no sample). The function
    runs on the scrape thread: it must only read (one dict lookup or array read), never iterate
    what the event loop mutates."""

    def __init__(
        self, name: str, documentation: str, label: str, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self._name, self._doc, self._label = name, documentation, label
        self._values: tuple[str, ...] = ()
        self._read: Callable[[str], int | None] = lambda _: None
        registry.register(self)

    def watch(self, values: Iterable[str], read: Callable[[str], int | None]) -> None:
        self._values, self._read = tuple(sorted(set(values))), read

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self._name, self._doc, labels=[self._label])]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self._name, self._doc, labels=[self._label])
        now = wall_ns()
        for value in self._values:
            try:
                ts = self._read(value)
            except Exception:  # a scrape shows what it can; the loop's state is never at risk here
                continue
            if ts:
                family.add_metric([value], max(now - ts, 0) / 1e9)
        return [family]


def serve_metrics(host: str, port: int) -> None:
    """Expose /metrics on host:port (0 = disabled)."""
    if port:
        start_http_server(port, addr=host, registry=RedactingRegistry())  # type: ignore[arg-type]


# ---- the trading state and the kill switch (risk owns it; execution enforces it too) -------------
TRADING_STATE = PromEnum(
    "zt_trading_state",
    "Trading state as this service enforces it (one series per state, 1 = current)",
    ["service"],
    states=list(TradingState.values()),
)
STATE_CHANGES = Counter(
    "zt_trading_state_changes_total", "Trading state changes", ["service", "state", "source"]
)
TRIPS = Counter(
    "zt_kill_switch_trips_total",
    "Kill switch trips (HALTED) by cause: cli, control, or the trigger's name",
    ["cause"],
)
TRIP_UNCONFIRMED = Gauge(
    "zt_kill_switch_unconfirmed", "1 while a trip waits for the venue to show no open orders/positions"
)
TRIP_CONFIRM = Histogram(
    "zt_kill_switch_confirm_seconds",
    "From the trip request's arrival to the venue showing nothing open",
    buckets=LATENCY_BUCKETS,
)
GATE_BLOCKED = Counter(
    "zt_exec_orders_blocked_total", "Orders execution refused by the trading state", ["state"]
)
