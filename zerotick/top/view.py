"""What the dashboard shows, computed from two snapshots: ``base`` (the start of the window) and
``cur``. Pure: no I/O, so every number here is unit-tested."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from common.config import SERVICES
from common.enums import TERMINAL_STATUS_VALUES, OrderStatus, ServiceHealth
from zerotick.top import health, stats
from zerotick.top.promtext import Metrics
from zerotick.top.snapshot import Probe, Snapshot

# the pipeline's stages in the order a tick meets them; others follow alphabetically
STAGE_ORDER = (
    "md_publish", "md_to_signal", "signal_rtt", "signal_to_risk", "risk_check", "risk_to_exec",
    "exec_submit", "venue_ack",
)  # fmt: skip
RECENT_ROWS = 8
_REJECTED = frozenset({OrderStatus.REJECTED.value, OrderStatus.SUBMIT_FAILED.value})


@dataclass(frozen=True)
class ServiceRow:
    name: str
    health: ServiceHealth
    reason: str
    state: str  # the service's own state word ("ok", "active", ...), "" when it did not answer
    pid: int | None
    uptime_s: float | None


@dataclass(frozen=True)
class TradingRow:
    state: str  # active / reduce_only / halted, or "unknown" when nobody says
    reason: str = ""
    source: str = ""
    who: str = ""
    execution_gate: str = ""
    trip_pending: bool = False


@dataclass(frozen=True)
class LatencyRow:
    label: str
    p50_s: float | None
    p99_s: float | None
    count: int | None  # observations in the window; None without a window


@dataclass(frozen=True)
class RateRow:
    label: str
    per_s: float | None
    total: float | None


@dataclass(frozen=True)
class PositionRow:
    symbol: str
    qty: str
    avg_px: str
    realized: str
    unrealized_usd: float | None


@dataclass(frozen=True)
class OrderRow:
    symbol: str
    side: str
    qty: str
    price: str
    status: str
    strategy: str
    client_order_id: str
    filled_qty: str
    updated_ns: int
    reason: str


@dataclass(frozen=True)
class RejectRow:
    source: str  # "risk" (pre-trade, counted in the window) or "venue" (an order it refused)
    reason: str
    count: int
    detail: str = ""


@dataclass(frozen=True)
class Dashboard:
    wall_ns: int
    window_s: float | None
    services: list[ServiceRow]
    trading: TradingRow
    latencies: list[LatencyRow]
    rates: list[RateRow]
    positions: list[PositionRow]
    realized_usd: Decimal | None
    unrealized_usd: float | None
    equity_usd: str | None
    open_orders: list[OrderRow]
    fills: list[OrderRow]
    rejects: list[RejectRow]
    notes: list[str] = field(default_factory=list)


def build(base: Snapshot | None, cur: Snapshot) -> Dashboard:
    window = cur.taken_s - base.taken_s if base is not None and cur.taken_s > base.taken_s else None
    metrics = {s: p.metrics for s, p in cur.probes.items()}
    before = {s: p.metrics for s, p in base.probes.items()} if base is not None and window else {}
    positions = _position_rows(cur, metrics.get("risk"))
    orders = [_order_row(d) for d in cur.orders or [] if isinstance(d, dict)]
    notes = [f"orders: {cur.orders_error}"] if cur.orders is None and cur.orders_error else []
    return Dashboard(
        wall_ns=cur.wall_ns,
        window_s=window,
        services=[_service_row(cur.probes.get(s) or Probe(s, status_error="not scraped")) for s in SERVICES],
        trading=_trading(cur),
        latencies=_latencies(before, metrics),
        rates=_rates(before, metrics, window),
        positions=positions,
        realized_usd=_realized(cur),
        unrealized_usd=_total(metrics.get("risk"), "zt_pnl_unrealized_usd", strategy="all"),
        equity_usd=_equity(cur),
        open_orders=sorted(
            (o for o in orders if o.status not in TERMINAL_STATUS_VALUES), key=lambda o: o.updated_ns
        ),
        fills=sorted((o for o in orders if _dec(o.filled_qty) > 0), key=lambda o: -o.updated_ns)[
            :RECENT_ROWS
        ],
        rejects=_rejects(before.get("risk"), metrics.get("risk"), orders),
        notes=notes,
    )


# ---- services and the trading state -----------------------------------------------------------


def _service_row(probe: Probe) -> ServiceRow:
    judged, reason = health.judge(probe)
    st = probe.status or {}
    pid = st.get("pid")
    uptime = st.get("uptime_s")
    return ServiceRow(
        name=probe.service,
        health=judged,
        reason=reason,
        state=str(st.get("state", "")),
        pid=pid if isinstance(pid, int) else None,
        uptime_s=float(uptime) if isinstance(uptime, int | float) else None,
    )


def _trading(cur: Snapshot) -> TradingRow:
    """Risk owns the trading state; its metric, then execution's, stand in when its status is missing."""
    risk = cur.probes.get("risk", Probe("risk"))
    execution = cur.probes.get("execution", Probe("execution"))
    exec_st = execution.status or {}
    gate = str(exec_st.get("trading_state", "")) or _enum(execution.metrics, "zt_trading_state")
    pending = bool(exec_st.get("trip_pending"))
    st = risk.status or {}
    if st.get("trading_state"):
        rec = st.get("trading_state_record") if isinstance(st.get("trading_state_record"), dict) else {}
        return TradingRow(
            state=str(st["trading_state"]),
            reason=str(rec.get("reason", "")),
            source=str(rec.get("source", "")),
            who=str(rec.get("who", "")),
            execution_gate=gate,
            trip_pending=pending,
        )
    state = _enum(risk.metrics, "zt_trading_state") or gate or "unknown"
    return TradingRow(
        state=state, reason="risk's status unavailable", execution_gate=gate, trip_pending=pending
    )


