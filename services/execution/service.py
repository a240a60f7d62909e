"""The execution service: approved orders to Alpaca, order events and fills back on the sequenced path.

Two owners, wired here:
  * the venue gateway (``services.execution.venue``): the HTTP/1.1 pool and REST client, the order
    POST body, the trade_updates stream, the account poller, emptying the venue for a trip;
  * the order manager (``services.execution.orders``): the journal and the restore from it, the
    per-order state machine in the tracker (venue news -> OrderUpdate / Fill on one gap-free seq),
    placement (never twice), reconciliation, and the trading gate asked before every POST.
A quote's path ends here: ``handle(OrderRequest)`` -> gate -> ``placement.place`` -> journal ->
``rest_client`` POST; the venue's answer and its trade_updates come back through the tracker.
This module answers requests and controls and runs the trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

import orjson

from common import fixed, topics, wire
from common.backoff import Backoff
from common.clock import tick_age_error, wall_ns
from common.config import Settings, is_alpaca_live
from common.enums import ControlCmd, RejectReason
from common.log import kv
from common.metric_labels import LabelFold, configured_strategies, configured_symbols
from common.metrics import STAGE_LATENCY
from common.ratelog import ConditionLog
from common.service import Service
from services.execution.metrics import OPEN_ORDERS, ORDERS, STALE_BLOCKED, OrderEventCounters
from services.execution.orders.event_log import MAX_REPLAY, EventLog
from services.execution.orders.gate import OpenExposure, TradingGate
from services.execution.orders.journal import (
    JOURNAL_FILE,
    KEEP_CLOSED,
    SNAPSHOT_EVERY,
    JournalError,
    SqliteJournal,
)
from services.execution.orders.order_state import (
    SUBMIT_FAILED,
    SUBMITTING,
    UNKNOWN,
    OrderParseError,
    TrackedOrder,
)
from services.execution.orders.placement import OrderPlacer
from services.execution.orders.reconcile import Reconciler, venue_position
from services.execution.orders.restore import restore
from services.execution.orders.submitter import OrderSubmitter
from services.execution.orders.tracker import OrderTracker
from services.execution.orders.trip import TripRunner
from services.execution.venue.account import AccountPoller
from services.execution.venue.order_request import invalid_request
from services.execution.venue.ratelimit import TokenBucket
from services.execution.venue.rest_client import AlpacaRest, RestError
from services.execution.venue.trade_stream import TradeStream

__all__ = ["SERVICE_CLASS", "ExecutionService", "LiveTradingRefused", "check_live_guard", "venue_position"]

log = logging.getLogger(__name__)

STARTUP_RETRY_S = 2.0  # the longest wait between start-up attempts at the venue
STARTUP_RETRY_MIN_S = 0.05  # the first: at start-up the venue is often a moment behind us
JOURNAL_CHECK_S = 1.0
# A book snapshot walks every tracked order (~30 ms with 100k tracked): taken once this long passed
# without an order request, or regardless once the journal has grown by SNAPSHOT_EVERY * 10 events.
SNAPSHOT_QUIET_NS = 1_000_000_000


class LiveTradingRefused(SystemExit):
    pass


def check_live_guard(settings: Settings) -> None:
    """Refuse to trade real money unless alpaca.live is explicitly true (config checks too)."""
    urls = (settings.trading_base_url(), settings.trade_stream_url())
    if (settings.venue == "live" or any(is_alpaca_live(u) for u in urls)) and not settings.alpaca.live:
        raise LiveTradingRefused("execution refuses to start: LIVE venue without alpaca.live=true")


class ExecutionService(Service):
    name = "execution"
    CONTROL_READ_ONLY = frozenset({"positions", "venue_positions", "orders"})
    CONTROL_MUTATING = frozenset({"cancel_all"})

    def __init__(self, settings: Settings, journal: SqliteJournal | None = None) -> None:
        check_live_guard(settings)
        super().__init__(settings)
        ex = settings.execution
        key_id, secret = settings.credentials()
        self.events = EventLog(ex.event_log_size)
        run_dir = settings.zmq.run_dir.resolve()
        self.journal = journal if journal is not None else SqliteJournal(run_dir / JOURNAL_FILE)
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
        counters = OrderEventCounters(
            LabelFold(configured_symbols(settings)), LabelFold(configured_strategies(settings))
        )
        self.tracker = OrderTracker(self.events, self.journal, self.pub, ex.event_log_size, counters)
        self.placer = OrderPlacer(
            self.submitter,
            self.bucket,
            self.tracker,
            self._spawn,
            settings.venue,
            self.name,
            settle_s=max(2 * ex.http_timeout_s, 2.0),
        )
        self.reconciler = Reconciler(
            self.rest, self.submitter, self.tracker, self.placer, self._spawn, self.journal
        )
        recovered = self.journal.load()
        self._restored = recovered.base_seq >= 0  # a previous run left a positions base: continue it
        self._unknown_at_start = restore(self.tracker, recovered)
        self.reconciler.since_ns = int(self.journal.get_meta("reconciled_ns") or recovered.base_ts_ns)
        self.account = AccountPoller(self.rest, self.pub, ex.account_poll_s)
        self.gate = TradingGate(settings.zmq.run_dir)
        self.placer.may_send = self._gate_reason
        self.trips = TripRunner(
            self.rest, self.gate, self.tracker, self.placer, ex.client_order_id_prefix, self._spawn
        )
        self.ready = False
        self.not_ready_reason = "venue reconciliation pending"
        self._startup_log = ConditionLog(log)
        self.start_positions: list[wire.Position] = []
        self._risk_to_exec = STAGE_LATENCY.labels(self.name, "risk_to_exec")
        self._queued = ORDERS.labels("queued")
        self._last_request_ns = 0  # wall ns of the last order request

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.subscribe("risk", [topics.RK_TRADING_STATE], self._on_risk_events)
        venue, url = self.settings.venue, self.settings.trading_base_url()
        banner = "LIVE MONEY" if venue == "live" else venue
        log.warning(f"execution trades on venue={venue} ({banner}) at {url}", extra=kv(venue=venue, url=url))
        await self.rest.open()
        self._spawn(self._watch_journal())
        try:
            await self._startup_reconcile()
        except (RestError, ValueError, JournalError) as exc:
            self._startup_failed(exc)
            self._spawn(self._retry_startup())

    async def stop(self) -> None:
        await self.stream.stop()
        in_flight = [
            o.client_order_id for o in self.tracker.orders.values() if o.status in (SUBMITTING, UNKNOWN)
        ]
        if in_flight:  # a POST may land after we are gone: the next start adopts it by reconcile
            log.warning("stopping with order submits unresolved", extra=kv(coids=in_flight[:50]))
        await self.tasks.stop()
        await self.rest.close()
        self._snapshot()
        self.journal.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A one-shot job (a placement, a reconcile, a retry loop): never re-run, never lost."""
        return self.tasks.run_once(coro.__qualname__.rsplit(".", 1)[-1].lstrip("_"), coro)

    async def _startup_reconcile(self) -> None:
        if self._restored:
            # the journal holds every order sent and the book's base: resolve them at the venue
            await self.reconciler.run("restart")
            self.reconciler.mark_verified()
            self.start_positions = [p.to_wire(wall_ns()) for p in self.tracker.positions.all()]
            for order in self._unknown_at_start:
                if order.status == UNKNOWN:
                    self._spawn(self.placer.resolve(order))
        else:
            self.start_positions = await self.reconciler.load_startup_snapshot()
            self.journal.record_base(self.events.last_seq, self.start_positions, new_epoch=False)
            self.journal.record_retired(self.tracker.retired_coids)
            self.reconciler.since_ns = wall_ns() - 60 * 1_000_000_000
            self._restored = True
        self.ready = True
        self.not_ready_reason = ""
        self._snapshot()
        self._startup_log.clear("execution ready after venue failures")
        self.stream.start()  # only now: every update it brings is news relative to the snapshot
        self.tasks.spawn("account_poll", self.account.run)
        log.info(
            "execution ready", extra=kv(positions=len(self.start_positions), open_orders=self.open_orders())
        )

    def _startup_failed(self, exc: Exception) -> None:
        """Not ready: say why in status (``not_ready_reason``) and in the log, once per kind of
        failure. A link failure is said in full by the REST client's LinkHealth; here only its class."""
        self.reconciler.last_error = str(exc)[:300]
        link = self.rest.health.last if isinstance(exc, RestError) and exc.link_failure else None
        if link is not None:
            self.not_ready_reason = f"{link.kind.value}: {link.message}"
            key, why = link.kind.value, {"failure": link.kind.value}
        else:
            self.not_ready_reason = f"venue reconciliation failed: {exc}"[:300]
            key, why = type(exc).__name__, {"reason": self.not_ready_reason}
        retry_s = self.rest.health.retry_delay(STARTUP_RETRY_S)
        msg = "execution not ready: orders refused until the venue answers"
        self._startup_log.report(key, msg, logging.ERROR, retry_s=retry_s, **why)

    async def _retry_startup(self) -> None:
        """Until the venue answers: backing off from STARTUP_RETRY_MIN_S to STARTUP_RETRY_S, or
        every AUTH_RETRY_S after the venue rejected the keys (no tight loop against an auth failure)."""
        backoff = Backoff(STARTUP_RETRY_MIN_S, STARTUP_RETRY_S)
        while not self.ready:
            await asyncio.sleep(self.rest.health.retry_delay(backoff.next_delay()))
            try:
                await self._startup_reconcile()
            except (RestError, ValueError, JournalError) as exc:
                self._startup_failed(exc)

    async def _watch_journal(self) -> None:
        """Disk full, read-only or gone is found here too when no order is being written; then the
        checkpoint (the fsyncs) runs in a worker thread, off the loop orders go through."""
        while True:
            if self.journal.check():
                grown = self.events.last_seq - self.journal.snapshot_seq
                quiet = wall_ns() - self._last_request_ns >= SNAPSHOT_QUIET_NS
                if grown >= SNAPSHOT_EVERY and (quiet or grown >= SNAPSHOT_EVERY * 10):
                    self._snapshot()
                self.journal.checkpoint_done(await asyncio.to_thread(self.journal.checkpoint))
            await asyncio.sleep(JOURNAL_CHECK_S)

    def _snapshot(self) -> None:
        """The book and the orders worth keeping, so the next start reads the journal from here."""
        if not self.ready or not self.journal.ok:
            return  # a book not reconciled yet is not one to start from
        self.journal.record_snapshot(self.tracker.snapshot(KEEP_CLOSED))

    # ---- requests ---------------------------------------------------------------------------

    def handle(self, msg: Any) -> Any:
        if isinstance(msg, wire.OrderRequest):
            return self._on_order_request(msg)
        if isinstance(msg, wire.Replay):
            if msg.after_seq + 1 < self.events.first_seq:  # older than memory holds: the journal has it
                events = self.journal.events_after(msg.after_seq, MAX_REPLAY)
            else:
                events = self.events.after(msg.after_seq, MAX_REPLAY)
            detail = f"{len(events)} events"
            if events and events[0].seq > msg.after_seq + 1:
                detail += f"; events {msg.after_seq + 1}..{events[0].seq - 1} were evicted"
            return wire.Reply(ok=True, detail=detail, data=wire.encode_list(events))
        if isinstance(msg, wire.CancelRequest):
            return self._cancel(msg)
        if isinstance(msg, wire.Trip):
            return self.trips.run(msg)
        return super().handle(msg)

    # ---- the trading state: enforced here too, the last gate before the venue ----------------

    def _on_risk_events(self, topic: bytes, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, wire.TradingStateChanged):
                self.gate.adopt(m.state, m.seq, "risk_event")

    def _exposure(self, symbol: str, exclude: str = "") -> OpenExposure:
        return OpenExposure(self.tracker.positions.qty(symbol), *self.tracker.open_qty(symbol, exclude))

    def _gate_reason(self, order: TrackedOrder) -> str:
        """Asked right before the order's POST is written: the trading state, and the age of the tick
        it was built from (it may have waited for a rate-limit token, or this process may have been
        stalled)."""
        if not self.journal.ok:
            return f"journal_failed: {self.journal.error}"
        limit = self.settings.risk.quote_age_limit_ns(order.symbol)
        old_tick = tick_age_error(order.tick_exch_ns, wall_ns(), limit)
        if old_tick:
            STALE_BLOCKED.inc()
            return f"{RejectReason.STALE_QUOTE.value}: {old_tick}"
        blocked = self.gate.blocks(
            order.side, order.qty, lambda: self._exposure(order.symbol, exclude=order.client_order_id)
        )
        return "" if blocked is None else f"{blocked.value}: trading state {self.gate.state or 'unknown'}"

    def _on_order_request(self, req: wire.OrderRequest) -> wire.OrderAck:
        """Checks, then the order's POST is written (``place_now``) before anything that can wait:
        the stage metric, the ack to risk (a send that may hand this CPU to risk), the task."""
        recv = self._last_request_ns = wall_ns()
        ack = self._order_request(req, recv)
        if req.risk_ns:
            self._risk_to_exec.observe(max(0, recv - req.risk_ns) / 1e9)
        return ack

    def _order_request(self, req: wire.OrderRequest, recv: int) -> wire.OrderAck:
        coid = req.client_order_id
        if self.tracker.is_known(coid):
            ORDERS.labels("refused").inc()
            return wire.OrderAck(
                client_order_id=coid, accepted=False, detail="duplicate client_order_id", ts_ns=recv
            )
        reason = "" if self.ready else f"not_ready: {self.not_ready_reason}"
        if not self.journal.ok:
            reason = f"journal_failed: {self.journal.error}"
        reason = reason or invalid_request(req)
        if not reason:
            it = req.intent
            # The file is read once per order, by the check right before the POST is written.
            blocked = self.gate.blocks(it.side, it.qty, lambda: self._exposure(it.symbol), read_file=False)
            if blocked is not None:
                reason = f"{blocked.value}: trading state {self.gate.state or 'unknown'}"
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
            tick_exch_ns=it.tick_exch_ns,
        )
        self.tracker.track(order)
        if reason:
            ORDERS.labels("refused").inc()
            order.mark(SUBMIT_FAILED, reason)
            self.tracker.emit_update(order, "submit_failed", recv)
            return wire.OrderAck(client_order_id=coid, accepted=False, detail=reason, ts_ns=wall_ns())
        self.placer.place_now(order, req, recv)
        self._queued.inc()
        return wire.OrderAck(client_order_id=coid, accepted=True, detail="queued", ts_ns=wall_ns())

    def _cancel(self, msg: wire.CancelRequest) -> Awaitable[wire.Reply] | wire.Reply:
        if msg.all:
            return self._cancel_all()
        order = self.tracker.orders.get(msg.client_order_id)
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
        if cmd.cmd == ControlCmd.POSITIONS:
            return self._book_positions_reply()
        if cmd.cmd == ControlCmd.VENUE_POSITIONS:
            return self._positions_reply()
        if cmd.cmd == ControlCmd.ORDERS:
            limit = cmd.args.get("limit", "")
            if limit and not (limit.isdigit() and 0 < int(limit) <= 100_000):
                return wire.Reply(ok=False, detail=f"orders: limit must be 1..100000, got {limit[:20]!r}")
            orders = self.tracker.recent(int(limit)) if limit else self.tracker.orders.values()
            docs = [o.as_dict() for o in orders]
            return wire.Reply(ok=True, detail=f"{len(docs)} orders", data=orjson.dumps(docs))
        if cmd.cmd == ControlCmd.CANCEL_ALL:
            return self._cancel_all()
        return None

    def _book_positions_reply(self) -> wire.PositionsSnapshot | wire.Reply:
        """Execution's state as of ``events.last_seq`` (positions, each strategy's, the open orders): a
        receiver applies only the events with a greater seq on top, so nothing is counted twice or missed."""
        if not self.ready:
            return wire.Reply(ok=False, detail="not ready: venue positions not loaded yet")
        now = wall_ns()
        return wire.PositionsSnapshot(
            as_of_seq=self.events.last_seq,
            positions=[p.to_wire(now) for p in self.tracker.positions.all()],
            book=self.journal.incarnation,
            strategies=[
                wire.StrategyPositions(strategy=name, positions=[p.to_wire(now) for p in book.all()])
                for name, book in self.tracker.strategy_books.items()
            ],
            open_orders=self.tracker.open_order_updates(),
        )

    async def _positions_reply(self) -> wire.PositionsSnapshot | wire.Reply:
        """The venue's positions right now (not sequenced with order events: ``as_of_seq`` -1)."""
        try:
            docs = await self.rest.positions()
            now = wall_ns()
            positions = [venue_position(d, now) for d in docs]
        except (RestError, ValueError) as exc:
            return wire.Reply(ok=False, detail=f"positions unavailable: {exc}")
        return wire.PositionsSnapshot(as_of_seq=-1, positions=positions)

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "not_ready_reason": self.not_ready_reason,
            "venue_link": self.rest.health.status(),
            "trade_stream_link": self.stream.health.status(),
            "trading_base_url": self.settings.trading_base_url(),
            "trade_stream_connected": self.stream.connected,
            "trade_stream_connects": self.stream.connects,
            "orders_tracked": len(self.tracker.orders),
            "orders_open": self.open_orders(),
            "last_event_seq": self.events.last_seq,
            "rate_limit_tokens": round(self.bucket.tokens, 2),
            "reconciles": self.reconciler.reconciles,
            "last_reconcile_error": self.reconciler.last_error,
            "start_positions": {p.symbol: fixed.to_str(p.qty) for p in self.start_positions},
            "account": {
                k: fixed.to_str(getattr(self.account.last, k)) for k in ("cash", "buying_power", "equity")
            }
            if self.account.last
            else None,
            "trading_state": self.gate.state.value if self.gate.state else "unknown",
            "trading_state_seq": self.gate.seq,
            "trip_pending": self.trips.pending,
            "last_trip": self.trips.last,
            "journal": {
                "ok": self.journal.ok,
                "error": self.journal.error,
                "write_errors": self.journal.write_errors,
                "path": str(self.journal.path),
                "incarnation": self.journal.incarnation,
                "boot": self.journal.boots,
            },
            "reconcile_alarms": self.reconciler.alarms,
        }

    def heartbeat_state(self) -> str:
        if not self.journal.ok:
            return "journal_failed"  # risk's journal trigger halts trading on this
        if not self.ready:
            return "starting"
        return "ok" if self.stream.connected else "degraded"

    def state_reason(self) -> str:
        if not self.journal.ok:
            return f"order journal failed: {self.journal.error}"
        if not self.ready:
            last = self.reconciler.last_error
            return "reconciling with the venue" + (f": {last}" if last else "")
        if not self.stream.connected:
            last = self.stream.last_error
            return "trade_updates not connected" + (f": {last}" if last else "")
        return ""

    def last_event_seq(self) -> int:
        return self.events.last_seq

    def is_ready(self) -> bool:
        return self.ready and self.journal.ok

    def refresh_metrics(self) -> None:
        OPEN_ORDERS.set(self.open_orders())

    def incarnation(self) -> str:
        return self.journal.incarnation

    def boot(self) -> int:
        return self.journal.boots

    def open_orders(self) -> int:
        return self.tracker.open_orders()

    # ---- venue news -------------------------------------------------------------------------

    async def _on_stream_connected(self) -> None:
        await self.reconciler.run_logged("stream_connect")

    def _on_trade_update(self, data: dict[str, Any]) -> None:
        """One trade_updates payload. If it cannot be used, a reconcile fetches the order's state
        instead, so a fill in a broken frame is still counted (once: by cumulative quantity)."""
        try:
            self.tracker.apply_trade_update(data)
        except (OrderParseError, ValueError) as exc:
            self.stream.bad_frames += 1
            log.error(
                "unusable trade update, reconciling instead",
                extra=kv(event=str(data.get("event"))[:40], error=str(exc)[:300]),
            )
            self.reconciler.request("bad_update")


SERVICE_CLASS = ExecutionService
