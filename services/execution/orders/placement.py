"""Placing one queued order and settling its outcome, including resolving an unknown one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from common import oplog, wire
from common.clock import wall_ns
from common.enums import OpsEvent, VenueRejectReason
from common.log import kv
from common.metrics import STAGE_LATENCY, TICK_TO_ORDER
from services.execution.metrics import ORDERS, POST_LATENCY, RATE_TOKENS, VENUE_REJECTS
from services.execution.orders.order_state import (
    SUBMIT_FAILED,
    UNKNOWN,
    OrderParseError,
    TrackedOrder,
    VenueOrder,
)
from services.execution.orders.submitter import FirstPost, OrderSubmitter, SubmitOutcome, is_not_found
from services.execution.orders.tracker import OrderTracker
from services.execution.venue.order_request import order_body
from services.execution.venue.ratelimit import TokenBucket

log = logging.getLogger(__name__)

RESOLVE_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class _Post:
    """One order's POSTs: its body, and the moment the first one was written. With ``later``
    (the first POST written from the request handler) that POST's metrics wait until the task
    that awaits its answer runs: nothing but the write comes before the reply to risk."""

    __slots__ = ("body", "later", "order", "placer", "recv_ns", "req", "sent_ns")

    def __init__(
        self, placer: OrderPlacer, order: TrackedOrder, req: wire.OrderRequest, recv_ns: int, later: bool
    ) -> None:
        self.placer = placer
        self.order = order
        self.req = req
        self.recv_ns = recv_ns
        self.later = later
        self.body = order_body(req)
        self.sent_ns = 0

    def on_send(self) -> None:
        """Right before the first POST's bytes are written."""
        if self.sent_ns:
            return
        self.sent_ns = self.order.sent_ns = self.order.last_post_ns = wall_ns()
        self.placer.posts_in_flight += 1
        if not self.later:
            self.observe()

    def observe(self) -> None:
        placer, sent_ns = self.placer, self.sent_ns
        tick_recv_ns = self.req.intent.tick_recv_ns
        if tick_recv_ns:
            placer.tick_to_order.observe(max(0, sent_ns - tick_recv_ns) / 1e9)
        placer.exec_submit.observe((sent_ns - self.recv_ns) / 1e9)
        placer.submitted.inc()


