"""Per-order state machine, fed by REST replies, trade_updates and reconciliation snapshots.

Updates may arrive duplicated or out of order (stream vs REST vs reconcile), so: filled_qty never
decreases, and each increase of the cumulative filled_qty becomes exactly one fill. A replayed
update therefore yields no second fill and a skipped partial is not lost.

Status: the venue's ``updated_at`` orders snapshots. A strictly newer snapshot moves the status
wherever the venue says (``done_for_day`` -> ``new`` next day, ``pending_cancel`` -> ``new`` after a
cancel was refused even if the ``order_cancel_rejected`` event was missed), a strictly older one
never moves it, and on a tie (or without timestamps) the status only moves forward by rank.
Venue terminal states stick. Our own ``submit_failed`` is a belief, not a venue fact: if the venue
later shows the order (a POST that landed after we gave up), the venue's status replaces it.

Fill prices: with the execution's own ``qty``/``price`` when they describe exactly the increment;
otherwise (skipped or merged executions, REST snapshots) derived from the cumulative averages as
``(new_avg*new_cum - old_avg*old_cum) / (new_cum - old_cum)`` in exact integer nanos, rounded
half-even to 1e-9. The venue's ``filled_avg_price`` is itself rounded, so a derived price can
differ from the true execution price by up to (avg rounding * cum / delta); quantities are exact.
A snapshot whose filled_qty rose but that carries no usable average is refused before anything is
changed (:class:`OrderParseError`): the next snapshot still carries the increase, so nothing is lost.

Numbers are range-checked where they come in (``common.bounds``): a quantity or price outside
[0, 2^62] nanos, or a timestamp outside [2000-01-01, now + 1 day], is an :class:`OrderParseError`
like any unreadable field, so the caller reconciles instead and nothing downstream sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from common import bounds, fixed
from common.clock import iso_utc, wall_ns
from common.order_events import TERMINAL_STATUSES

SUBMITTING = "pending_submit"  # ours: queued, no venue answer yet
UNKNOWN = "unknown"  # ours: the POST outcome could not be established yet
SUBMIT_FAILED = "submit_failed"  # ours: never placed at the venue
VENUE_LOST_STATUS = "venue_lost"  # ours: the venue no longer knows an order it had

TERMINAL = TERMINAL_STATUSES
_RANK: dict[str, int] = {
    SUBMITTING: 0,
    UNKNOWN: 0,
    "accepted": 1,
    "pending_new": 1,
    "accepted_for_bidding": 1,
    "pending_review": 1,
    "new": 2,
    "held": 2,
    "calculated": 2,
    "done_for_day": 3,
    "suspended": 2,
    "stopped": 2,
    "partially_filled": 3,
    "pending_cancel": 4,
    "pending_replace": 4,
    **dict.fromkeys(TERMINAL, 5),
}
KNOWN_STATUSES = frozenset(_RANK) - {SUBMITTING, UNKNOWN, SUBMIT_FAILED}
_PENDING_CHANGE = frozenset({"pending_cancel", "pending_replace"})
_CHANGE_REJECTED = frozenset({"order_cancel_rejected", "order_replace_rejected"})


class OrderParseError(ValueError):
    """A venue order document lacks a field we need or has one we cannot read."""


def parse_ts_ns(text: str | None) -> int:
    """RFC 3339 (``Z`` or offset, up to 9 fractional digits) to wall ns; 0 for None/empty."""
    if not text:
        return 0
    head, frac, tail = text, "", ""
    dot = text.find(".")
    if dot >= 0:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        head, frac, tail = text[:dot], text[dot + 1 : end], text[end:]
    try:
        dt = datetime.fromisoformat(
            head + tail.replace("Z", "+00:00") if tail else head.replace("Z", "+00:00")
        )
    except ValueError:
        raise OrderParseError(f"bad timestamp {text!r}") from None
    whole = int(dt.timestamp())  # second resolution is exact: no fraction was passed in
    ns = whole * 1_000_000_000 + int((frac + "000000000")[:9])
    try:
        return bounds.venue_ts(ns, "timestamp", wall_ns())
    except bounds.OutOfRange:
        raise OrderParseError(f"timestamp {text!r} out of range") from None


# 2^62 nanos is 4.6e9 units: a venue number with more integer digits than this is refused before it
# is turned into an int (a "1e999999999" would otherwise cost a billion-digit integer).
_MAX_ADJUSTED_EXPONENT = 10


def venue_nanos(value: Any, key: str, signed: bool = False) -> int:
    """A venue number (JSON string or number) as int nanos within ``common.bounds``; else OrderParseError."""
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise OrderParseError(f"order field {key!r} is not a number: {str(value)[:40]!r}") from None
    if isinstance(value, bool) or not d.is_finite() or d.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise OrderParseError(f"order field {key!r} out of range: {str(value)[:40]!r}")
    try:
        return bounds.nanos(fixed.to_fixed(d), key, signed=signed)
    except ValueError:
        raise OrderParseError(f"order field {key!r} out of range: {str(value)[:40]!r}") from None


def _nanos(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if value is None or value == "":
        return 0
    return venue_nanos(value, key)


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """What the venue says about one order at one moment (an Alpaca Order object)."""

    venue_order_id: str
    client_order_id: str
    symbol: str
    side: str
    status: str
    qty: int
    filled_qty: int
    filled_avg_px: int
    limit_px: int
    replaces: str | None
    replaced_by: str | None
    updated_ns: int

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VenueOrder:
        try:
            oid, coid, status = str(doc["id"]), str(doc["client_order_id"]), str(doc["status"])
        except KeyError as exc:
            raise OrderParseError(f"order lacks {exc.args[0]!r}") from None
        if not oid or not coid or not status:
            raise OrderParseError(
                f"order has an empty id/client_order_id/status: {oid!r}/{coid!r}/{status!r}"
            )
        side = doc.get("side")
        if side not in ("buy", "sell"):
            raise OrderParseError(f"order {oid} has side {side!r}")
        symbol = doc.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise OrderParseError(f"order {oid} has symbol {symbol!r}")
        return cls(
            venue_order_id=oid,
            client_order_id=coid,
            symbol=symbol,
            side=side,
            status=status,
            qty=_nanos(doc, "qty"),
            filled_qty=_nanos(doc, "filled_qty"),
            filled_avg_px=_nanos(doc, "filled_avg_price"),
            limit_px=_nanos(doc, "limit_price"),
            replaces=doc.get("replaces") or None,
            replaced_by=doc.get("replaced_by") or None,
            updated_ns=parse_ts_ns(doc.get("updated_at")),
        )


@dataclass(frozen=True, slots=True)
class FillDelta:
    qty: int
    px: int
    cum_qty: int
    exec_id: str


@dataclass(frozen=True, slots=True)
class Transition:
    changed: bool  # status, ids or quantities moved: publish an OrderUpdate
    fill: FillDelta | None


def derive_fill_px(old_cum: int, old_avg: int, new_cum: int, new_avg: int) -> int:
    """Price of the increment between two cumulative (qty, avg price) states, rounded half-even."""
    delta = new_cum - old_cum
    if delta <= 0:
        raise ValueError("cumulative quantity did not increase")
    q, r = divmod(new_avg * new_cum - old_avg * old_cum, delta)
    if 2 * r > delta or (2 * r == delta and q % 2):
        q += 1
    return q


def rank(status: str) -> int:
    return _RANK.get(status, 2)  # an unknown venue status counts as "working"


@dataclass(slots=True)
class TrackedOrder:
    client_order_id: str
    symbol: str
    side: str
    qty: int
    limit_px: int = 0
    strategy: str = ""
    venue_order_id: str = ""
    status: str = SUBMITTING
    filled_qty: int = 0
    filled_avg_px: int = 0
    reason: str = ""
    replaces: str | None = None
    replaced_by: str | None = None
    venue_ns: int = 0
    intent_signal_ns: int = 0
    tick_recv_ns: int = 0
    tick_exch_ns: int = 0  # exchange time of the tick the order was built from (0: not from a tick)
    sent_ns: int = 0  # when its first POST was written (tick-to-order ends here)
    last_post_ns: int = 0  # when our last POST of it was written (an unknown outcome may land later)
    created_ns: int = field(default_factory=wall_ns)  # when execution started tracking it
    updated_ns: int = 0  # when execution last published an update of it
    update_seq: int = 0  # the seq of its last published update (0: none yet)
    history: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def open_qty(self) -> int:
        return 0 if self.terminal else max(0, self.qty - self.filled_qty)

    def mark(self, status: str, reason: str = "") -> bool:
        """Set one of our own statuses (submit outcome); refuses to move backwards or out of terminal."""
        if self.terminal or rank(status) < rank(self.status) or status == self.status:
            return False
        self.status, self.reason = status, reason or self.reason
        self.history.append(status)
        return True

    def apply(
        self,
        snap: VenueOrder,
        event: str = "",
        exec_qty: int | None = None,
        exec_px: int | None = None,
        exec_id: str = "",
    ) -> Transition:
        """Merge a venue snapshot. ``exec_qty``/``exec_px`` are the per-execution fields of a fill event."""
        if snap.client_order_id != self.client_order_id:
            raise ValueError(f"snapshot of {snap.client_order_id!r} applied to {self.client_order_id!r}")
        fill = self._fill_from(snap, exec_qty, exec_px, exec_id)  # validates before anything changes
        changed = fill is not None
        if snap.venue_order_id and snap.venue_order_id != self.venue_order_id:
            self.venue_order_id, changed = snap.venue_order_id, True
        if snap.replaced_by and snap.replaced_by != self.replaced_by:
            self.replaced_by, changed = snap.replaced_by, True
        if snap.replaces and not self.replaces:
            self.replaces = snap.replaces
        if snap.qty and snap.qty != self.qty and not self.terminal:
            self.qty, changed = snap.qty, True
        if snap.limit_px and not self.limit_px:
            self.limit_px = snap.limit_px

        if fill is not None:
            self.filled_qty, self.filled_avg_px = snap.filled_qty, snap.filled_avg_px
            if not self.venue_order_id:
                self.venue_order_id = snap.venue_order_id

        if self._accepts_status(snap.status, event, snap.updated_ns):
            self.status, changed = snap.status, True
            self.history.append(snap.status)
        if snap.updated_ns > self.venue_ns and (changed or self.status == snap.status):
            self.venue_ns = snap.updated_ns
        return Transition(changed=changed, fill=fill)

    def _fill_from(
        self, snap: VenueOrder, exec_qty: int | None, exec_px: int | None, exec_id: str
    ) -> FillDelta | None:
        if snap.filled_qty <= self.filled_qty:
            return None
        delta = snap.filled_qty - self.filled_qty
        if exec_qty == delta and exec_px is not None and exec_px > 0:
            return FillDelta(
                delta, exec_px, snap.filled_qty, exec_id or f"{snap.venue_order_id}:{snap.filled_qty}"
            )
        # skipped or merged executions: derive the increment from the cumulative averages
        px = derive_fill_px(self.filled_qty, self.filled_avg_px, snap.filled_qty, snap.filled_avg_px)
        if snap.filled_avg_px <= 0 or px <= 0:
            raise OrderParseError(
                f"order {snap.venue_order_id} filled_qty rose to {fixed.to_str(snap.filled_qty)} without a"
                f" usable filled_avg_price ({fixed.to_str(snap.filled_avg_px)}): fill not priced, state kept"
            )
        return FillDelta(delta, px, snap.filled_qty, f"{snap.venue_order_id}:{snap.filled_qty}")

    def _accepts_status(self, status: str, event: str, updated_ns: int) -> bool:
        if status == self.status:
            return False
        if self.status in (SUBMIT_FAILED, UNKNOWN, SUBMITTING):
            return True  # the venue knows the order: its word beats our belief
        if event in _CHANGE_REJECTED and self.status in _PENDING_CHANGE:
            return status not in _PENDING_CHANGE  # the cancel/replace failed: back to working
        if self.terminal:
            return False
        if updated_ns and self.venue_ns:
            if updated_ns > self.venue_ns:
                return True  # a newer venue state, whatever its rank
            if updated_ns < self.venue_ns:
                return False  # stale (e.g. a REST snapshot read before the stream event we applied)
        return rank(status) > rank(self.status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "venue_order_id": self.venue_order_id,
            "strategy": self.strategy,
            "symbol": self.symbol,
            "side": self.side,
            "status": self.status,
            "qty": fixed.to_str(self.qty),
            "filled_qty": fixed.to_str(self.filled_qty),
            "filled_avg_price": fixed.to_str(self.filled_avg_px),
            "limit_price": fixed.to_str(self.limit_px),
            "reason": self.reason,
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            # wall ns: the tick it was built from (exchange and local receive time), its first and
            # last POST written, the venue's latest update
            "tick_exch_ns": self.tick_exch_ns,
            "tick_recv_ns": self.tick_recv_ns,
            "sent_ns": self.sent_ns,
            "posted_ns": self.last_post_ns,
            "venue_ns": self.venue_ns,
            # ISO 8601 UTC for people: first seen (or first POST, after a restart), last changed
            "created": iso_utc(min(self.created_ns, self.sent_ns or self.created_ns)),
            "updated": iso_utc(max(self.updated_ns, self.venue_ns, self.created_ns)),
        }
