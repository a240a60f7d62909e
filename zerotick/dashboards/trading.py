"""The trading dashboard: orders, fills, rejects, positions, P&L, the trading state and trips."""

from __future__ import annotations

from common.enums import TradingState
from zerotick.dashboards.model import Dashboard, Panel, PanelType, Row, Target, ValueText
from zerotick.dashboards.promql import enum_code

_STATE_COLORS = {TradingState.ACTIVE: "green", TradingState.REDUCE_ONLY: "orange", TradingState.HALTED: "red"}
STATE_ORDER = tuple(TradingState)

STATE = Row(
    "Trading state",
    (
        Panel(
            "Trading state",
            PanelType.STATE_TIMELINE,
            (Target(enum_code("zt_trading_state", "service", STATE_ORDER), "{{service}}"),),
            width=16,
            height=6,
            mappings=tuple(
                ValueText(i, state.value, _STATE_COLORS[state]) for i, state in enumerate(STATE_ORDER)
            ),
            description="As each service enforces it; risk owns the state, execution enforces it too.",
        ),
        Panel(
            "Kill switch trips (1 h)",
            PanelType.STAT,
            (Target("sum by (cause) (increase(zt_kill_switch_trips_total[1h]))", "{{cause}}"),),
            width=4,
            height=6,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Trip waiting for the venue",
            PanelType.STAT,
            (Target("max(zt_kill_switch_unconfirmed)", "unconfirmed"),),
            width=4,
            height=6,
            thresholds=((1, "red"),),
            mappings=(ValueText(0, "no", "green"), ValueText(1, "waiting", "red")),
        ),
        Panel(
            "Automatic triggers fired",
            PanelType.TIMESERIES,
            (Target("sum by (trigger) (increase(zt_kill_switch_trigger_fired_total[5m]))", "{{trigger}}"),),
            width=24,
            height=6,
        ),
    ),
)

ORDERS = Row(
    "Orders and fills",
    (
        Panel(
            "Order updates by status",
            PanelType.TIMESERIES,
            (Target("sum by (status) (rate(zt_exec_order_updates_total[1m]))", "{{status}}"),),
            unit="ops",
            width=12,
            stacked=True,
        ),
        Panel(
            "Open orders",
            PanelType.TIMESERIES,
            (Target("sum(zt_exec_open_orders)", "open"),),
            width=6,
        ),
        Panel(
            "Intents sent to risk",
            PanelType.TIMESERIES,
            (Target("sum by (strategy) (rate(zt_signal_intents_total[1m]))", "{{strategy}}"),),
            unit="ops",
            width=6,
        ),
        Panel(
            "Fills per strategy",
            PanelType.TIMESERIES,
            (Target("sum by (strategy, side) (rate(zt_exec_fills_total[1m]))", "{{strategy}} {{side}}"),),
            unit="ops",
            width=12,
        ),
        Panel(
            "Fills per symbol (1 h)",
            PanelType.TABLE,
            (Target("sum by (symbol, side) (increase(zt_exec_fills_total[1h]))", "{{symbol}} {{side}}"),),
            width=12,
        ),
    ),
)

REJECTS = Row(
    "Rejects",
    (
        Panel(
            "Risk rejects by reason",
            PanelType.TIMESERIES,
            (Target('sum by (reason) (rate(zt_risk_decisions_total{reason!="ok"}[1m]))', "{{reason}}"),),
            unit="ops",
            width=8,
            stacked=True,
        ),
        Panel(
            "Risk reject ratio (5 m)",
            PanelType.TIMESERIES,
            (
                Target(
                    'sum(rate(zt_risk_decisions_total{reason!="ok"}[5m])) / sum(rate(zt_risk_decisions_total[5m]))',
                    "rejected",
                ),
            ),
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Venue rejects by reason",
            PanelType.TIMESERIES,
            (Target("sum by (reason) (rate(zt_exec_venue_rejects_total[1m]))", "{{reason}}"),),
            unit="ops",
            width=8,
            stacked=True,
        ),
    ),
)

BOOK = Row(
    "Positions and P&L",
    (
        Panel(
            "Positions (account)",
            PanelType.TIMESERIES,
            (Target('sum by (symbol) (zt_position_qty{strategy="all"})', "{{symbol}}"),),
            width=8,
        ),
        Panel(
            "Position value",
            PanelType.TIMESERIES,
            (Target("sum by (symbol) (zt_position_value_usd)", "{{symbol}}"),),
            unit="currencyUSD",
            width=8,
        ),
        Panel(
            "Equity",
            PanelType.TIMESERIES,
            (Target("sum by (source) (zt_equity_usd)", "{{source}}"),),
            unit="currencyUSD",
            width=8,
            description="venue: the account's equity as the venue reports it; model: cash + positions at the mid.",
        ),
        Panel(
            "Realized P&L per strategy",
            PanelType.TIMESERIES,
            (Target('sum by (strategy) (zt_pnl_realized_usd{strategy!="all"})', "{{strategy}}"),),
            unit="currencyUSD",
            width=8,
        ),
        Panel(
            "Unrealized P&L per strategy",
            PanelType.TIMESERIES,
            (Target('sum by (strategy) (zt_pnl_unrealized_usd{strategy!="all"})', "{{strategy}}"),),
            unit="currencyUSD",
            width=8,
        ),
        Panel(
            "Account P&L",
            PanelType.STAT,
            (
                Target('sum(zt_pnl_realized_usd{strategy="all"})', "realized"),
                Target('sum(zt_pnl_unrealized_usd{strategy="all"})', "unrealized"),
            ),
            unit="currencyUSD",
            width=8,
        ),
    ),
)

TRADING = Dashboard(
    uid="zerotick-trading",
    title="zerotick / trading",
    description="Orders, fills, rejects, positions, P&L, the trading state and kill-switch trips.",
    rows=(STATE, ORDERS, REJECTS, BOOK),
    links=("zerotick-latency", "zerotick-health"),
)
