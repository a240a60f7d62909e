"""Automatic kill-switch triggers: what each one watches and whether it fires (docs/triggers.md).

Pure state and arithmetic, no I/O: risk feeds the inputs (its decisions, execution's order events
and heartbeats, quote arrivals, its P&L) and :class:`services.risk.trigger_runner.TriggerRunner`
evaluates and acts. Time comes from one injectable wall clock (int ns), so tests are deterministic;
events that carry their own wall time (a replayed order update) are placed at that time.

Each trigger fires once per arming: not again while its condition holds, until the operator resets
to ACTIVE (:meth:`Triggers.rearm`), which also empties the rolling windows and restarts the
duration triggers' clocks. Money stays in int nanos; every comparison is "beyond the limit", so a
value exactly at its limit never fires.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from common import wire
from common.config import KillSwitchConfig, TriggerConfig
from common.enums import RejectReason, TradingState, Trigger
from common.fixed import to_fixed, to_str

Clock = Callable[[], int]

# Risk rejects not counted: the system's own state (the trading state, positions not loaded yet at
# start), and the order-rate buckets' pacing (a strategy that keeps asking is throttled, not failing;
# the orders that do pass are what the order_rate trigger counts).
NOT_COUNTED = frozenset(
    {
        RejectReason.HALTED,
        RejectReason.REDUCE_ONLY,
        RejectReason.NOT_READY,
        RejectReason.ORDER_RATE,
        RejectReason.STRATEGY_ORDER_RATE,
    }
)
_S = 1_000_000_000
_MS = 1_000_000
_SEEN_MAX = 4096  # client_order_ids remembered to count each order's reject / latency once


@dataclass(frozen=True, slots=True)
class Reading:
    """A trigger's current value against its limit, as text with units."""

    value: str
    limit: str
    breached: bool
    detail: str  # the reason recorded when it fires


@dataclass(frozen=True, slots=True)
class Firing:
    trigger: Trigger
    action: TradingState
    flatten: bool
    reading: Reading


@dataclass(frozen=True, slots=True)
class Exposure:
    """What risk holds right now, for the loss and stale-data triggers."""

    pnl: int | None  # realized + unrealized money nanos; None = positions not known yet
    holding: bool  # any position or working order


class EventWindow:
    """Event times within the last ``window_ns``. Only whether the count exceeds the limit matters,
    so at most limit + 1 are kept: the size is bounded whatever the rate."""

    def __init__(self, window_ns: int, cap: int) -> None:
        self.window_ns = window_ns
        self._ts: deque[int] = deque(maxlen=cap)

    def add(self, ts: int, now: int) -> None:
        if ts > now - self.window_ns:
            self._ts.append(ts)

    def count(self, now: int) -> int:
        cutoff = now - self.window_ns
        while self._ts and self._ts[0] <= cutoff:
            self._ts.popleft()
        return len(self._ts)

    def clear(self) -> None:
        self._ts.clear()


class LatencyWindow:
    """The last ``max_samples`` tick-to-order samples (ns) of the last ``window_ns``."""

    def __init__(self, window_ns: int, max_samples: int) -> None:
        self.window_ns = window_ns
        self._samples: deque[tuple[int, int]] = deque(maxlen=max_samples)  # (sent_ns, latency_ns)

    def add(self, sent_ns: int, latency_ns: int, now: int) -> None:
        if sent_ns > now - self.window_ns:
            self._samples.append((sent_ns, latency_ns))

    def p99(self, now: int) -> tuple[int, int]:
        """(p99 in ns by nearest rank, sample count); (0, 0) without samples."""
        cutoff = now - self.window_ns
        while self._samples and self._samples[0][0] <= cutoff:
            self._samples.popleft()
        n = len(self._samples)
        if not n:
            return 0, 0
        ordered = sorted(lat for _, lat in self._samples)
        return ordered[math.ceil(0.99 * n) - 1], n

    def clear(self) -> None:
        self._samples.clear()


class _Seen:
    """A bounded set of recent client_order_ids."""

    def __init__(self, size: int = _SEEN_MAX) -> None:
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        self._size = size

    def first_time(self, coid: str) -> bool:
        if coid in self._set:
            return False
        self._set.add(coid)
        self._order.append(coid)
        if len(self._order) > self._size:
            self._set.discard(self._order.popleft())
        return True


def is_venue_reject(u: wire.OrderUpdate) -> bool:
    """The venue refused the order: rejected after acceptance, or its POST answered with an error
    status (execution's own refusals, e.g. its trading gate or not ready, carry other reasons)."""
    return u.status == "rejected" or (u.status == "submit_failed" and u.reason.startswith("HTTP "))


def _money(nanos: int) -> str:
    return to_str(nanos)


