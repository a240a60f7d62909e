"""The health dashboard: processes, peers, links, the feed, queues, tasks, the journal, bad input."""

from __future__ import annotations

from common.enums import FeedState
from zerotick.dashboards.model import Dashboard, Panel, PanelType, Row, Target, ValueText
from zerotick.dashboards.promql import enum_code, quantile

FEED_ORDER = (
    FeedState.SUBSCRIBED,
    FeedState.CONNECTED,
    FeedState.CONNECTING,
    FeedState.STALE,
    FeedState.DISCONNECTED,
    FeedState.ERROR,
)
_FEED_COLORS = ("green", "blue", "yellow", "orange", "red", "dark-red")
HOSTILE_INPUT = (
    "zt_wire_errors_total",
    "zt_inbound_rejected_total",
    "zt_control_refused_total",
    "zt_peer_refused_total",
    "zt_request_refused_total",
    "zt_md_malformed_total",
    "zt_md_rejected_total",
)
_UP_DOWN = (ValueText(0, "down", "red"), ValueText(1, "up", "green"))

PROCESSES = Row(
    "Processes",
    (
        Panel(
            "Scraped (up)",
            PanelType.STAT,
            (Target('up{job="zerotick"}', "{{service}}"),),
            width=8,
            height=5,
            mappings=_UP_DOWN,
            description="Prometheus reached the process's /metrics.",
        ),
        Panel(
            "Service up",
            PanelType.STAT,
            (Target("max by (service) (zt_service_up)", "{{service}}"),),
            width=8,
            height=5,
            mappings=_UP_DOWN,
        ),
        Panel(
            "Service ready",
            PanelType.STAT,
            (Target("max by (service) (zt_service_ready)", "{{service}}"),),
            width=8,
            height=5,
            mappings=(ValueText(0, "not ready", "orange"), ValueText(1, "ready", "green")),
        ),
        Panel(
            "Peers alive",
            PanelType.STATE_TIMELINE,
            (Target("min by (service, peer) (zt_peer_alive)", "{{service}} sees {{peer}}"),),
            width=12,
            mappings=(ValueText(0, "dead", "red"), ValueText(1, "alive", "green")),
        ),
        Panel(
            "Event-loop lag p99",
            PanelType.TIMESERIES,
            (Target(quantile(0.99, "zt_event_loop_lag_seconds", ("service",)), "{{service}}"),),
            unit="s",
            width=12,
            description="How late a periodic timer fires: a blocked event loop shows here first.",
        ),
        Panel(
            "Background task failures (5 m)",
            PanelType.TIMESERIES,
            (
                Target(
                    "sum by (service, task) (increase(zt_task_failures_total[5m]))", "{{service}} {{task}}"
                ),
            ),
            width=12,
        ),
        Panel(
            "Order journal",
            PanelType.TIMESERIES,
            (
                Target("min(zt_exec_journal_ok)", "journal ok"),
                Target("sum(increase(zt_exec_journal_write_errors_total[5m]))", "write errors (5 m)"),
            ),
            width=12,
            description="journal ok 0 means execution cannot write its journal and trading is halted.",
        ),
    ),
)

MARKET_DATA = Row(
    "Market data and venue links",
    (
        Panel(
            "Feed state",
            PanelType.STATE_TIMELINE,
            (Target(enum_code("zt_md_feed_state", "feed", FEED_ORDER), "{{feed}}"),),
            width=12,
            height=6,
            mappings=tuple(
                ValueText(i, s.value, c)
                for i, (s, c) in enumerate(zip(FEED_ORDER, _FEED_COLORS, strict=True))
            ),
        ),
        Panel(
            "Trade stream connected",
            PanelType.STATE_TIMELINE,
            (Target("min(zt_exec_trade_stream_connected)", "trade_updates"),),
            width=12,
            height=6,
            mappings=(ValueText(0, "down", "red"), ValueText(1, "listening", "green")),
        ),
        Panel(
            "Last quote age",
            PanelType.TIMESERIES,
            (Target("max by (symbol) (zt_md_last_quote_age_seconds)", "{{symbol}}"),),
            unit="s",
            width=12,
            description="Now minus the exchange time of the symbol's last quote.",
        ),
        Panel(
            "Reconnects (5 m)",
            PanelType.TIMESERIES,
            (Target("sum by (service, link) (increase(zt_reconnects_total[5m]))", "{{service}} {{link}}"),),
            width=12,
        ),
        Panel(
            "Venue messages normalized",
            PanelType.TIMESERIES,
            (Target("sum by (feed, type) (rate(zt_md_messages_total[1m]))", "{{feed}} {{type}}"),),
            unit="ops",
            width=24,
        ),
    ),
)

BUS = Row(
    "Message bus",
    (
        Panel(
            "Published",
            PanelType.TIMESERIES,
            (Target("sum by (service, topic) (rate(zt_zmq_published_total[1m]))", "{{service}} {{topic}}"),),
            unit="ops",
            width=12,
        ),
        Panel(
            "Received",
            PanelType.TIMESERIES,
            (Target("sum by (service, topic) (rate(zt_zmq_received_total[1m]))", "{{service}} {{topic}}"),),
            unit="ops",
            width=12,
        ),
        Panel(
            "Dropped at a full queue",
            PanelType.TIMESERIES,
            (
                Target(
                    "sum by (service, socket) (increase(zt_zmq_dropped_total[5m]))", "{{service}} {{socket}}"
                ),
            ),
            width=8,
        ),
        Panel(
            "Gaps (never received)",
            PanelType.TIMESERIES,
            (Target("sum by (service, topic) (increase(zt_zmq_gaps_total[5m]))", "{{service}} {{topic}}"),),
            width=8,
        ),
        Panel(
            "Conflated (skipped for a newer one)",
            PanelType.TIMESERIES,
            (Target("sum by (service, topic) (rate(zt_zmq_conflated_total[1m]))", "{{service}} {{topic}}"),),
            unit="ops",
            width=8,
        ),
    ),
)

HOSTILE = Row(
    "Hostile or broken input",
    (
        Panel(
            "Refused input (5 m)",
            PanelType.TIMESERIES,
            tuple(Target(f"sum(increase({name}[5m]))", name.removeprefix("zt_")) for name in HOSTILE_INPUT),
            width=24,
            description="Frames that did not decode, requests from strangers, unusable venue messages.",
        ),
    ),
)

HEALTH = Dashboard(
    uid="zerotick-health",
    title="zerotick / health",
    description="Is everything up, connected, fresh and keeping up; is anyone sending garbage.",
    rows=(PROCESSES, MARKET_DATA, BUS, HOSTILE),
    links=("zerotick-latency", "zerotick-trading"),
)
