"""Order life cycle: trading session, acknowledgement delays, pending_* steps, async rejections.

Asynchronous rejections
    Rejections are normally synchronous (HTTP 4xx, no order is created). ``arm_rejections(n,
    reason)`` (POST /sim/faults/reject) makes the next n accepted submissions (position closes
    included) answer ``pending_new`` and then fail on the stream: ``pending_new`` event, then
    ``rejected`` (status ``rejected``, ``failed_at`` set, no fill, holds released; the event data
    carries ``reason``, an extension Alpaca does not send) after ``ack_delay_ms``, or on the next
    loop turn when that is 0.

Trading session (``close_session`` / ``open_session``, POST /sim/session/close|open)
    The session is open at start and stays open unless closed by hand: the simulator matches
    around the clock, like Alpaca's 24/7 test feed. Closing it
    * expires every open ``day`` order (status ``expired``, ``expired_at``, ``expired`` event; legs
      of a day bracket too, since they share its time_in_force), which releases their holds;
      extended-hours day orders included: the close models the end of the trading day;
    * pauses stock orders without extended_hours: resting ones (gtc) stay ``new`` but do not
      match until the open. Crypto and extended-hours orders keep trading;
    * queues new stock orders without extended_hours, market orders included, as Alpaca does
      outside market hours: they pass every check, hold buying power, get status ``accepted``
      and an ``accepted`` event, and go live (``new`` event, matched, ioc/fok applied) at the next
      open, after the orders that were already resting. A queued day order is for the next
      session, so it is not expired by a close that happens while it waits (there is none: a
      close while closed does nothing).
    ``opg`` and ``cls`` stay rejected (422) in both states: the simulator runs no opening or
    closing auction. GET /v2/clock reports ``is_open`` and next_open / next_close consistent
    with it (simulator/exchange_calendar.py).

Acknowledgement delay (``SimConfig.ack_delay_ms`` > 0; 0 = every request takes effect at once)
    * submit: the reply and a ``pending_new`` event come at once; after the delay the order is
      acknowledged (``new``, or ``accepted`` while the session is closed) and only then can fill.
    * cancel: ``pending_cancel`` (status, event, ``cancel_requested_at``) at once, ``canceled``
      (with the rest of its group) after the delay. The order keeps working in between, so a
      fill may win the race: a complete fill leaves it ``filled`` and the cancel does nothing; a
      partial fill is reported (``partial_fill``) and the status stays ``pending_cancel``.
    * replace: the PATCH reply is the new order (status ``pending_new``, ``replaces`` set) and the
      old one gets ``pending_replace`` at once; after the delay the old order is ``replaced`` and
      the new one ``new``. The old order keeps working in between: partial fills are reported
      (status stays ``pending_replace``); if it fills completely, expires or is canceled first,
      the new order is ``rejected`` instead. A second cancel or replace of an order with a
      request in flight: cancel is a no-op while a cancel is pending, and 422 while a replace is
      pending (of the old order or of its not-yet-live replacement), as is replace.
    Per order the events therefore run pending_new -> new | accepted -> (partial_fill)* ->
    pending_cancel | pending_replace -> (partial_fill)* -> fill | canceled | replaced | expired;
    or pending_new -> rejected. ``reset`` drops every delayed step still to come.

Replace (PATCH) creates a new order (``replaces`` = old id) and marks the old one ``replaced``;
the new order keeps the original qty unless a qty is given (Alpaca's reported behaviour, even for
partially filled orders). Cancel of an order that is already final is a silent no-op (204), as
Alpaca does in practice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from simulator import errors
from simulator.exchange_book import OrderBook
from simulator.exchange_events import OrderEvents
from simulator.metrics import ASYNC_REJECTION, REJECTIONS
from simulator.models import ReplaceBody
from simulator.orders import SimOrder

log = logging.getLogger("simulator.exchange")

# schedule(delay_s, fn): run fn on the exchange's thread after delay_s seconds
Scheduler = Callable[[float, Callable[[], None]], object]

REPLACEABLE = frozenset({"new", "partially_filled", "held", "accepted", "pending_new"})


def loop_schedule(delay_s: float, fn: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(delay_s, fn)


class Lifecycle:
    """The steps of an order's life that depend on time: the session, delays, injected rejections.

    Owns the armed rejections, the orders queued for the next open and the reset epoch (delayed
    steps of a reset account never run); the orders themselves live in the book."""

    def __init__(
        self,
        ack_delay_ms: float,
        now_ns: Callable[[], int],
        book: OrderBook,
        events: OrderEvents,
        scheduler: Scheduler,
    ) -> None:
        self.scheduler = scheduler  # tests may swap it to decide when a delay is over
        self._ack_delay_s = ack_delay_ms / 1000
        self._now_ns = now_ns
        self._book = book
        self._events = events
        self._reject_left = 0
        self._reject_reason = ""
        self._epoch = 0
        self._queued: list[SimOrder] = []  # accepted while the session is closed, in arrival order

    def reset(self) -> None:
        """Drop the queue and every delayed step still to come; armed rejections are kept."""
        self._queued = []
        self._epoch += 1

    def queued(self) -> list[SimOrder]:
        return list(self._queued)

    def load(self, queued: list[SimOrder]) -> None:
        """Take over restored orders: the queue, and a delayed step again for each request in
        flight, a full delay from now."""
        self._queued = queued
        book = self._book
        for order in list(book.orders()):
            old = book.find_order(order.replaces) if order.swap_pending and order.replaces else None
            if old is not None:
                prior = "held" if old.role == "stop_loss" and not old.triggered else "new"
                if old.filled_qty:
                    prior = "partially_filled"
                self._later(lambda o=old, n=order, p=prior: self._finish_replace(o, n, p), self._ack_delay_s)
            elif order.status == "pending_new" and order.parent is None:
                self._later(lambda o=order: self._on_ack(o), self._ack_delay_s)
            elif order.status == "pending_cancel":
                self._later(lambda o=order: self._cancel_with_group(o), self._ack_delay_s)

    # ---- session and injected rejections -------------------------------------------------

    def close_session(self) -> list[SimOrder]:
        """End the trading day: expire every open day order; returns them (none if already closed)."""
        if not self._book.session_open:
            return []
        self._book.set_session_open(False)
        self._events.changed()
        now = self._now_ns()
        expired = []
        for order in list(self._book.orders()):
            # a replacement still waiting for its swap is decided at the swap (queued for the next day)
            if order.terminal or order.time_in_force != "day" or order.swap_pending:
                continue
            self._book.withdraw(order)
            order.expired_ns = now
            self._book.set_status(order, "expired")
            self._events.emit("expired", order)
            expired.append(order)
        return expired

    def open_session(self) -> list[SimOrder]:
        """Start a trading day: resting stock orders match again, then queued orders go live."""
        if self._book.session_open:
            return []
        self._book.set_session_open(True)
        self._events.changed()
        self._book.match_all()
        queued, self._queued = self._queued, []
        released = []
        for order in queued:
            if order.status == "accepted":  # not canceled, replaced or pending a change meanwhile
                self._go_live(order)
                released.append(order)
        return released

    def arm_rejections(self, count: int, reason: str) -> None:
        """The next ``count`` accepted submissions are rejected asynchronously (0 disarms)."""
        self._reject_left, self._reject_reason = count, reason

    @property
    def rejections_armed(self) -> int:
        return self._reject_left

    # ---- acknowledgement -----------------------------------------------------------------

    def admit(self, root: SimOrder) -> None:
        """A new order passed every check: reject it later (armed), ack it later, or ack it now."""
        if self._reject_left > 0:
            self._reject_left -= 1
            reason = self._reject_reason
            self._book.set_status(root, "pending_new")
            self._events.emit("pending_new", root)
            self._later(lambda: self._reject(root, reason), self._ack_delay_s)
        elif self._ack_delay_s > 0:
            self._book.set_status(root, "pending_new")
            self._events.emit("pending_new", root)
            self._later(lambda: self._on_ack(root), self._ack_delay_s)
        else:
            self._acknowledge(root)

    def _later(self, step: Callable[[], None], delay_s: float) -> None:
        """Run ``step`` after ``delay_s`` unless the account is reset before."""
        epoch = self._epoch

        def run() -> None:
            if epoch != self._epoch:
                return
            try:
                step()
            except Exception:
                log.exception("delayed order step failed")

        self.scheduler(delay_s, run)

    def _on_ack(self, order: SimOrder) -> None:
        if order.status == "pending_new":  # else canceled, replaced or expired while pending
            self._acknowledge(order)

    def _acknowledge(self, order: SimOrder) -> None:
        """The venue takes the order: live now, or queued as ``accepted`` until the session opens."""
        if not self._book.trades_now(order):
            self._book.set_status(order, "accepted")
            self._events.emit("accepted", order)
            self._queued.append(order)
            return
        self._go_live(order)

    def _go_live(self, order: SimOrder) -> None:
        self._book.set_status(order, "new")
        self._events.emit("new", order)
        self._book.activate(order)
        if order.order_class == "oco":
            for leg in order.legs:
                if not leg.active and not leg.terminal:
                    self._book.activate(leg)

    def _reject(self, order: SimOrder, reason: str) -> None:
        """Reject an accepted order after the fact, with the rest of its group."""
        if order.terminal:
            return
        now = self._now_ns()
        for member in (order, *order.legs):
            if member.terminal:
                continue
            self._book.withdraw(member)
            member.failed_ns = now
            self._book.set_status(member, "rejected")
            self._events.emit("rejected", member, reason=reason)
        REJECTIONS.labels(ASYNC_REJECTION).inc()
        log.info("order rejected asynchronously", extra={"fields": {"order_id": order.id, "reason": reason}})

    # ---- cancel / replace ----------------------------------------------------------------

    def cancel(self, order_id: str) -> SimOrder:
        order = self._book.get_order(order_id)
        if order.terminal or order.cancel_requested_ns is not None:
            return order
        if order.swap_pending or order.status == "pending_replace":
            raise errors.unprocessable("order is pending replace; cancel the replacement once it is live")
        order.cancel_requested_ns = self._now_ns()
        if self._ack_delay_s > 0:
            self._book.set_status(order, "pending_cancel")
            self._events.emit("pending_cancel", order)
            self._later(lambda: self._cancel_with_group(order), self._ack_delay_s)
        else:
            self._cancel_with_group(order)
        return order

    def _cancel_with_group(self, order: SimOrder) -> None:
        if order.terminal:  # a fill won the race against a pending cancel
            return
        self._book.cancel(order)
        for member in self._book.group(order):
            self._book.cancel(member)

    def cancel_all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for order in list(self._book.orders()):
            if order.terminal or order.parent is not None:
                continue
            try:
                self.cancel(order.id)
            except errors.ApiError as exc:
                out.append({"id": order.id, "status": exc.status, "body": exc.body()})
                continue
            out.append({"id": order.id, "status": 200, "body": order.to_json()})
        return out

    def replace(self, order_id: str, body: ReplaceBody) -> SimOrder:
        old = self._book.get_order(order_id)
        if old.status not in REPLACEABLE or old.swap_pending:
            raise errors.unprocessable("unable to replace order in current state")
        changes: dict[str, Any] = {}
        if body.qty is not None and body.qty != old.qty:
            changes["qty"] = body.qty
        if body.time_in_force is not None and body.time_in_force != old.time_in_force:
            changes["time_in_force"] = body.time_in_force
        if body.limit_price is not None:
            if old.type not in ("limit", "stop_limit"):
                raise errors.validation(f"limit_price is not applicable to {old.type} orders")
            if body.limit_price != old.limit_price:
                changes["limit_price"] = body.limit_price
        if body.stop_price is not None:
            if old.type not in ("stop", "stop_limit"):
                raise errors.validation(f"stop_price is not applicable to {old.type} orders")
            if body.stop_price != old.stop_price:
                changes["stop_price"] = body.stop_price
        if body.trail is not None:
            if old.type != "trailing_stop":
                raise errors.validation("trail is only applicable to trailing_stop orders")
            field = "trail_price" if old.trail_price is not None else "trail_percent"
            if body.trail != getattr(old, field):
                changes[field] = body.trail
        if not changes and body.client_order_id is None:
            raise errors.forbidden("order parameters are not changed")
        coid = body.client_order_id or str(uuid.uuid4())
        new = self._book.new_order(
            self._book.asset(old.symbol),
            old.side,
            old.type,
            changes.get("time_in_force", old.time_in_force),
            changes.get("qty", old.qty),
            old.notional,
            changes.get("limit_price", old.limit_price),
            changes.get("stop_price", old.stop_price),
            changes.get("trail_price", old.trail_price),
            changes.get("trail_percent", old.trail_percent),
            old.extended_hours,
            old.order_class,
            coid,
        )
        prior_status = old.status
        if self._ack_delay_s <= 0:
            self._swap(old, new, prior_status)
            return new
        new.replaces, new.swap_pending, new.active = old.id, True, False
        self._book.set_status(new, "pending_new")
        self._book.set_status(old, "pending_replace")
        self._events.emit("pending_replace", old)
        self._later(lambda: self._finish_replace(old, new, prior_status), self._ack_delay_s)
        return new

    def _finish_replace(self, old: SimOrder, new: SimOrder, prior_status: str) -> None:
        if new.terminal:
            return
        new.swap_pending = False
        if old.status != "pending_replace":  # filled, expired or canceled first: too late to replace
            self._reject(new, "order was no longer replaceable")
            return
        self._swap(old, new, prior_status)

    def _swap(self, old: SimOrder, new: SimOrder, prior_status: str) -> None:
        """``new`` takes the place of ``old`` (in its group too); old becomes ``replaced``."""
        new.replaces, new.role, new.parent, new.hold_px = old.id, old.role, old.parent, old.hold_px
        new.legs = old.legs
        for leg in new.legs:
            leg.parent = new
        if old.parent is not None:
            siblings = old.parent.legs
            siblings[siblings.index(old)] = new
        old.legs = []
        self._book.withdraw(old)
        now = self._now_ns()
        old.status, old.replaced_by, old.replaced_ns, old.updated_ns = "replaced", new.id, now, now
        if not old.active:  # a leg waiting for its entry
            new.status, new.active = "held", False
            self._events.emit("replaced", old)
        elif prior_status == "held" and not old.triggered:  # an armed stop-loss: held until triggered
            new.status, new.active = "held", True
            self._events.emit("replaced", old)
            self._book.activate(new)
        else:
            new.active = True
            self._events.emit("replaced", old)
            self._acknowledge(new)
