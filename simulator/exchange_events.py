"""The venue's outbound change notices: trade_updates events and the state version.

Every order change is reported to listeners as a trade_updates ``data`` object (``emit``), with
an increasing ``event_id``. Matching is immediate, but a REST handler holds the events
(``hold``) while it runs and releases them after its reply is written: Alpaca's POST reply is the
order as accepted (``new``, ``accepted`` or ``pending_new``, filled_qty 0) and the fill comes on
the stream. ``accepted_view`` is the order as its acknowledgement event showed it. Events keep
their order (everything emitted while held, feed-driven fills included, waits in the same queue).

``version`` moves on every event and on every other change of the venue's state (``changed``):
the state file writes when it moved.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from simulator.metrics import ORDER_EVENTS
from simulator.orders import SimOrder, fmt, rfc3339

log = logging.getLogger("simulator.exchange")

EventListener = Callable[[dict[str, Any]], None]

ACK_EVENTS = frozenset({"new", "pending_new", "accepted"})


class OrderEvents:
    """Listeners, the hold queue, acknowledgement views, the event_id counter and the state version."""

    def __init__(self, now_ns: Callable[[], int]) -> None:
        self._now_ns = now_ns
        self._listeners: list[EventListener] = []
        self._held: list[dict[str, Any]] | None = None
        self._ack_views: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._version = 0

    @property
    def seq(self) -> int:
        """The ``event_id`` of the last event emitted."""
        return self._seq

    def restore_seq(self, seq: int) -> None:
        """Continue event ids after ``seq`` (a restored venue)."""
        self._seq = seq

    @property
    def version(self) -> int:
        return self._version

    def changed(self) -> None:
        """The venue's state changed without an event (reset, configuration, session)."""
        self._version += 1

    def add_listener(self, listener: EventListener) -> None:
        """``listener(data)`` gets the ``data`` object of every trade_updates event, in order."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def hold(self) -> None:
        """Queue events instead of dispatching them, until ``release``."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        held, self._held = self._held, None
        self._ack_views.clear()
        for data in held or ():
            self._dispatch(data)

    def accepted_view(self, order: SimOrder) -> dict[str, Any]:
        """The order as acknowledged during the current hold (else as it is now)."""
        view = self._ack_views.get(order.id)
        return view if view is not None else order.to_json()

    def emit(
        self,
        event: str,
        order: SimOrder,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        position: Decimal | None = None,
        reason: str | None = None,
    ) -> None:
        self._seq += 1
        self._version += 1
        ORDER_EVENTS.labels(event).inc()
        held = self._held
        if held is None and not self._listeners:
            return
        ts = rfc3339(self._now_ns())
        data: dict[str, Any] = {
            "event": event,
            "execution_id": str(uuid.uuid4()),
            "event_id": str(self._seq),
            "order": order.to_json(),
            "timestamp": ts,
            "at": ts,
        }
        if qty is not None:
            data["qty"], data["price"], data["position_qty"] = fmt(qty), fmt(price), fmt(position)
        if reason is not None:
            data["reason"] = reason
        if held is None:
            self._dispatch(data)
            return
        held.append(data)
        if event in ACK_EVENTS and order.id not in self._ack_views:
            self._ack_views[order.id] = data["order"]

    def _dispatch(self, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(data)
            except Exception:
                log.exception("trade update listener failed")
