"""The latency dashboard: every pipeline stage and the end-to-end tick to order, as quantiles."""

from __future__ import annotations

from zerotick.dashboards.model import Dashboard, Panel, PanelType, QueryFormat, Row, Target
from zerotick.dashboards.promql import QUANTILES, quantile


def _quantiles(metric: str, by: tuple[str, ...] = (), legend_prefix: str = "") -> tuple[Target, ...]:
    return tuple(Target(quantile(q, metric, by), f"{legend_prefix}{name}") for name, q in QUANTILES)


def _stage_panel(name: str, q: float) -> Panel:
    return Panel(
        f"Stage latency {name}",
        PanelType.TIMESERIES,
        (Target(quantile(q, "zt_stage_latency_seconds", ("service", "stage")), "{{service}} {{stage}}"),),
        unit="s",
        width=8,
        description=f"{name} of each pipeline stage over 1 m (from the previous stage's timestamp).",
    )


END_TO_END = Row(
    "End to end: tick received → order POST written",
    (
        Panel(
            "Tick to order p99 (5 m)",
            PanelType.STAT,
            (Target(quantile(0.99, "zt_tick_to_order_seconds", window="5m"), "p99"),),
            unit="s",
            width=4,
            thresholds=((0.002, "orange"), (0.01, "red")),
        ),
        Panel(
            "Orders sent / s",
            PanelType.STAT,
            (Target("sum(rate(zt_tick_to_order_seconds_count[1m]))", "orders/s"),),
            unit="ops",
            width=4,
        ),
        Panel(
            "Tick to order",
            PanelType.TIMESERIES,
            _quantiles("zt_tick_to_order_seconds"),
            unit="s",
            width=16,
            description="From the local receive of the tick to the order request leaving for the venue.",
        ),
        Panel(
            "Tick to order distribution",
            PanelType.HEATMAP,
            (
                Target(
                    "sum by (le) (rate(zt_tick_to_order_seconds_bucket[1m]))",
                    "{{le}}",
                    fmt=QueryFormat.HEATMAP,
                ),
            ),
            unit="s",
            width=24,
        ),
    ),
)

STAGES = Row("Pipeline stages", tuple(_stage_panel(name, q) for name, q in QUANTILES))

ROUND_TRIPS = Row(
    "Round trips and critical sections",
    (
        Panel(
            "RPC round trip",
            PanelType.TIMESERIES,
            tuple(
                Target(
                    quantile(q, "zt_rpc_latency_seconds", ("service", "peer")),
                    f"{{{{service}}}}→{{{{peer}}}} {name}",
                )
                for name, q in QUANTILES[:2]
            ),
            unit="s",
            width=12,
            description="Request/reply round trips (signal→risk, risk→execution, control).",
        ),
        Panel(
            "Risk pre-trade check",
            PanelType.TIMESERIES,
            _quantiles("zt_risk_check_seconds"),
            unit="s",
            width=12,
        ),
        Panel(
            "Journal write",
            PanelType.TIMESERIES,
            _quantiles("zt_exec_journal_write_seconds"),
            unit="s",
            width=12,
            description="One durable write of execution's order journal (before the POST).",
        ),
        Panel(
            "Order POST round trip",
            PanelType.TIMESERIES,
            _quantiles("zt_exec_order_post_seconds"),
            unit="s",
            width=12,
            description="From the order POST leaving execution to the venue's reply.",
        ),
    ),
)

LATENCY = Dashboard(
    uid="zerotick-latency",
    title="zerotick / latency",
    description="Quantiles of every pipeline stage and of tick to order, from the services' histograms.",
    rows=(END_TO_END, STAGES, ROUND_TRIPS),
    links=("zerotick-trading", "zerotick-health"),
)
