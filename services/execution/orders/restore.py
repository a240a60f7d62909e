"""Execution's state rebuilt from its journal after a restart (SIGKILL at any instant included).

From the journal: the sequence continues at the last seq; the orders the last book snapshot kept
(open ones and the newest closed ones), and every order after it, are tracked again with their last
published state, and every other id ever sent stays refused; the positions book is the snapshot's
(exact, at its seq) or, when there is none or the book was re-based on the venue since, the base
(venue positions at a seq), plus every journaled Fill after that seq; each strategy's book is the
snapshot's plus every Fill after it (without a snapshot: every Fill). A submit journaled without any
event after it is an order whose POST may or may not have reached the venue: it comes back as
``unknown`` and is resolved by a lookup of its client_order_id (reconcile), never sent again.
"""

from __future__ import annotations

import logging

from common import fixed, wire
from common.log import kv
from common.positions import PositionBook
from services.execution.orders.journal import Recovered
from services.execution.orders.order_state import SUBMITTING, UNKNOWN, TrackedOrder
from services.execution.orders.tracker import OrderTracker

log = logging.getLogger(__name__)


def _order_from_update(u: wire.OrderUpdate) -> TrackedOrder:
    return TrackedOrder(
        client_order_id=u.client_order_id,
        symbol=u.symbol,
        side=u.side,
        qty=u.qty,
        limit_px=u.limit_px,
        strategy=u.strategy,
        venue_order_id=u.venue_order_id,
        status=u.status,
        filled_qty=u.filled_qty,
        filled_avg_px=u.filled_avg_px,
        reason=u.reason,
        venue_ns=u.venue_ns,
        intent_signal_ns=u.intent_signal_ns,
        tick_recv_ns=u.tick_recv_ns,
        sent_ns=u.sent_ns,
        updated_ns=u.recv_ns,
        update_seq=u.seq,
    )


def restore(tracker: OrderTracker, rec: Recovered) -> list[TrackedOrder]:
    """Rebuild ``tracker`` (events, orders, positions) from ``rec``; returns the orders whose submit
    outcome is unknown (journaled before a POST, no answer journaled)."""
    tracker.events.restore([e for e in rec.events if e.seq > rec.tail_after], rec.last_seq)
    tracker.retired_coids |= rec.retired
    if rec.book_seq >= 0:
        tracker.positions = PositionBook.from_exact(rec.book)
        book_seq = rec.book_seq
    else:
        tracker.reset_positions(rec.base_positions)
        book_seq = rec.base_seq
    tracker.strategy_books = {name: PositionBook.from_exact(b) for name, b in rec.strategy_books.items()}
    fills = 0
    for ev in rec.events:
        if isinstance(ev, wire.OrderUpdate):
            order = _order_from_update(ev)
            tracker.orders[order.client_order_id] = order
            if order.venue_order_id:
                tracker.coid_by_venue_id[order.venue_order_id] = order.client_order_id
        else:  # every fill loaded is after the strategy books' seq; the account's base may be later
            tracker.apply_fill(ev.strategy, ev.symbol, ev.side, ev.qty, ev.px, account=ev.seq > book_seq)
            fills += ev.seq > book_seq
    unknown: list[TrackedOrder] = []
    for coid, sub in rec.submits.items():
        order = tracker.orders.get(coid)
        if order is None:
            body = sub.body
            try:
                order = TrackedOrder(
                    client_order_id=coid,
                    symbol=str(body["symbol"]),
                    side=str(body["side"]),
                    qty=fixed.to_fixed(body["qty"]),
                    limit_px=fixed.to_fixed(body.get("limit_price") or 0),
                    reason="submit journaled, outcome lost in a restart",
                )
            except (KeyError, ValueError) as exc:
                log.error("unreadable journaled submit", extra=kv(coid=coid, error=str(exc)))
                continue
            tracker.orders[coid] = order
        order.last_post_ns = max(order.last_post_ns, sub.ts_ns)
        if order.status in (SUBMITTING, UNKNOWN):
            order.status = UNKNOWN
            unknown.append(order)
    log.warning(
        "execution state restored from the journal",
        extra=kv(
            last_seq=tracker.events.last_seq,
            orders=len(tracker.orders),
            open=tracker.open_orders(),
            unknown=len(unknown),
            fills_after_book=fills,
            book_seq=book_seq,
        ),
    )
    return unknown
