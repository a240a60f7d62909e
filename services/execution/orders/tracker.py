"""Tracked orders, and venue news about them (order snapshots, trade updates) turned into
per-order transitions and the OrderUpdate / Fill events published on one gap-free seq."""

from __future__ import annotations

import itertools
import logging
from typing import Any

from common import fixed, oplog, topics, wire
from common.clock import wall_ns
from common.enums import OpsEvent
from common.log import kv
from common.positions import PositionBook
from common.zmq_io import Publisher
from services.execution.metrics import ADOPTED, ORDERS, OrderEventCounters
from services.execution.orders.event_log import EventLog, OrderEvent
from services.execution.orders.journal import BookSnapshot, OrderJournal
from services.execution.orders.order_state import (
    KNOWN_STATUSES,
    SUBMIT_FAILED,
    TERMINAL,
    VENUE_LOST_STATUS,
    OrderParseError,
    TrackedOrder,
    VenueOrder,
    parse_ts_ns,
    venue_nanos,
)

log = logging.getLogger(__name__)

# Ends that are our verdict, not the venue's: an order POSTed and then judged never placed, or lost by
# the venue, may still show up there. A snapshot keeps them this long (a retired id is ignored).
UNCONFIRMED_ENDS = frozenset({SUBMIT_FAILED, VENUE_LOST_STATUS})
UNCONFIRMED_KEEP_NS = 86_400 * 1_000_000_000


