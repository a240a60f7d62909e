"""The execution service: approved orders to Alpaca, order events and fills back on the sequenced path.

Flow: ``handle(OrderRequest)`` answers ``OrderAck`` as soon as the order is queued, then a task places
it (``submitter``: never twice, lookups instead of blind retries). Venue news arrives on trade_updates
(``trade_stream``) and from reconciliations (start, every stream reconnect, unknown submit outcomes);
all of it goes through the per-order state machine (``order_state``), which turns it into
OrderUpdate / Fill events numbered by one gap-free seq (``event_log``) and published on ``ex.``.

Startup snapshot (venue positions at start + fills since = the ``positions`` book): the orders
are read (open, and the newest closed), then the positions, then the orders again. The snapshot is
kept only if no order's filled_qty moved between the two order reads and no order appeared with
fills in between; otherwise a fill may have landed before or after the positions read and nobody
can tell which, so it is taken again. With a stable snapshot every fill is either in the start
positions (open orders are tracked with their filled_qty as a baseline; closed ones are retired)
or arrives later as a Fill (stream, or a reconcile, which also adopts closed orders it has never
seen). The trade stream starts only after that. Remaining limits: an order created and closed by
someone else while the stream is down that has dropped out of the newest ``CLOSED_SCAN`` closed
orders by the next reconcile, and more than ``OPEN_SCAN`` open orders, are not seen.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Coroutine
from typing import Any

import orjson

from common import fixed, topics, wire
from common.clock import wall_ns
from common.config import LIVE_BASE_URL, Settings
from common.log import kv
from common.metrics import STAGE_LATENCY, TICK_TO_ORDER
from common.order_events import TERMINAL_STATUSES
from common.positions import PositionBook
from common.service import Service
from services.execution.event_log import MAX_REPLAY, EventLog, OrderEvent
from services.execution.journal import InMemoryJournal, OrderJournal
from services.execution.metrics import ORDERS, POST_LATENCY, RATE_TOKENS, RECONCILES
from services.execution.order_state import (
    KNOWN_STATUSES,
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
SNAPSHOT_TRIES = 5
OPEN_SCAN = 500  # open orders read per reconcile (Alpaca's maximum page)
CLOSED_SCAN = 100  # newest closed orders read per reconcile
SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.]{0,14}(/[A-Z]{2,10})?$")  # AAPL, BRK.B, BTC/USD


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
    if not SYMBOL_RE.match(it.symbol):
        return f"symbol {it.symbol[:20]!r} is not a valid symbol"
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
        self.settle_s = max(2 * ex.http_timeout_s, 2.0)  # how long an unanswered POST may still land
        self._reconciling = False
        self._reconcile_again = False
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
        except (RestError, ValueError) as exc:
            self.last_reconcile_error = str(exc)
            log.error("venue not reachable at start, orders refused until it is", extra=kv(error=str(exc)))
            self._spawn(self._retry_startup())

    async def stop(self) -> None:
        await self.stream.stop()
        in_flight = [o.client_order_id for o in self.orders.values() if o.status in (SUBMITTING, UNKNOWN)]
        if in_flight:  # a POST may land after we are gone: the next start adopts it by reconcile
            log.warning("stopping with order submits unresolved", extra=kv(coids=in_flight[:50]))
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.rest.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _orders_view(self) -> dict[str, VenueOrder]:
        """Open orders plus the newest closed ones, by venue order id (unreadable ones skipped)."""
        docs = await self.rest.list_orders("open", OPEN_SCAN)
        docs += await self.rest.list_orders("closed", CLOSED_SCAN, direction="desc")
        view: dict[str, VenueOrder] = {}
        for doc in docs:
            try:
                snap = VenueOrder.from_json(doc)
            except OrderParseError as exc:
                log.warning("unreadable venue order skipped", extra=kv(error=str(exc)))
                continue
            view[snap.venue_order_id] = snap
        return view

    async def _stable_snapshot(self) -> tuple[list[dict[str, Any]], dict[str, VenueOrder]]:
        """Positions and orders with no fill between the two order reads (see the module doc)."""
        for attempt in range(1, SNAPSHOT_TRIES + 1):
            before = await self._orders_view()
            positions = await self.rest.positions()
            after = await self._orders_view()
            for vid, snap in before.items():
                if vid not in after and snap.status not in TERMINAL_STATUSES:  # closed meanwhile
                    found = await self.submitter.lookup(snap.client_order_id)
                    if not isinstance(found, dict):
                        raise RestError(f"order {snap.client_order_id} vanished from the venue's lists")
                    after[vid] = VenueOrder.from_json(found)
            moved = [
                s.client_order_id
                for vid, s in after.items()
                if s.filled_qty != (before[vid].filled_qty if vid in before else 0)
            ]
            if not moved:
                return positions, after
            log.warning("fills during the startup snapshot, taking it again", extra=kv(coids=moved[:20]))
            await asyncio.sleep(0.05 * attempt)
        raise RestError(f"venue kept filling during {SNAPSHOT_TRIES} startup snapshots")

    async def _startup_reconcile(self) -> None:
        RECONCILES.labels("startup").inc()
        docs, orders = await self._stable_snapshot()
        now = wall_ns()
        start_positions = [venue_position(d, now) for d in docs]  # may raise: nothing committed yet
        self.start_positions = start_positions
        self.positions = PositionBook()
        for p in start_positions:
            self.positions.get(p.symbol).set_from_venue(p.qty, p.avg_px)
        for snap in orders.values():
            if snap.status in TERMINAL_STATUSES:
                self._retired_coids.add(snap.client_order_id)  # its fills are in the start positions
            else:
                self._apply(snap, "reconciled", now, baseline=True)
        self.reconciles += 1
        self.last_reconcile_error = ""
        self.ready = True
        self.stream.start()  # only now: every update it brings is news relative to the snapshot
        log.info(
            "execution ready", extra=kv(positions=len(self.start_positions), open_orders=self.open_orders())
        )

    async def _retry_startup(self) -> None:
        while not self.ready:
            await asyncio.sleep(STARTUP_RETRY_S)
            try:
                await self._startup_reconcile()
            except (RestError, ValueError) as exc:
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
        ORDERS.labels("queued").inc()
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

        try:
            outcome = await self.submitter.submit(
                order.client_order_id, order_body(req), req.intent.deadline_ns, on_send
            )
        except Exception as exc:  # a bug must not leave the order stuck in pending_submit
            log.exception("order submit failed unexpectedly", extra=kv(coid=order.client_order_id))
            outcome = SubmitOutcome(
                "unknown", None, f"submit error: {type(exc).__name__}", 1, last_post_ns=wall_ns()
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
        order.last_post_ns = outcome.last_post_ns or now
        if order.mark(UNKNOWN, outcome.reason):
            self._emit_update(order, "submitted", now)
        self._spawn(self._resolve(order))

    async def _resolve(self, order: TrackedOrder) -> None:
        """Find out whether an order with an unknown submit outcome exists at the venue.

        A 404 counts as "not placed" only once ``settle_s`` have passed since the last POST was
        written: before that the POST may still be on its way into the venue."""
        for delay in RESOLVE_DELAYS_S:
            await asyncio.sleep(delay)
            if order.status != UNKNOWN:
                return  # the stream or a reconcile already told us
            if await self._look_up_unknown(order):
                return
        log.error(
            "order outcome still unknown (reconciles keep looking)", extra=kv(coid=order.client_order_id)
        )

    async def _look_up_unknown(self, order: TrackedOrder) -> bool:
        """One lookup of an UNKNOWN order; True once its outcome is settled."""
        found = await self.submitter.lookup(order.client_order_id)
        if isinstance(found, dict):
            self._apply_doc(found, "reconciled", wall_ns())
            return order.status != UNKNOWN
        if is_not_found(found) and wall_ns() - order.last_post_ns >= self.settle_s * 1e9:
            if order.mark(SUBMIT_FAILED, "not found at the venue"):
                ORDERS.labels("rejected").inc()
                self._emit_update(order, "submit_failed", wall_ns())
            return True
        return False

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
        await self._reconcile_logged("stream_connect")

    def _request_reconcile(self, trigger: str) -> None:
        """Run a reconcile soon; requests while one runs fold into one more run after it."""
        if self._reconciling:
            self._reconcile_again = True
            return
        self._spawn(self._reconcile_logged(trigger))

    async def _reconcile_logged(self, trigger: str) -> None:
        try:
            await self._reconcile(trigger)
        except RestError as exc:
            self.last_reconcile_error = str(exc)
            log.error("reconcile failed", extra=kv(trigger=trigger, error=str(exc)))

    async def _reconcile(self, trigger: str) -> None:
        """Open and newest closed orders from the venue (adopting any never seen), then a lookup of
        every tracked open order they did not list. One at a time; requests meanwhile coalesce."""
        if self._reconciling:
            self._reconcile_again = True
            return
        self._reconciling = True
        try:
            while True:
                self._reconcile_again = False
                await self._reconcile_once(trigger)
                if not self._reconcile_again:
                    return
        finally:
            self._reconciling = False

    async def _reconcile_once(self, trigger: str) -> None:
        RECONCILES.labels(trigger).inc()
        view = await self._orders_view()
        seen: set[str] = set()
        # in venue time order: a replaced order's own fills and end come before its replacement's
        for snap in sorted(view.values(), key=lambda s: s.updated_ns):
            self._apply(snap, "reconciled", wall_ns())
            seen.add(snap.client_order_id)
        for order in list(self.orders.values()):
            if order.terminal or order.client_order_id in seen or order.status == SUBMITTING:
                continue
            if order.status == UNKNOWN:
                await self._look_up_unknown(order)
                continue
            found = await self.submitter.lookup(order.client_order_id)
            if isinstance(found, dict):
                self._apply_doc(found, "reconciled", wall_ns())
        self.reconciles += 1
        self.last_reconcile_error = ""

    def _on_trade_update(self, data: dict[str, Any]) -> None:
        """One trade_updates payload. If it cannot be used, a reconcile fetches the order's state
        instead, so a fill in a broken frame is still counted (once: by cumulative quantity)."""
        try:
            self._apply_trade_update(data)
        except (OrderParseError, ValueError) as exc:
            self.stream.bad_frames += 1
            log.error(
                "unusable trade update, reconciling instead",
                extra=kv(event=str(data.get("event"))[:40], error=str(exc)[:300]),
            )
            self._request_reconcile("bad_update")

    def _apply_trade_update(self, data: dict[str, Any]) -> None:
        recv = wall_ns()
        doc = data.get("order")
        if not isinstance(doc, dict):
            raise OrderParseError("trade update without an order")
        snap = VenueOrder.from_json(doc)
        event = str(data.get("event", ""))
        exec_qty, exec_px = _optional_nanos(data, "qty"), _optional_nanos(data, "price")
        pos = _optional_nanos(data, "position_qty")
        try:
            venue_ns = parse_ts_ns(data.get("timestamp")) or snap.updated_ns
        except OrderParseError:
            venue_ns = snap.updated_ns
        self._apply(
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

    def _apply_doc(self, doc: dict[str, Any], event: str, recv_ns: int, baseline: bool = False) -> str:
        try:
            snap = VenueOrder.from_json(doc)
        except OrderParseError as exc:
            log.warning("unreadable venue order skipped", extra=kv(error=str(exc)))
            return ""
        self._apply(snap, event, recv_ns, baseline=baseline)
        return snap.client_order_id

    def _tracked_for(self, snap: VenueOrder, baseline: bool) -> TrackedOrder | None:
        order = self.orders.get(snap.client_order_id)
        if order is not None:
            return order
        if snap.client_order_id in self._retired_coids:
            return None  # finished and forgotten (or closed before our start): already counted
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
        """Forget the oldest finished orders beyond the cap (down to 90% of it, so the scan is
        amortized over many orders); their ids stay refused and are never adopted again."""
        if len(self.orders) <= self._max_tracked:
            return
        excess = len(self.orders) - self._max_tracked * 9 // 10
        for coid in [c for c, o in self.orders.items() if o.terminal][:excess]:
            order = self.orders.pop(coid)
            self._retired_coids.add(coid)
            self._coid_by_venue_id.pop(order.venue_order_id, None)


def _optional_nanos(data: dict[str, Any], key: str) -> int | None:
    """A per-execution number of a trade update; None when absent or unreadable (the cumulative
    fields of the order still carry the fill, so a bad one costs precision, never the fill)."""
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        return fixed.to_fixed(value)
    except ValueError:
        log.warning("unreadable trade update field ignored", extra=kv(field=key, value=str(value)[:40]))
        return None


SERVICE_CLASS = ExecutionService