def _enum(metrics: Metrics | None, name: str) -> str:
    return (metrics.enum_state(name) if metrics is not None else None) or ""


# ---- latency ------------------------------------------------------------------------------------


def _latencies(before: dict[str, Metrics | None], now: dict[str, Metrics | None]) -> list[LatencyRow]:
    rows: list[tuple[tuple[int, str], LatencyRow]] = []
    for service, m in now.items():
        if m is None:
            continue
        prev = before.get(service)
        stages = {labels.get("stage", "") for labels, _ in m.series("zt_stage_latency_seconds_bucket")}
        for stage in stages:
            match = {"service": service, "stage": stage}
            row = _latency_row(f"{stage} ({service})", "zt_stage_latency_seconds", match, prev, m)
            order = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
            rows.append(((order, stage), row))
        venues = {labels.get("venue", "") for labels, _ in m.series("zt_tick_to_order_seconds_bucket")}
        for venue in venues:
            row = _latency_row(
                f"tick-to-order ({venue})", "zt_tick_to_order_seconds", {"venue": venue}, prev, m
            )
            rows.append(((len(STAGE_ORDER) + 1, venue), row))
    return [r for _, r in sorted(rows, key=lambda x: x[0])]


def _latency_row(
    label: str, name: str, match: dict[str, str], before: Metrics | None, now: Metrics
) -> LatencyRow:
    if before is None:
        return LatencyRow(label, None, None, None)
    window = stats.bucket_delta(before.buckets(name, **match), now.buckets(name, **match))
    return LatencyRow(
        label, stats.quantile(0.5, window), stats.quantile(0.99, window), stats.observations(window)
    )


# ---- rates --------------------------------------------------------------------------------------


def _total(name: str, **match: str) -> Callable[[Metrics], float | None]:
    """The metric's total over the series matching ``match``; None while the service does not export it."""

    def read(m: Metrics) -> float | None:
        return m.total(name, **match) if m.has(name) else None

    return read


def _risk_rejects(m: Metrics) -> float | None:
    if not m.has("zt_risk_decisions_total"):
        return None
    return sum(v for reason, v in m.by_label("zt_risk_decisions_total", "reason").items() if reason != "ok")


RATES: tuple[tuple[str, str, Callable[[Metrics], float | None]], ...] = (
    ("market data messages", "market_data", _total("zt_md_messages_total")),
    ("md received by signal", "signal", _total("zt_zmq_received_total", topic="md.q")),
    ("intents", "signal", _total("zt_signal_intents_total")),
    ("risk decisions", "risk", _total("zt_risk_decisions_total")),
    ("risk rejects", "risk", _risk_rejects),
    ("orders sent", "execution", _total("zt_exec_order_post_seconds_count")),
    ("order updates", "execution", _total("zt_exec_order_updates_total")),
    ("fills", "execution", _total("zt_exec_fills_total")),
    ("venue rejects", "execution", _total("zt_exec_venue_rejects_total")),
)  # fmt: skip