class OrderTracker:
    """The orders execution knows, the positions book their fills move, and the event stream."""

    def __init__(
        self,
        events: EventLog,
        journal: OrderJournal,
        pub: Publisher,
        max_tracked: int,
        counters: OrderEventCounters | None = None,
    ) -> None:
        self.events = events
        self.counters = counters or OrderEventCounters()
        self.journal = journal
        self.pub = pub
        self.orders: dict[str, TrackedOrder] = {}
        self.coid_by_venue_id: dict[str, str] = {}
        self.retired_coids: set[str] = set()  # pruned from ``orders`` but never to be sent again
        self.max_tracked = max_tracked
        # venue positions at start plus every Fill since: consistent with events.last_seq at any moment
        self.positions = PositionBook()
        # each strategy's positions: every fill of its orders in the sequence (never re-based)
        self.strategy_books: dict[str, PositionBook] = {}
        self.fills_applied = 0

    def is_known(self, coid: str) -> bool:
        """True for an id tracked now or ever before (such an id is never sent again)."""
        return coid in self.orders or coid in self.retired_coids

    def track(self, order: TrackedOrder) -> None:
        self.orders[order.client_order_id] = order
        self.prune()

    def retire(self, coid: str) -> None:
        """Never track this order: its fills are already counted (e.g. in the start positions)."""
        self.retired_coids.add(coid)

    def reset_positions(self, start_positions: list[wire.Position]) -> None:
        self.positions = PositionBook()
        for p in start_positions:
            self.positions.get(p.symbol).set_from_venue(p.qty, p.avg_px)

    def apply_fill(
        self, strategy: str, symbol: str, side: str, qty: int, px: int, account: bool = True
    ) -> None:
        """A fill moves the account's book (unless its base already holds it) and its strategy's."""
        if account:
            self.positions.apply_fill(symbol, side, qty, px)
        book = self.strategy_books.get(strategy)
        if book is None:
            book = self.strategy_books[strategy] = PositionBook()
        book.apply_fill(symbol, side, qty, px)

    def snapshot(self, keep_closed: int) -> BookSnapshot:
        """The books now, and what a journal snapshot keeps for the next start: every open order and
        the newest ``keep_closed`` closed ones (by the seq of their last update); and every other id
        ever tracked, to be refused still."""
        always: list[TrackedOrder] = []  # open, or closed by our verdict and young: always kept
        closed: list[TrackedOrder] = []
        young = wall_ns() - UNCONFIRMED_KEEP_NS
        for o in self.orders.values():
            unconfirmed = o.status in UNCONFIRMED_ENDS and o.last_post_ns and o.updated_ns > young
            (closed if o.status in TERMINAL and not unconfirmed else always).append(o)
        cut = max(0, len(closed) - keep_closed)
        return BookSnapshot(
            as_of_seq=self.events.last_seq,
            book=self.positions.exact(),
            strategies={name: book.exact() for name, book in self.strategy_books.items()},
            kept=[(o.client_order_id, o.update_seq) for o in (*always, *closed[cut:])],
            retired=self.retired_coids.union([o.client_order_id for o in closed[:cut]]),
        )

    def open_orders(self) -> int:
        return sum(1 for o in self.orders.values() if not o.terminal)

    def open_qty(self, symbol: str, exclude: str = "") -> tuple[int, int]:
        """(buy, sell) quantity still open on ``symbol`` across our orders, except ``exclude``."""
        buy = sell = 0
        for o in self.orders.values():
            if o.symbol == symbol and o.client_order_id != exclude and not o.terminal:
                if o.side == "buy":
                    buy += o.open_qty
                else:
                    sell += o.open_qty
        return buy, sell

    def apply_trade_update(self, data: dict[str, Any]) -> None:
        """One trade_updates payload; raises OrderParseError / ValueError when it cannot be used."""
        recv = wall_ns()
        doc = data.get("order")
        if not isinstance(doc, dict):
            raise OrderParseError("trade update without an order")
        snap = VenueOrder.from_json(doc)
        event = str(data.get("event", ""))
        exec_qty, exec_px = _optional_nanos(data, "qty"), _optional_nanos(data, "price")
        pos = _optional_nanos(data, "position_qty", signed=True)
        try:
            venue_ns = parse_ts_ns(data.get("timestamp")) or snap.updated_ns
        except OrderParseError:
            venue_ns = snap.updated_ns
        self.apply(
            snap,
            event,
            recv,
            exec_qty=exec_qty,
            exec_px=exec_px,
            exec_id=str(data.get("execution_id") or ""),
            position_qty=pos,
            venue_ns=venue_ns,
            # Alpaca sends no reason on rejections; venues that do (the simulator) are passed on
            reason=str(data.get("reason") or "")[:200] if "rejected" in event else "",
        )

    def apply_doc(self, doc: dict[str, Any], event: str, recv_ns: int, baseline: bool = False) -> str:
        try:
            snap = VenueOrder.from_json(doc)
        except OrderParseError as exc:
            log.warning("unreadable venue order skipped", extra=kv(error=str(exc)))
            return ""
        self.apply(snap, event, recv_ns, baseline=baseline)
        return snap.client_order_id

    def _tracked_for(self, snap: VenueOrder, baseline: bool) -> TrackedOrder | None:
        order = self.orders.get(snap.client_order_id)
        if order is not None:
            return order
        if snap.client_order_id in self.retired_coids:
            return None  # finished and forgotten (or closed before our start): already counted
        parent_coid = self.coid_by_venue_id.get(snap.replaces or "")
        parent = self.orders.get(parent_coid) if parent_coid else None
        order = TrackedOrder(
            client_order_id=snap.client_order_id,
            symbol=snap.symbol,
            side=snap.side,
            qty=snap.qty,
            limit_px=snap.limit_px,
            strategy=parent.strategy if parent else "",
            reason="replacement" if parent else "adopted from venue",
        )
        if parent is None:
            ADOPTED.inc()
            log.warning(
                "venue order zerotick did not send: adopted",
                extra=kv(coid=snap.client_order_id[:64], symbol=snap.symbol, status=snap.status),
            )
        if baseline:  # fills before our start are already in the venue positions: not new fills
            order.filled_qty, order.filled_avg_px = snap.filled_qty, snap.filled_avg_px
        self.track(order)
        return order

    def apply(
        self,
        snap: VenueOrder,
        event: str,
        recv_ns: int,
        exec_qty: int | None = None,
        exec_px: int | None = None,
        exec_id: str = "",
        position_qty: int | None = None,
        venue_ns: int = 0,
        baseline: bool = False,
        reason: str = "",
    ) -> None:
        order = self._tracked_for(snap, baseline)
        if order is None:
            return
        if reason:
            order.reason = reason
        if snap.status not in KNOWN_STATUSES:
            log.warning("unknown venue order status, treated as working", extra=kv(status=snap.status[:40]))
        was_filled = order.status == "filled"
        tr = order.apply(snap, event, exec_qty=exec_qty, exec_px=exec_px, exec_id=exec_id)
        if order.venue_order_id:
            self.coid_by_venue_id[order.venue_order_id] = order.client_order_id
        if tr.fill is not None:
            f = tr.fill
            fill = wire.Fill(
                seq=0,
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
                exec_id=f.exec_id,
                strategy=order.strategy,
                symbol=order.symbol,
                side=order.side,  # type: ignore[arg-type]
                qty=f.qty,
                px=f.px,
                cum_qty=f.cum_qty,
                position_qty=position_qty if event in ("fill", "partial_fill") else None,
                venue_ns=venue_ns or snap.updated_ns,
                recv_ns=recv_ns,
            )
            # Fill before the update: a position rises before the pending quantity that became it falls.
            self.apply_fill(order.strategy, order.symbol, order.side, f.qty, f.px)
            self.fills_applied += 1
            self.counters.fill(order.strategy, order.symbol, order.side)
            oplog.order_line(
                OpsEvent.FILL,
                symbol=order.symbol,
                side=order.side,
                qty=f.qty,
                price=f.px,
                client_order_id=order.client_order_id,
                strategy=order.strategy,
                cum_qty=fixed.to_str(f.cum_qty),
                exec_id=f.exec_id[:64],
            )
            self._publish(fill, topics.sym(topics.EX_FILL, order.symbol))
        if tr.changed:
            if order.status == "filled" and not was_filled:
                ORDERS.labels("filled").inc()
            self.emit_update(order, event, recv_ns)

    def open_order_updates(self) -> list[wire.OrderUpdate]:
        """The last published update of every open order (a receiver's snapshot)."""
        out = []
        for o in self.orders.values():
            if not o.terminal and o.update_seq:
                out.append(_update_of(o, "snapshot", o.updated_ns, o.update_seq))
        return out

    def emit_update(self, order: TrackedOrder, event: str, recv_ns: int) -> None:
        order.updated_ns = recv_ns
        if order.terminal:
            oplog.order_line(
                OpsEvent.ORDER_FINAL,
                symbol=order.symbol,
                side=order.side,
                qty=order.qty,
                price=order.filled_avg_px or order.limit_px,
                client_order_id=order.client_order_id,
                strategy=order.strategy,
                reason=order.reason,
                status=order.status,
                filled_qty=fixed.to_str(order.filled_qty),
            )
        update = _update_of(order, event, recv_ns, 0)
        self.counters.update(order.status)
        order.update_seq = self._publish(update, topics.sym(topics.EX_UPDATE, order.symbol))

    def _publish(self, event: OrderEvent, topic: bytes) -> int:
        stamped = self.events.append(event)
        self.journal.record_event(stamped)
        self.pub.publish(topic, [stamped])
        return stamped.seq

    def recent(self, limit: int) -> list[TrackedOrder]:
        """Every open order, and the ``limit`` tracked last (oldest first)."""
        latest = list(itertools.islice(reversed(self.orders.values()), limit))[::-1]
        seen = {o.client_order_id for o in latest}
        opened = [o for o in self.orders.values() if not o.terminal and o.client_order_id not in seen]
        return opened + latest

    def prune(self) -> None:
        """Forget the oldest finished orders beyond the cap (down to 90% of it, so the scan is
        amortized over many orders); their ids stay refused and are never adopted again."""
        if len(self.orders) <= self.max_tracked:
            return
        excess = len(self.orders) - self.max_tracked * 9 // 10
        for coid in [c for c, o in self.orders.items() if o.terminal][:excess]:
            order = self.orders.pop(coid)
            self.retired_coids.add(coid)
            self.coid_by_venue_id.pop(order.venue_order_id, None)


def _optional_nanos(data: dict[str, Any], key: str, signed: bool = False) -> int | None:
    """A per-execution number of a trade update; None when absent, unreadable or out of range (the
    cumulative fields of the order still carry the fill, so a bad one costs precision, never the fill)."""
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        return venue_nanos(value, key, signed=signed)
    except OrderParseError:
        log.warning("unreadable trade update field ignored", extra=kv(field=key, value=str(value)[:40]))
        return None


def _update_of(order: TrackedOrder, event: str, recv_ns: int, seq: int) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=seq,
        client_order_id=order.client_order_id,
        venue_order_id=order.venue_order_id,
        strategy=order.strategy,
        symbol=order.symbol,
        side=order.side,  # type: ignore[arg-type]
        status=order.status,
        event=event,
        qty=order.qty,
        filled_qty=order.filled_qty,
        filled_avg_px=order.filled_avg_px,
        limit_px=order.limit_px,
        reason=order.reason,
        venue_ns=order.venue_ns,
        recv_ns=recv_ns,
        intent_signal_ns=order.intent_signal_ns,
        tick_recv_ns=order.tick_recv_ns,
        sent_ns=order.sent_ns,
    )