class OrderPlacer:
    def __init__(
        self,
        submitter: OrderSubmitter,
        bucket: TokenBucket,
        tracker: OrderTracker,
        spawn: Spawn,
        venue: str,
        service_name: str,
        settle_s: float,
    ) -> None:
        self.submitter = submitter
        self.bucket = bucket
        self.tracker = tracker
        self._spawn = spawn
        self.settle_s = settle_s  # how long an unanswered POST may still land
        # asked right before each POST is written: a reason the order may not go out, or ""
        self.may_send: Callable[[TrackedOrder], str] = lambda order: ""
        self.posts_in_flight = 0  # POSTs written and not answered yet
        self.tick_to_order = TICK_TO_ORDER.labels(venue)
        self.exec_submit = STAGE_LATENCY.labels(service_name, "exec_submit")
        self._venue_ack = STAGE_LATENCY.labels(service_name, "venue_ack")
        self.submitted = ORDERS.labels("submitted")

    def place_now(self, order: TrackedOrder, req: wire.OrderRequest, recv_ns: int) -> None:
        """Place ``order``: its first POST is written before this returns when it can go at once
        (``OrderSubmitter.start``: journal, rate token, gate, write), so the caller's reply to risk
        and everything else come after the order is on the wire; the rest runs in a task."""
        post = _Post(self, order, req, recv_ns, later=True)
        first = self.submitter.start(
            order.client_order_id, post.body, post.on_send, lambda: self.may_send(order)
        )
        self._spawn(self.place(order, req, recv_ns, post, first))

    async def place(
        self,
        order: TrackedOrder,
        req: wire.OrderRequest,
        recv_ns: int,
        post: _Post | None = None,
        first: FirstPost | None = None,
    ) -> None:
        post = post or _Post(self, order, req, recv_ns, later=False)
        if post.later:
            post.later = False
            if post.sent_ns:
                post.observe()  # the first POST went out in place_now: its metrics only now
        try:
            outcome = await self.submitter.submit(
                order.client_order_id,
                post.body,
                req.intent.deadline_ns,
                post.on_send,
                lambda: self.may_send(order),
                first,
            )
        except Exception as exc:  # a bug must not leave the order stuck in pending_submit
            log.exception("order submit failed unexpectedly", extra=kv(coid=order.client_order_id))
            outcome = SubmitOutcome(
                "unknown", None, f"submit error: {type(exc).__name__}", 1, last_post_ns=wall_ns()
            )
        finally:
            if post.sent_ns:
                self.posts_in_flight -= 1
        sent_ns = post.sent_ns
        if sent_ns:
            oplog.order_line(
                OpsEvent.ORDER_SENT,
                symbol=order.symbol,
                side=order.side,
                qty=order.qty,
                price=order.limit_px,
                client_order_id=order.client_order_id,
                strategy=order.strategy,
                outcome=outcome.kind,
                posts=outcome.posts,
            )
        if sent_ns and outcome.kind == "placed" and not outcome.adopted:
            rtt = (wall_ns() - sent_ns) / 1e9
            self._venue_ack.observe(rtt)
            POST_LATENCY.observe(rtt)
        RATE_TOKENS.set(self.bucket.tokens)
        self._settle(order, outcome)

    def _settle(self, order: TrackedOrder, outcome: SubmitOutcome) -> None:
        now = wall_ns()
        if outcome.kind == "placed" and outcome.order is not None:
            try:
                snap = VenueOrder.from_json(outcome.order)
            except OrderParseError as exc:
                outcome = SubmitOutcome(
                    "unknown",
                    None,
                    f"unreadable venue reply: {exc}",
                    outcome.posts,
                    last_post_ns=outcome.last_post_ns,
                )
            else:
                ORDERS.labels("acked").inc()
                self.tracker.apply(snap, "submitted", now)
                return
        if outcome.kind == "rejected":
            ORDERS.labels("rejected").inc()  # its final update below is the log line
            if outcome.venue_status:
                VENUE_REJECTS.labels(VenueRejectReason.of_status(outcome.venue_status).value).inc()
            if order.mark(SUBMIT_FAILED, outcome.reason):
                self.tracker.emit_update(order, "submit_failed", now)
            return
        log.error(
            "order outcome unknown, resolving", extra=kv(coid=order.client_order_id, reason=outcome.reason)
        )
        order.last_post_ns = outcome.last_post_ns or now
        if order.mark(UNKNOWN, outcome.reason):
            self.tracker.emit_update(order, "submitted", now)
        self._spawn(self.resolve(order))

    async def resolve(self, order: TrackedOrder) -> None:
        """Find out whether an order with an unknown submit outcome exists at the venue.

        A 404 counts as "not placed" only once ``settle_s`` have passed since the last POST was
        written: before that the POST may still be on its way into the venue."""
        for delay in RESOLVE_DELAYS_S:
            await asyncio.sleep(delay)
            if order.status != UNKNOWN:
                return  # the stream or a reconcile already told us
            if await self.look_up_unknown(order):
                return
        log.error(
            "order outcome still unknown (reconciles keep looking)", extra=kv(coid=order.client_order_id)
        )

    async def look_up_unknown(self, order: TrackedOrder) -> bool:
        """One lookup of an UNKNOWN order; True once its outcome is settled."""
        found = await self.submitter.lookup(order.client_order_id)
        if isinstance(found, dict):
            self.tracker.apply_doc(found, "reconciled", wall_ns())
            return order.status != UNKNOWN
        if is_not_found(found) and wall_ns() - order.last_post_ns >= self.settle_s * 1e9:
            if order.mark(SUBMIT_FAILED, "not found at the venue"):
                ORDERS.labels("rejected").inc()
                self.tracker.emit_update(order, "submit_failed", wall_ns())
            return True
        return False
