"""A dashboard as rich tables (one per panel), and as one plain-text frame for ``zerotick top --once``."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from common.enums import ServiceHealth, TradingState
from zerotick.top.view import Dashboard, OrderRow

MISSING = "–"
HEALTH_STYLE = {
    ServiceHealth.READY: "bold green",
    ServiceHealth.UP: "yellow",
    ServiceHealth.DEGRADED: "bold yellow",
    ServiceHealth.DOWN: "bold red",
}
TRADING_STYLE = {TradingState.ACTIVE: "bold green", TradingState.REDUCE_ONLY: "bold yellow"}


def utc_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%H:%M:%S.%f")[:-3] if ns else MISSING


def seconds_text(value: float | None) -> str:
    if value is None:
        return MISSING
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def number(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def money(value: Decimal | float | str | None) -> str:
    if value is None or value == "":
        return MISSING
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:
        return str(value)


def header(d: Dashboard) -> Text:
    t = d.trading
    state = t.state.upper()
    text = Text("trading ")
    text.append(state, style=TRADING_STYLE.get(t.state, "bold red"))  # type: ignore[call-overload]
    if t.reason:
        text.append(f"  ({t.reason}{', by ' + t.who if t.who else ''})")
    if t.execution_gate and t.execution_gate != t.state:
        text.append(f"  execution enforces {t.execution_gate.upper()}", style="yellow")
    if t.trip_pending:
        text.append("  TRIP NOT CONFIRMED BY THE VENUE", style="bold red")
    window = f"window {d.window_s:.1f} s" if d.window_s else "window –"
    text.append(f"   {utc_time(d.wall_ns)} UTC  {window}", style="dim")
    return text


def services_table(d: Dashboard) -> Table:
    table = Table(title="services", title_justify="left", expand=False)
    for col in ("service", "health", "state", "pid", "uptime", "reason"):
        table.add_column(col)
    for row in d.services:
        uptime = MISSING if row.uptime_s is None else f"{row.uptime_s:.0f} s"
        table.add_row(
            row.name,
            Text(row.health.value, style=HEALTH_STYLE[row.health]),
            row.state or MISSING,
            str(row.pid) if row.pid else MISSING,
            uptime,
            row.reason,
        )
    return table


def latency_table(d: Dashboard) -> Table:
    table = Table(title="latency (window)", title_justify="left", expand=False)
    table.add_column("stage")
    for col in ("p50", "p99", "n"):
        table.add_column(col, justify="right")
    for row in d.latencies:
        n = MISSING if row.count is None else str(row.count)
        table.add_row(row.label, seconds_text(row.p50_s), seconds_text(row.p99_s), n)
    return table


def rates_table(d: Dashboard) -> Table:
    table = Table(title="rates", title_justify="left", expand=False)
    table.add_column("what")
    table.add_column("per s", justify="right")
    table.add_column("total", justify="right")
    for row in d.rates:
        table.add_row(row.label, number(row.per_s), number(row.total, 0))
    return table


def positions_table(d: Dashboard) -> Table:
    title = (
        f"positions   realized {money(d.realized_usd)}   unrealized {money(d.unrealized_usd)}"
        f"   equity {money(d.equity_usd)}"
    )
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("symbol", "qty", "avg px", "realized", "unrealized"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    for row in d.positions:
        table.add_row(row.symbol, row.qty, row.avg_px, money(row.realized), money(row.unrealized_usd))
    return table


def _orders_table(title: str, rows: list[OrderRow], filled: bool) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for col in (
        "time",
        "symbol",
        "side",
        "qty" if not filled else "filled",
        "price",
        "status",
        "strategy",
        "id",
    ):
        table.add_column(col)
    for o in rows:
        table.add_row(
            utc_time(o.updated_ns),
            o.symbol,
            o.side,
            o.filled_qty if filled else o.qty,
            o.price or MISSING,
            o.status,
            o.strategy or MISSING,
            o.client_order_id,
        )
    return table


def open_orders_table(d: Dashboard) -> Table:
    return _orders_table(f"open orders ({len(d.open_orders)})", d.open_orders, filled=False)


def fills_table(d: Dashboard) -> Table:
    return _orders_table("recent fills", d.fills, filled=True)


def rejects_table(d: Dashboard) -> Table:
    table = Table(title="rejects", title_justify="left", expand=False)
    for col in ("source", "reason", "count", "detail"):
        table.add_column(col)
    for r in d.rejects:
        table.add_row(r.source, r.reason, str(r.count), r.detail)
    return table


PANELS = {
    "services": services_table,
    "latency": latency_table,
    "rates": rates_table,
    "positions": positions_table,
    "orders": open_orders_table,
    "fills": fills_table,
    "rejects": rejects_table,
}


def everything(d: Dashboard) -> RenderableType:
    notes = [Text(n, style="yellow") for n in d.notes]
    return Group(header(d), *(panel(d) for panel in PANELS.values()), *notes)


def plain_frame(d: Dashboard, width: int = 120) -> str:
    """The whole dashboard as plain text (no colour, no control codes)."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False, legacy_windows=False)
    console.print(everything(d))
    return out.getvalue()
