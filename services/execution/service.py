"""The execution service: approved orders to Alpaca, order events and fills back on the sequenced path.

Flow: ``handle(OrderRequest)`` answers ``OrderAck`` as soon as the order is queued, then a task places
it (``submitter``: never twice, lookups instead of blind retries). Venue news arrives on trade_updates
(``trade_stream``) and from reconciliations (start, every stream reconnect, unknown submit outcomes);
all of it goes through the per-order state machine (``order_state``), which turns it into
OrderUpdate / Fill events numbered by one gap-free seq (``event_log``) and published on ``ex.``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

import orjson

from common import fixed, topics, wire
from common.clock import wall_ns
from common.config import LIVE_BASE_URL, Settings
from common.log import kv
from common.metrics import STAGE_LATENCY, TICK_TO_ORDER
from common.positions import PositionBook
from common.service import Service
from services.execution.event_log import MAX_REPLAY, EventLog, OrderEvent
from services.execution.journal import InMemoryJournal, OrderJournal
from services.execution.metrics import ORDERS, POST_LATENCY, RATE_TOKENS, RECONCILES
from services.execution.order_state import (
    SUBMIT_FAILED,
    SUBMITTING,
    UNKNOWN,
    OrderParseError,
    TrackedOrder,
    VenueOrder,
    parse_ts_ns,
)
from services.execution.ratelimit import TokenBucket
from services.execution.rest_client import AlpacaRest, RestError
from services.execution.submitter import OrderSubmitter, SubmitOutcome, is_not_found
from services.execution.trade_stream import TradeStream

log = logging.getLogger(__name__)

STARTUP_RETRY_S = 2.0
RESOLVE_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class LiveTradingRefused(SystemExit):
    pass


def check_live_guard(settings: Settings) -> None:
    """Refuse to trade real money unless alpaca.live is explicitly true (config checks too)."""
    live_url = settings.trading_base_url().rstrip("/") == LIVE_BASE_URL
    if (settings.venue == "live" or live_url) and not settings.alpaca.live:
        raise LiveTradingRefused("execution refuses to start: LIVE venue without alpaca.live=true")


def order_body(req: wire.OrderRequest) -> dict[str, Any]:
    """The POST /v2/orders JSON for an approved order; prices and qty as decimal strings."""
    it = req.intent
    body: dict[str, Any] = {
        "symbol": it.symbol,
        "qty": fixed.to_str(it.qty),
        "side": it.side,
        "type": it.order_type,
        "time_in_force": it.tif,
        "client_order_id": req.client_order_id,
    }
    if it.order_type in ("limit", "stop_limit"):
        body["limit_price"] = fixed.to_str(it.limit_px)
    if it.order_type in ("stop", "stop_limit"):
        body["stop_price"] = fixed.to_str(it.stop_px)
    return body


def invalid_request(req: wire.OrderRequest) -> str:
    """A reason the request cannot become an order, or "" when it can."""
    it = req.intent
    if not req.client_order_id or len(req.client_order_id) > 128:
        return "client_order_id must be 1-128 characters"
    if not it.symbol:
        return "symbol is empty"
    if it.qty <= 0:
        return "qty must be positive"
    if it.order_type in ("limit", "stop_limit") and it.limit_px <= 0:
        return f"{it.order_type} order needs a positive limit price"
    if it.order_type in ("stop", "stop_limit") and it.stop_px <= 0:
        return f"{it.order_type} order needs a positive stop price"
    return ""


def venue_position(doc: dict[str, Any], ts_ns: int) -> wire.Position:
    qty = fixed.to_fixed(doc.get("qty") or 0)
    if doc.get("side") == "short" and qty > 0:
        qty = -qty
    return wire.Position(
        symbol=str(doc.get("symbol", "")),
        qty=qty,
        avg_px=fixed.to_fixed(doc.get("avg_entry_price") or 0),
        realized_pnl=0,  # Alpaca reports no realized P&L per position
        ts_ns=ts_ns,
    )


class ExecutionService(Service):
    name = "execution"

    def __init__(self, settings: Settings, journal: OrderJournal | None = None) -> None:
        check_live_guard(settings)
        super().__init__(settings)
        ex = settings.execution
        key_id, secret = settings.credentials()
        self.events = EventLog(ex.event_log_size)
        self.journal: OrderJournal = journal if journal is not None else InMemoryJournal(ex.event_log_size)
        self.bucket = TokenBucket(ex.rate_limit_per_min, ex.rate_limit_burst)
        self.rest = AlpacaRest(settings.trading_base_url(), key_id, secret, self.bucket, ex.http_timeout_s)
        self.submitter = OrderSubmitter(self.rest, self.journal)
        self.stream = TradeStream(
            settings.trade_stream_url(),
            key_id,
            secret,
            self._on_trade_update,
            self._on_stream_connected,
            ex.reconnect_min_s,
            ex.reconnect_max_s,
        )
        self.orders: dict[str, TrackedOrder] = {}
        self._coid_by_venue_id: dict[str, str] = {}
        self._retired_coids: set[str] = set()  # pruned from ``orders`` but never to be sent again
        self._max_tracked = ex.event_log_size
        self.ready = False
        self.start_positions: list[wire.Position] = []
        # venue positions at start plus every Fill since: consistent with events.last_seq at any moment
        self.positions = PositionBook()
        self.reconciles = 0
        self.last_reconcile_error = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick_to_order = TICK_TO_ORDER.labels(settings.venue)
        self._risk_to_exec = STAGE_LATENCY.labels(self.name, "risk_to_exec")
        self._exec_submit = STAGE_LATENCY.labels(self.name, "exec_submit")
        self._venue_ack = STAGE_LATENCY.labels(self.name, "venue_ack")

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        venue, url = self.settings.venue, self.settings.trading_base_url()
        banner = "LIVE MONEY" if venue == "live" else venue
        log.warning(f"execution trades on venue={venue} ({banner}) at {url}", extra=kv(venue=venue, url=url))
        await self.rest.open()
        try:
            await self._startup_reconcile()
        except RestError as exc:
            self.last_reconcile_error = str(exc)
            log.error("venue not reachable at start, orders refused until it is", extra=kv(error=str(exc)))
            self._spawn(self._retry_startup())
        self.stream.start()

    async def stop(self) -> None:
        await self.stream.stop()
        for t in list(self._tasks):
            t.cancel()
        await self.rest.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _startup_reconcile(self) -> None:
        now = wall_ns()
        self.start_positions = [venue_position(d, now) for d in await self.rest.positions()]
        self.positions = PositionBook()
        for p in self.start_positions:
            self.positions.get(p.symbol).set_from_venue(p.qty, p.avg_px)
        await self._reconcile("startup")
        self.ready = True
        log.info(
            "execution ready", extra=kv(positions=len(self.start_positions), open_orders=self.open_orders())
        )

    async def _retry_startup(self) -> None:
        while not self.ready:
            await asyncio.sleep(STARTUP_RETRY_S)
            try:
                await self._startup_reconcile()
            except RestError as exc:
                self.last_reconcile_error = str(exc)

    # ---- requests ---------------------------------------------------------------------------

    def handle(self, msg: Any) -> Any:
        if isinstance(msg, wire.OrderRequest):
            return self._on_order_request(msg)
        if isinstance(msg, wire.Replay):
            events = self.events.after(msg.after_seq, MAX_REPLAY)
            detail = f"{len(events)} events"
            if events and events[0].seq > msg.after_seq + 1:
                detail += f"; events {msg.after_seq + 1}..{events[0].seq - 1} were evicted"
            return wire.Reply(ok=True, detail=detail, data=wire.encode_list(events))
        if isinstance(msg, wire.CancelRequest):
            return self._cancel(msg)
        return super().handle(msg)

    def _on_order_request(self, req: wire.OrderRequest) -> wire.OrderAck:
        recv = wall_ns()
        if req.risk_ns:
            self._risk_to_exec.observe(max(0, recv - req.risk_ns) / 1e9)
        coid = req.client_order_id
        if coid in self.orders or coid in self._retired_coids:
            ORDERS.labels("refused").inc()
            return wire.OrderAck(
                client_order_id=coid, accepted=False, detail="duplicate client_order_id", ts_ns=recv
            )
        reason = "" if self.ready else "not_ready: venue reconciliation pending"
        reason = reason or invalid_request(req)
        if not reason and req.intent.deadline_ns and recv > req.intent.deadline_ns:
            reason = "expired"
        it = req.intent
        order = TrackedOrder(
            client_order_id=coid,
            symbol=it.symbol,
            side=it.side,
            qty=it.qty,
            limit_px=it.limit_px,
            strategy=it.strategy,
            intent_signal_ns=it.signal_ns,
            tick_recv_ns=it.tick_recv_ns,
        )
        self.orders[coid] = order
        self._prune()
        if reason:
            ORDERS.labels("refused").inc()
            order.mark(SUBMIT_FAILED, reason)
            self._emit_update(order, "submit_failed", recv)
            return wire.OrderAck(client_order_id=coid, accepted=False, detail=reason, ts_ns=wall_ns())
        self._spawn(self._place(order, req, recv))
        return wire.OrderAck(client_order_id=coid, accepted=True, detail="queued", ts_ns=wall_ns())

    async def _place(self, order: TrackedOrder, req: wire.OrderRequest, recv_ns: int) -> None:
        sent_ns = 0

        def on_send() -> None:
            nonlocal sent_ns
            if sent_ns:
                return
            sent_ns = wall_ns()
            if req.intent.tick_recv_ns:
                self._tick_to_order.observe(max(0, sent_ns - req.intent.tick_recv_ns) / 1e9)
            self._exec_submit.observe((sent_ns - recv_ns) / 1e9)
            ORDERS.labels("submitted").inc()

        outcome = await self.submitter.submit(
            order.client_order_id, order_body(req), req.intent.deadline_ns, on_send
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
                outcome = SubmitOutcome("unknown", None, f"unreadable venue reply: {exc}", outcome.posts)
            else:
                ORDERS.labels("acked").inc()
                self._apply(snap, "submitted", now)
                return
        if outcome.kind == "rejected":
            ORDERS.labels("rejected").inc()
            log.warning("order not placed", extra=kv(coid=order.client_order_id, reason=outcome.reason))
            if order.mark(SUBMIT_FAILED, outcome.reason):
                self._emit_update(order, "submit_failed", now)
            return
        log.error(
            "order outcome unknown, resolving", extra=kv(coid=order.client_order_id, reason=outcome.reason)
        )
        if order.mark(UNKNOWN, outcome.reason):
            self._emit_update(order, "submitted", now)
        self._spawn(self._resolve(order))

    async def _resolve(self, order: TrackedOrder) -> None:
        """Find out whether an order with an unknown submit outcome exists at the venue."""
        for delay in RESOLVE_DELAYS_S:
            await asyncio.sleep(delay)
            if order.status != UNKNOWN:
                return  # the stream or a reconcile already told us
            found = await self.submitter.lookup(order.client_order_id)
            if isinstance(found, dict):
                self._apply_doc(found, "reconciled", wall_ns())
                return
            if is_not_found(found):
                if order.mark(SUBMIT_FAILED, "not found at the venue"):
                    ORDERS.labels("rejected").inc()
                    self._emit_update(order, "submit_failed", wall_ns())
                return
        log.error("order outcome still unknown", extra=kv(coid=order.client_order_id))

    def _cancel(self, msg: wire.CancelRequest) -> Awaitable[wire.Reply] | wire.Reply:
        if msg.all:
            return self._cancel_all()
        order = self.orders.get(msg.client_order_id)
        if order is None:
            return wire.Reply(ok=False, detail=f"unknown client_order_id {msg.client_order_id!r}")
        if order.terminal:
            return wire.Reply(ok=False, detail=f"order is already {order.status}")
        if not order.venue_order_id:
            return wire.Reply(ok=False, detail="order not yet acknowledged by the venue; retry shortly")
        return self._cancel_one(order.venue_order_id)

    async def _cancel_one(self, venue_order_id: str) -> wire.Reply:
        try:
            await self.rest.cancel_order(venue_order_id)
        except RestError as exc:
            return wire.Reply(ok=False, detail=f"cancel failed: {exc}")
        return wire.Reply(ok=True, detail="cancel requested (watch for the canceled event)")

    async def _cancel_all(self) -> wire.Reply:
        try:
            results = await self.rest.cancel_all()
        except RestError as exc:
            return wire.Reply(ok=False, detail=f"cancel_all failed: {exc}")
        return wire.Reply(
            ok=True, detail=f"cancel requested for {len(results)} orders", data=orjson.dumps(results)
        )

    # ---- control ----------------------------------------------------------------------------

    def control(self, cmd: wire.Control) -> Any:
        if cmd.cmd == "positions":
            return self._book_positions_reply()
        if cmd.cmd == "venue_positions":
            return self._positions_reply()
        if cmd.cmd == "orders":
            docs = [o.as_dict() for o in self.orders.values()]
            return wire.Reply(ok=True, detail=f"{len(docs)} orders", data=orjson.dumps(docs))
        if cmd.cmd == "cancel_all":
            return self._cancel_all()
        return None

    def _book_positions_reply(self) -> wire.Reply:
        """Positions as of ``events.last_seq`` (in ``detail``: ``as_of_seq=N``): a receiver applies
        only fills with a greater seq on top, so nothing is counted twice or missed."""
        if not self.ready:
            return wire.Reply(ok=False, detail="not ready: venue positions not loaded yet")
        now = wall_ns()
        positions = [p.to_wire(now) for p in self.positions.all()]
        return wire.Reply(
            ok=True, detail=f"as_of_seq={self.events.last_seq}", data=wire.encode_list(positions)
        )

    async def _positions_reply(self) -> wire.Reply:
        """The venue's positions right now (not sequenced with order events)."""
        try:
            docs = await self.rest.positions()
            now = wall_ns()
            positions = [venue_position(d, now) for d in docs]
        except (RestError, ValueError) as exc:
            return wire.Reply(ok=False, detail=f"positions unavailable: {exc}")
        return wire.Reply(ok=True, detail=f"{len(positions)} positions", data=wire.encode_list(positions))

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "trading_base_url": self.settings.trading_base_url(),
            "trade_stream_connected": self.stream.connected,
            "trade_stream_connects": self.stream.connects,
            "orders_tracked": len(self.orders),
            "orders_open": self.open_orders(),
            "last_event_seq": self.events.last_seq,
            "rate_limit_tokens": round(self.bucket.tokens, 2),
            "reconciles": self.reconciles,
            "last_reconcile_error": self.last_reconcile_error,
            "start_positions": {p.symbol: fixed.to_str(p.qty) for p in self.start_positions},
        }

    def heartbeat_state(self) -> str:
        if not self.ready:
            return "starting"
        return "ok" if self.stream.connected else "degraded"

    def last_event_seq(self) -> int:
        return self.events.last_seq

    def open_orders(self) -> int:
        return sum(1 for o in self.orders.values() if not o.terminal)

    # ---- venue news -------------------------------------------------------------------------

    async def _on_stream_connected(self) -> None:
        try:
            await self._reconcile("stream_connect")
        except RestError as exc:
            self.last_reconcile_error = str(exc)
            log.error("reconcile after stream connect failed", extra=kv(error=str(exc)))

    async def _reconcile(self, trigger: str) -> None:
        """Open orders from the venue, then a lookup of every tracked order it did not list."""
        RECONCILES.labels(trigger).inc()
        baseline = trigger == "startup"
        seen: set[str] = set()
        for doc in await self.rest.list_orders("open", 500):
            coid = self._apply_doc(doc, "reconciled", wall_ns(), baseline=baseline)
            if coid:
                seen.add(coid)
        for order in list(self.orders.values()):
            if order.terminal or order.client_order_id in seen or order.status == SUBMITTING:
                continue
            found = await self.submitter.lookup(order.client_order_id)
            if isinstance(found, dict):
                self._apply_doc(found, "reconciled", wall_ns())
        self.reconciles += 1
        self.last_reconcile_error = ""

    def _on_trade_update(self, data: dict[str, Any]) -> None:
        recv = wall_ns()
        doc = data.get("order")
        if not isinstance(doc, dict):
            raise OrderParseError("trade update without an order")
        snap = VenueOrder.from_json(doc)
        event = str(data.get("event", ""))
        exec_qty = fixed.to_fixed(data["qty"]) if data.get("qty") not in (None, "") else None
        exec_px = fixed.to_fixed(data["price"]) if data.get("price") not in (None, "") else None
        pos = fixed.to_fixed(data["position_qty"]) if data.get("position_qty") not in (None, "") else None
        venue_ns = parse_ts_ns(data.get("timestamp")) or snap.updated_ns
        self._apply(
            snap,
            event,
            recv,
            exec_qty=exec_qty,
            exec_px=exec_px,
            exec_id=str(data.get("execution_id") or ""),
            position_qty=pos,
            venue_ns=venue_ns,
        )

    def _apply_doc(self, doc: dict[str, Any], event: str, recv_ns: int, baseline: bool = False) -> str:
        try:
            snap = VenueOrder.from_json(doc)
        except OrderParseError as exc:
            log.warning("unreadable venue order skipped", extra=kv(error=str(exc)))
            return ""
        self._apply(snap, event, recv_ns, baseline=baseline)
        return snap.client_order_id

    def _tracked_for(self, snap: VenueOrder, baseline: bool) -> TrackedOrder:
        order = self.orders.get(snap.client_order_id)
        if order is not None:
            return order
        parent_coid = self._coid_by_venue_id.get(snap.replaces or "")
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
        if baseline:  # fills before our start are already in the venue positions: not new fills
            order.filled_qty, order.filled_avg_px = snap.filled_qty, snap.filled_avg_px
        self.orders[snap.client_order_id] = order
        self._prune()
        return order

    def _apply(
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
    ) -> None:
        order = self._tracked_for(snap, baseline)
        was_filled = order.status == "filled"
        tr = order.apply(snap, event, exec_qty=exec_qty, exec_px=exec_px, exec_id=exec_id)
        if order.venue_order_id:
            self._coid_by_venue_id[order.venue_order_id] = order.client_order_id
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
            self.positions.apply_fill(order.symbol, order.side, f.qty, f.px)
            self._publish(fill, topics.sym(topics.EX_FILL, order.symbol))
        if tr.changed:
            if order.status == "filled" and not was_filled:
                ORDERS.labels("filled").inc()
            self._emit_update(order, event, recv_ns)

    def _emit_update(self, order: TrackedOrder, event: str, recv_ns: int) -> None:
        update = wire.OrderUpdate(
            seq=0,
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
        )
        self._publish(update, topics.sym(topics.EX_UPDATE, order.symbol))

    def _publish(self, event: OrderEvent, topic: bytes) -> None:
        stamped = self.events.append(event)
        self.journal.record_event(stamped)
        self.pub.publish(topic, [stamped])

    def _prune(self) -> None:
        """Forget the oldest finished orders beyond the cap; their ids stay refused forever."""
        if len(self.orders) <= self._max_tracked:
            return
        for coid in [c for c, o in self.orders.items() if o.terminal][: len(self.orders) - self._max_tracked]:
            order = self.orders.pop(coid)
            self._retired_coids.add(coid)
            self._coid_by_venue_id.pop(order.venue_order_id, None)


SERVICE_CLASS = ExecutionService