def _secs(ns: int) -> str:
    return f"{ns / _S:.3f} s"


class Triggers:
    def __init__(self, cfg: KillSwitchConfig, clock: Clock = time.time_ns) -> None:
        self.cfg = cfg
        self.clock = clock
        now = clock()
        self._armed_at = now
        self.fired: dict[Trigger, int] = {}  # trigger -> wall ns it fired in this arming
        self._rejects = EventWindow(_ns(cfg.reject_rate.window_s), cfg.reject_rate.max_count + 1)
        self._orders = EventWindow(_ns(cfg.order_rate.window_s), cfg.order_rate.max_count + 1)
        self._latency = LatencyWindow(_ns(cfg.latency.window_s), cfg.latency.max_samples)
        self._rejects_seen = _Seen()
        self._latency_seen = _Seen()
        self._last_quote = now  # no quote yet: stale counts from our start
        self._last_heartbeat: int | None = None  # unreachable is armed by a first heartbeat
        self._stream_down_since: int | None = None
        self._journal_failed_since: int | None = None
        self._peak: int | None = None
        self._last_eval = now
        self._stall_ns = max(_S, 10 * cfg.eval_interval_ms * _MS)
        self._limits = {
            Trigger.DAILY_LOSS: to_fixed(cfg.daily_loss.limit),
            Trigger.DRAWDOWN: to_fixed(cfg.drawdown.limit),
            Trigger.STALE_DATA: _ns(cfg.stale_data.after_s),
            Trigger.TRADE_STREAM_DOWN: _ns(cfg.trade_stream_down.after_s),
            Trigger.EXECUTION_UNREACHABLE: _ns(cfg.execution_unreachable.after_s),
            Trigger.LATENCY: int(Decimal(str(cfg.latency.p99_ms)) * _MS),
        }

    def config(self, trigger: Trigger) -> TriggerConfig:
        cfg: TriggerConfig = getattr(self.cfg, trigger.value)
        return cfg

    # ---- inputs -------------------------------------------------------------------------------

    def on_quote(self) -> None:
        self._last_quote = self.clock()

    def on_risk_reject(self, reason: RejectReason) -> None:
        if reason not in NOT_COUNTED:
            now = self.clock()
            self._rejects.add(now, now)

    def on_order_approved(self) -> None:
        now = self.clock()
        self._orders.add(now, now)

    def on_order_update(self, u: wire.OrderUpdate) -> None:
        now = self.clock()
        if is_venue_reject(u) and self._rejects_seen.first_time(u.client_order_id):
            self._rejects.add(u.recv_ns or now, now)
        if u.sent_ns and u.tick_recv_ns and self._latency_seen.first_time(u.client_order_id):
            self._latency.add(u.sent_ns, max(0, u.sent_ns - u.tick_recv_ns), now)

    def on_execution_heartbeat(self, hb: wire.Heartbeat) -> None:
        now = self.clock()
        self._last_heartbeat = now
        if hb.state == "degraded":  # ready, trade_updates disconnected
            if self._stream_down_since is None:
                self._stream_down_since = now
        else:
            self._stream_down_since = None
        if hb.state == "journal_failed":  # execution cannot write its order journal
            if self._journal_failed_since is None:
                self._journal_failed_since = now
        else:
            self._journal_failed_since = None

    def on_day_roll(self, shift: int) -> None:
        """A new trading day moved the P&L by ``-shift`` without trading: the peak moves with it, so
        the drawdown (from the session's peak) reads the same across the roll."""
        if self._peak is not None:
            self._peak -= shift

    # ---- arming -------------------------------------------------------------------------------

    def rearm(self) -> None:
        """The operator reset to ACTIVE: every trigger may fire again, on fresh evidence."""
        self.fired.clear()
        self._armed_at = self.clock()
        self._rejects.clear()
        self._orders.clear()
        self._latency.clear()

    # ---- evaluation ---------------------------------------------------------------------------

    def readings(self, exposure: Exposure) -> dict[Trigger, Reading]:
        now = self.clock()
        if now - self._last_eval > self._stall_ns:
            # Risk itself did not run (suspended, host stalled): the gap says nothing about quotes or
            # execution, whose news is still queued. The duration clocks start over.
            self._armed_at = max(self._armed_at, now)
        self._last_eval = now
        if exposure.pnl is not None:
            self._peak = exposure.pnl if self._peak is None else max(self._peak, exposure.pnl)
        return {
            Trigger.DAILY_LOSS: self._daily_loss(exposure.pnl),
            Trigger.DRAWDOWN: self._drawdown(exposure.pnl),
            Trigger.REJECT_RATE: self._count(self._rejects, now, self.cfg.reject_rate, "rejects"),
            Trigger.ORDER_RATE: self._count(self._orders, now, self.cfg.order_rate, "orders"),
            Trigger.STALE_DATA: self._stale(now, exposure.holding),
            Trigger.TRADE_STREAM_DOWN: self._since(
                Trigger.TRADE_STREAM_DOWN, now, self._stream_down_since, "trade_updates disconnected"
            ),
            Trigger.EXECUTION_UNREACHABLE: self._since(
                Trigger.EXECUTION_UNREACHABLE, now, self._last_heartbeat, "no heartbeat from execution"
            ),
            Trigger.LATENCY: self._latency_reading(now),
            Trigger.JOURNAL: self._journal_reading(now),
        }

    def evaluate(self, exposure: Exposure, state: TradingState) -> list[Firing]:
        """The triggers that fire now, in Trigger order; each only if its action is stricter than the
        state the ones before it left."""
        out: list[Firing] = []
        for trigger, reading in self.readings(exposure).items():
            cfg = self.config(trigger)
            if not cfg.enabled or not reading.breached or trigger in self.fired:
                continue
            if cfg.action.code <= state.code:
                continue  # nothing to tighten; it may still fire if the state is loosened
            self.fired[trigger] = self.clock()
            state = cfg.action
            out.append(Firing(trigger, cfg.action, cfg.flatten, reading))
        return out

    def status(self, exposure: Exposure) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for trigger, reading in self.readings(exposure).items():
            cfg = self.config(trigger)
            out[trigger.value] = {
                "enabled": cfg.enabled,
                "action": cfg.action.value,
                "flatten": cfg.flatten,
                "value": reading.value,
                "limit": reading.limit,
                "breached": reading.breached,
                "fired": trigger in self.fired,
                "fired_ns": self.fired.get(trigger, 0),
            }
        return out

    # ---- one reading each ------------------------------------------------------------------------

    def _daily_loss(self, pnl: int | None) -> Reading:
        limit = self._limits[Trigger.DAILY_LOSS]
        loss = 0 if pnl is None else -pnl
        detail = f"daily loss {_money(loss)} beyond limit {_money(limit)} (P&L {_money(-loss)})"
        return Reading(_money(loss), _money(limit), loss > limit, detail)

    def _drawdown(self, pnl: int | None) -> Reading:
        limit = self._limits[Trigger.DRAWDOWN]
        peak = self._peak
        dd = 0 if pnl is None or peak is None else peak - pnl
        detail = f"drawdown {_money(dd)} beyond limit {_money(limit)} (peak P&L {_money(peak or 0)})"
        return Reading(_money(dd), _money(limit), dd > limit, detail)

    def _count(self, window: EventWindow, now: int, cfg: Any, what: str) -> Reading:
        n = window.count(now)
        limit = f"{cfg.max_count} in {cfg.window_s:g} s"
        detail = f"{n} {what} in the last {cfg.window_s:g} s, limit {cfg.max_count}"
        return Reading(str(n), limit, n > cfg.max_count, detail)

    def _stale(self, now: int, holding: bool) -> Reading:
        limit = self._limits[Trigger.STALE_DATA]
        age = now - max(self._last_quote, self._armed_at)
        detail = f"no quote for {_secs(age)} (limit {_secs(limit)}) while holding positions or orders"
        return Reading(_secs(age), _secs(limit), holding and age > limit, detail)

    def _since(self, trigger: Trigger, now: int, since: int | None, what: str) -> Reading:
        limit = self._limits[trigger]
        age = 0 if since is None else now - max(since, self._armed_at)
        return Reading(
            _secs(age), _secs(limit), age > limit, f"{what} for {_secs(age)} (limit {_secs(limit)})"
        )

    def _journal_reading(self, now: int) -> Reading:
        since = self._journal_failed_since
        failed = since is not None
        detail = (
            f"execution cannot write its order journal (for {_secs(now - since)})"
            if since is not None
            else ""
        )
        return Reading("failed" if failed else "ok", "ok", failed, detail)

    def _latency_reading(self, now: int) -> Reading:
        limit = self._limits[Trigger.LATENCY]
        p99, n = self._latency.p99(now)
        need = self.cfg.latency.min_samples
        detail = (
            f"tick-to-order p99 {p99 / _MS:.3f} ms over {n} orders in {self.cfg.latency.window_s:g} s,"
            f" limit {limit / _MS:.3f} ms"
        )
        return Reading(
            f"{p99 / _MS:.3f} ms (n={n})",
            f"{limit / _MS:.3f} ms (n>={need})",
            n >= need and p99 > limit,
            detail,
        )


def _ns(seconds: float) -> int:
    return int(Decimal(str(seconds)) * _S)
