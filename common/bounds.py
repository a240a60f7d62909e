"""The ranges a number must be in to enter a process, checked at every edge where numbers come in.

Edges: market_data's decoder (venue frames), execution's venue client (REST and trade_updates), and
every ZeroMQ subscriber (``Service.subscribe`` filters each batch through :class:`InboundFilter`).
A value out of range is rejected there, with the reason, so nothing downstream (strategies, the
numba checks and books, int64 arrays, the msgpack encoder) ever sees it.

* prices and quantities: int nanos with ``|v| <= MAX_NANOS`` (2^62 nanos = 4.6e9 units: far above
  any real price or size, and far below int64 overflow when a few are added);
* venue timestamps: from 2000-01-01 to now + 1 day; wire timestamps: 0 (unknown) up to now + 1 day;
* counters and ids (seq, pid, trade id): ``0 <= v <= MAX_NANOS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from common import wire
from common.clock import mono_ns, wall_ns
from common.enums import RangeReason

log = logging.getLogger(__name__)

NS = 1_000_000_000
MAX_NANOS = 1 << 62
MIN_VENUE_TS_NS = 946_684_800 * NS  # 2000-01-01T00:00:00Z
MAX_AHEAD_NS = 86_400 * NS  # a clock may be off; a day ahead is not a clock, it is garbage

INBOUND_REJECTED = Counter(
    "zt_inbound_rejected_total",
    "ZeroMQ messages dropped at a subscriber because a value is out of range",
    ["service", "reason"],
)


class OutOfRange(ValueError):
    """``reason`` is a short metric label (``price``, ``size``, ``timestamp``, ``count``)."""

    def __init__(self, reason: RangeReason, name: str, value: object) -> None:
        super().__init__(f"{name} out of range: {value!r}"[:200])
        self.reason = reason


def nanos(v: int, name: str, reason: RangeReason = RangeReason.PRICE, signed: bool = False) -> int:
    low = -MAX_NANOS if signed else 0
    if not low <= v <= MAX_NANOS:
        raise OutOfRange(reason, name, v)
    return v


def count(v: int, name: str) -> int:
    if not 0 <= v <= MAX_NANOS:
        raise OutOfRange(RangeReason.COUNT, name, v)
    return v


def venue_ts(v: int, name: str, now_ns: int) -> int:
    """A timestamp from the venue: 2000-01-01 .. now + 1 day."""
    if not MIN_VENUE_TS_NS <= v <= now_ns + MAX_AHEAD_NS:
        raise OutOfRange(RangeReason.TIMESTAMP, name, v)
    return v


# ---- wire messages at a ZeroMQ subscriber ----------------------------------------------------------


def _px(v: int) -> bool:
    return 0 <= v <= MAX_NANOS


def _signed(v: int) -> bool:
    return -MAX_NANOS <= v <= MAX_NANOS


# The per-message checks of the busiest topics (quotes, order updates, fills) compare inline: they
# run for every message every subscriber reads.


def _quote(m: wire.Quote, latest: int) -> str:
    top = MAX_NANOS
    if not (0 <= m.bid_px <= top and 0 <= m.bid_sz <= top and 0 <= m.ask_px <= top and 0 <= m.ask_sz <= top):
        return RangeReason.PRICE
    return "" if 0 <= m.exch_ns <= latest and 0 <= m.recv_ns <= latest else RangeReason.TIMESTAMP


def _trade(m: wire.Trade, latest: int) -> str:
    if not (_px(m.px) and _px(m.sz)):
        return RangeReason.PRICE
    if not _px(m.trade_id):
        return RangeReason.COUNT
    return "" if 0 <= m.exch_ns <= latest and 0 <= m.recv_ns <= latest else RangeReason.TIMESTAMP


def _bar(m: wire.Bar, latest: int) -> str:
    if not all(_px(v) for v in (m.open, m.high, m.low, m.close, m.volume, m.vwap)):
        return RangeReason.PRICE
    if not _px(m.trades):
        return RangeReason.COUNT
    return "" if 0 <= m.start_ns <= latest and 0 <= m.recv_ns <= latest else RangeReason.TIMESTAMP


def _book(m: wire.Book, latest: int) -> str:
    for side in (m.bids, m.asks):
        for px, sz in side:
            if not (_px(px) and _px(sz)):
                return RangeReason.PRICE
    return "" if 0 <= m.exch_ns <= latest and 0 <= m.recv_ns <= latest else RangeReason.TIMESTAMP


def _order_update(m: wire.OrderUpdate, latest: int) -> str:
    top = MAX_NANOS
    if not (
        0 <= m.qty <= top
        and 0 <= m.filled_qty <= top
        and 0 <= m.filled_avg_px <= top
        and 0 <= m.limit_px <= top
    ):
        return RangeReason.PRICE
    if not 0 <= m.seq <= top:
        return RangeReason.COUNT
    for t in (m.venue_ns, m.recv_ns, m.intent_signal_ns, m.tick_recv_ns, m.sent_ns):
        if not 0 <= t <= latest:
            return RangeReason.TIMESTAMP
    return ""


def _fill(m: wire.Fill, latest: int) -> str:
    top = MAX_NANOS
    if not (0 <= m.qty <= top and 0 <= m.px <= top and 0 <= m.cum_qty <= top):
        return RangeReason.PRICE
    if m.position_qty is not None and not -top <= m.position_qty <= top:
        return RangeReason.PRICE
    if not 0 <= m.seq <= top:
        return RangeReason.COUNT
    return "" if 0 <= m.venue_ns <= latest and 0 <= m.recv_ns <= latest else RangeReason.TIMESTAMP


def _account(m: wire.Account, latest: int) -> str:
    if not all(_signed(v) for v in (m.cash, m.buying_power, m.equity, m.last_equity)):
        return RangeReason.PRICE
    return "" if 0 <= m.ts_ns <= latest else RangeReason.TIMESTAMP


def _position(m: wire.Position, latest: int) -> str:
    if not (_signed(m.qty) and _px(m.avg_px) and _signed(m.realized_pnl)):
        return RangeReason.PRICE
    return "" if 0 <= m.ts_ns <= latest else RangeReason.TIMESTAMP


def _heartbeat(m: wire.Heartbeat, latest: int) -> str:
    if not (_px(m.pid) and _px(m.seq) and _px(m.last_event_seq)):
        return RangeReason.COUNT
    return "" if 0 <= m.ts_ns <= latest else RangeReason.TIMESTAMP


def _trading_state(m: wire.TradingStateChanged, latest: int) -> str:
    if not _px(m.seq):
        return RangeReason.COUNT
    return "" if 0 <= m.ts_ns <= latest else RangeReason.TIMESTAMP


def _feed_status(m: wire.FeedStatus, latest: int) -> str:
    return "" if 0 <= m.ts_ns <= latest else RangeReason.TIMESTAMP


_CHECKS: dict[type, Callable[[Any, int], str]] = {
    wire.Quote: _quote,
    wire.Trade: _trade,
    wire.Bar: _bar,
    wire.Book: _book,
    wire.OrderUpdate: _order_update,
    wire.Fill: _fill,
    wire.Account: _account,
    wire.Position: _position,
    wire.Heartbeat: _heartbeat,
    wire.TradingStateChanged: _trading_state,
    wire.FeedStatus: _feed_status,
}


def message_error(msg: Any, now_ns: int) -> str:
    """Why a received wire message must be dropped ("" when it may go on): the reason label."""
    check = _CHECKS.get(type(msg))
    return check(msg, now_ns + MAX_AHEAD_NS) if check is not None else ""


class InboundFilter:
    """Drops out-of-range messages of a received batch: counted by reason, logged at most every 5 s."""

    LOG_EVERY_NS = 5 * NS

    def __init__(self, service: str) -> None:
        self.service = service
        self.rejected = 0
        # every reason's series exists from the start (0), so rate() and alerts see the first one
        self._counters: dict[str, Any] = {r: INBOUND_REJECTED.labels(service, r) for r in RangeReason}
        self._next_log_ns = 0
        self._suppressed = 0

    def __call__(self, topic: bytes, msgs: list[Any]) -> list[Any]:
        now = wall_ns()
        bad: list[tuple[int, str]] = []
        for i, m in enumerate(msgs):
            reason = message_error(m, now)
            if reason:
                bad.append((i, reason))
        if not bad:
            return msgs
        drop = {i for i, _ in bad}
        for i, reason in bad:
            self.reject(topic, msgs[i], reason)
        return [m for i, m in enumerate(msgs) if i not in drop]

    def reject(self, topic: bytes, msg: Any, reason: str) -> None:
        self.rejected += 1
        counter = self._counters.get(reason)
        if counter is None:
            counter = self._counters[reason] = INBOUND_REJECTED.labels(self.service, reason)
        counter.inc()
        now = mono_ns()
        if now < self._next_log_ns:
            self._suppressed += 1
            return
        self._next_log_ns = now + self.LOG_EVERY_NS
        log.warning(
            "dropped an out-of-range message",
            extra={
                "fields": {
                    "topic": topic.decode(errors="replace")[:100],
                    "reason": reason,
                    "message": repr(msg)[:300],
                    "suppressed_since_last": self._suppressed,
                }
            },
        )
        self._suppressed = 0
