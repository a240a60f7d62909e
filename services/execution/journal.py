"""The seam for the durable order journal: write-ahead before every venue send, then every event.

Only an in-memory implementation exists now; a file-backed one must make ``record_submit`` durable
(fsync) before it returns, because the order may reach the venue right after.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from services.execution.event_log import OrderEvent


class OrderJournal(Protocol):
    def record_submit(self, client_order_id: str, attempt: int, body: dict[str, Any]) -> None:
        """Called before an order POST is written (write-ahead)."""

    def record_event(self, event: OrderEvent) -> None:
        """Called for every sequenced order event."""


class InMemoryJournal:
    """Keeps the newest ``capacity`` submits and events (a stand-in: nothing survives a restart)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.submits: deque[tuple[str, int, dict[str, Any]]] = deque(maxlen=capacity)
        self.events: deque[OrderEvent] = deque(maxlen=capacity)

    def record_submit(self, client_order_id: str, attempt: int, body: dict[str, Any]) -> None:
        self.submits.append((client_order_id, attempt, body))

    def record_event(self, event: OrderEvent) -> None:
        self.events.append(event)