def _rates(
    before: dict[str, Metrics | None], now: dict[str, Metrics | None], window: float | None
) -> list[RateRow]:
    rows = []
    for label, service, read in RATES:
        m, prev = now.get(service), before.get(service)
        total = read(m) if m is not None else None
        per_s = stats.rate(read(prev), total, window) if prev is not None and window else None
        rows.append(RateRow(label, per_s, total))
    return rows


# ---- positions, P&L, orders ------------------------------------------------------------------


def _position_rows(cur: Snapshot, risk_metrics: Metrics | None) -> list[PositionRow]:
    """Execution's sequenced book (exact), else risk's view of it."""
    book = cur.positions
    if book is None:
        risk_st = cur.probes.get("risk", Probe("risk")).status or {}
        book = risk_st.get("positions") if isinstance(risk_st.get("positions"), dict) else {}
    rows = []
    for symbol, p in sorted(book.items()):
        if not isinstance(p, dict) or (_dec(p.get("qty")) == 0 and _dec(p.get("realized_pnl")) == 0):
            continue
        unrealized = _total(risk_metrics, "zt_pnl_unrealized_usd", symbol=symbol, strategy="all")
        rows.append(
            PositionRow(
                symbol,
                str(p.get("qty", "")),
                str(p.get("avg_px", "")),
                str(p.get("realized_pnl", "")),
                unrealized,
            )
        )
    return rows


def _realized(cur: Snapshot) -> Decimal | None:
    if cur.positions is None:
        return None
    return sum((_dec(p.get("realized_pnl")) for p in cur.positions.values()), Decimal(0))


def _equity(cur: Snapshot) -> str | None:
    exec_st = cur.probes.get("execution", Probe("execution")).status or {}
    account = exec_st.get("account")
    if isinstance(account, dict) and account.get("equity") is not None:
        return str(account["equity"])
    value = _total(cur.probes.get("risk", Probe("risk")).metrics, "zt_equity_usd", source="venue")
    return None if value is None else f"{value:.2f}"


def _order_row(d: dict[str, Any]) -> OrderRow:
    times = [d.get(k) for k in ("venue_ns", "posted_ns", "sent_ns", "updated_ns")]
    limit = str(d.get("limit_price") or "")
    return OrderRow(
        symbol=str(d.get("symbol", "")),
        side=str(d.get("side", "")),
        qty=str(d.get("qty", "")),
        price=str(d.get("filled_avg_price"))
        if _dec(d.get("filled_qty")) > 0
        else ("" if limit == "0" else limit),
        status=str(d.get("status", "")),
        strategy=str(d.get("strategy", "")),
        client_order_id=str(d.get("client_order_id", "")),
        filled_qty=str(d.get("filled_qty", "0")),
        updated_ns=max((t for t in times if isinstance(t, int)), default=0),
        reason=str(d.get("reason") or ""),
    )


def _rejects(before: Metrics | None, now: Metrics | None, orders: list[OrderRow]) -> list[RejectRow]:
    rows = []
    if now is not None and before is not None:
        prev = before.by_label("zt_risk_decisions_total", "reason")
        for reason, total in sorted(now.by_label("zt_risk_decisions_total", "reason").items()):
            delta = stats.counter_delta(prev.get(reason, 0.0), total) or 0
            if reason != "ok" and delta > 0:
                rows.append(RejectRow("risk", reason, int(delta), f"{int(total)} since start"))
    venue = sorted((o for o in orders if o.status in _REJECTED), key=lambda o: -o.updated_ns)
    for o in venue[:RECENT_ROWS]:
        detail = f"{o.side} {o.qty} {o.symbol} {o.client_order_id}"
        rows.append(RejectRow("venue", o.reason or o.status, 1, detail))
    return rows


def _total(metrics: Metrics | None, name: str, **match: str) -> float | None:
    if metrics is None or not metrics.series(name, **match):
        return None
    return metrics.total(name, **match)


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
