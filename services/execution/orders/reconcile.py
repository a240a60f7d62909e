"""Reading the venue's orders and positions: the startup snapshot and the reconcile passes.

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
from datetime import UTC, datetime
from typing import Any

from common import fixed, wire
from common.clock import wall_ns
from common.log import kv
from common.order_events import TERMINAL_STATUSES
from services.execution.metrics import BOOK_REBASED, RECONCILES, VENUE_LOST
from services.execution.orders.journal import JournalError, SqliteJournal
from services.execution.orders.order_state import (
    SUBMITTING,
    UNKNOWN,
    VENUE_LOST_STATUS,
    OrderParseError,
    VenueOrder,
)
from services.execution.orders.placement import OrderPlacer, Spawn
from services.execution.orders.submitter import OrderSubmitter, is_not_found
from services.execution.orders.tracker import OrderTracker
from services.execution.venue.rest_client import AlpacaRest, RestError

log = logging.getLogger(__name__)

SNAPSHOT_TRIES = 5
OPEN_SCAN = 500  # open orders read per reconcile (Alpaca's maximum page)
CLOSED_SCAN = 100  # newest closed orders read by the first startup snapshot
PAGE = 500  # Alpaca's maximum page of GET /v2/orders
SINCE_MARGIN_NS = 60 * 1_000_000_000  # the next reconcile pages from this long before this one began
VERIFY_TRIES = 4


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


class Reconciler:
    def __init__(
        self,
        rest: AlpacaRest,
        submitter: OrderSubmitter,
        tracker: OrderTracker,
        placer: OrderPlacer,
        spawn: Spawn,
        journal: SqliteJournal | None = None,
    ) -> None:
        self.journal = journal
        self.since_ns = 0  # orders created after this (venue time) are paged through
        self._verified_at_start = False
        self.alarms: list[str] = []  # venue state lost, positions re-based, foreign orders (newest last)
        self.rest = rest
        self.submitter = submitter
        self.tracker = tracker
        self.placer = placer
        self._spawn = spawn
        self.reconciles = 0
        self.last_error = ""
        self._reconciling = False
        self._reconcile_again = False

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

    async def load_startup_snapshot(self) -> list[wire.Position]:
        """Take the stable snapshot into the tracker; the venue positions at start. Raises
        RestError / ValueError with nothing committed when the venue cannot give one."""
        RECONCILES.labels("startup").inc()
        docs, orders = await self._stable_snapshot()
        now = wall_ns()
        start_positions = [venue_position(d, now) for d in docs]  # may raise: nothing committed yet
        self.tracker.reset_positions(start_positions)
        for snap in orders.values():
            if snap.status in TERMINAL_STATUSES:
                self.tracker.retire(snap.client_order_id)  # its fills are in the start positions
            else:
                self.tracker.apply(snap, "reconciled", now, baseline=True)
        self.reconciles += 1
        self.last_error = ""
        self._verified_at_start = True
        return start_positions

    def mark_verified(self) -> None:
        """The positions were just compared: the next (first stream connect) pass skips it."""
        self._verified_at_start = True

    def request(self, trigger: str) -> None:
        """Run a reconcile soon; requests while one runs fold into one more run after it."""
        if self._reconciling:
            self._reconcile_again = True
            return
        self._spawn(self.run_logged(trigger))

    async def run_logged(self, trigger: str) -> None:
        try:
            await self.run(trigger)
        except RestError as exc:
            self.last_error = str(exc)
            log.error("reconcile failed", extra=kv(trigger=trigger, error=str(exc)))

    async def run(self, trigger: str) -> None:
        """Open and newest closed orders from the venue (adopting any never seen), then a lookup of
        every tracked open order they did not list. One at a time; requests meanwhile coalesce."""
        if self._reconciling:
            self._reconcile_again = True
            return
        self._reconciling = True
        try:
            while True:
                self._reconcile_again = False
                await self._run_once(trigger)
                if not self._reconcile_again:
                    return
        finally:
            self._reconciling = False

    async def _run_once(self, trigger: str) -> None:
        RECONCILES.labels(trigger).inc()
        started = wall_ns()
        # the positions were just compared at start: the first stream connect only catches up on orders
        verify, self._verified_at_start = not self._verified_at_start, False
        fills_before = self.tracker.fills_applied
        positions = await self.rest.positions() if verify else None
        seen: set[str] = set()
        # in venue time order: a replaced order's own fills and end come before its replacement's
        for snap in sorted(await self._venue_orders(), key=lambda s: s.updated_ns):
            self.tracker.apply(snap, "reconciled", wall_ns())
            seen.add(snap.client_order_id)
        lost: list[str] = []
        for order in list(self.tracker.orders.values()):
            if order.terminal or order.client_order_id in seen or order.status == SUBMITTING:
                continue
            if order.status == UNKNOWN:
                await self.placer.look_up_unknown(order)
                continue
            found = await self.submitter.lookup(order.client_order_id)
            if isinstance(found, dict):
                self.tracker.apply_doc(found, "reconciled", wall_ns())
            elif is_not_found(found) and order.venue_order_id and order.mark(VENUE_LOST_STATUS):
                order.reason = "the venue no longer knows this order (venue state lost)"
                VENUE_LOST.inc()
                self.tracker.emit_update(order, "reconciled", wall_ns())
                lost.append(order.client_order_id)
        if lost:
            self._alarm(
                f"venue lost {len(lost)} open orders (restarted without its state?): {', '.join(lost[:5])}"
            )
        if verify or lost:
            await self.verify_positions(positions if self.tracker.fills_applied == fills_before else None)
        self.since_ns = started - SINCE_MARGIN_NS
        if self.journal is not None:
            self.journal.set_meta("reconciled_ns", str(self.since_ns))
        self.reconciles += 1
        self.last_error = ""

    def _alarm(self, text: str) -> None:
        log.error("reconcile alarm: " + text)
        self.alarms = [*self.alarms[-19:], text]

    async def _paged(self, status: str, after_ns: int) -> list[dict[str, Any]]:
        """Every order of ``status`` created after ``after_ns``, a page of 500 at a time."""
        out: list[dict[str, Any]] = []
        after = _rfc3339(after_ns) if after_ns > 0 else ""
        while True:
            page = await self.rest.list_orders(status, PAGE, direction="asc", after=after)
            out += page
            last = str(page[-1].get("created_at") or "") if page else ""
            if len(page) < PAGE or not last or last == after:
                return out
            after = last

    async def _venue_orders(self) -> list[VenueOrder]:
        docs = await self._paged("open", 0) + await self._paged("closed", self.since_ns)
        out: list[VenueOrder] = []
        for doc in docs:
            try:
                out.append(VenueOrder.from_json(doc))
            except OrderParseError as exc:
                log.warning("unreadable venue order skipped", extra=kv(error=str(exc)))
        return out

    async def verify_positions(self, docs: list[dict[str, Any]] | None) -> None:
        """Compare the book with the venue's positions read while no fill was applied (``docs``, when
        the caller read them so; else read here); re-base it on the venue's when they differ."""
        for attempt in range(1, VERIFY_TRIES + 1):
            if docs is not None:
                break
            fills_before = self.tracker.fills_applied
            docs = await self.rest.positions()
            for snap in sorted(await self._venue_orders(), key=lambda s: s.updated_ns):
                self.tracker.apply(snap, "reconciled", wall_ns())
            if self.tracker.fills_applied == fills_before:
                break
            docs = None
            await asyncio.sleep(0.05 * attempt)  # fills landed meanwhile: read both again
        else:
            log.warning("positions not verified: the venue kept filling")
            return
        now = wall_ns()
        venue = [venue_position(d, now) for d in docs]
        venue_qty = {p.symbol: p.qty for p in venue if p.qty}
        book_qty = {p.symbol: p.qty for p in self.tracker.positions.all() if p.qty}
        if venue_qty == book_qty:
            return
        diff = {
            s: f"{fixed.to_str(book_qty.get(s, 0))} -> {fixed.to_str(venue_qty.get(s, 0))}"
            for s in sorted(set(venue_qty) | set(book_qty))
            if venue_qty.get(s, 0) != book_qty.get(s, 0)
        }
        BOOK_REBASED.inc()
        self._alarm(f"positions differ from the venue's, book re-based on the venue: {diff}")
        self.tracker.reset_positions(venue)
        if self.journal is not None:
            try:
                self.journal.record_base(self.tracker.events.last_seq, venue, new_epoch=True)
            except JournalError:
                pass  # the journal reports itself failed: trading halts


def _rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
