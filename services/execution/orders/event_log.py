"""The sequenced order-event store: every OrderUpdate and Fill gets the next value of one gap-free
``seq`` and is kept (bounded) so subscribers that missed a PUB frame can ``Replay`` it."""

from __future__ import annotations

from collections import deque

import msgspec

from common import wire

OrderEvent = wire.OrderUpdate | wire.Fill

MAX_REPLAY = 10_000


class EventLog:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._events: deque[OrderEvent] = deque(maxlen=capacity)
        self.last_seq = 0

    def append(self, event: OrderEvent) -> OrderEvent:
        """Stamp ``event`` with the next seq (whatever seq it carried is ignored), keep and return it."""
        self.last_seq += 1
        stamped = msgspec.structs.replace(event, seq=self.last_seq)
        self._events.append(stamped)
        return stamped

    def restore(self, events: list[OrderEvent], last_seq: int = 0) -> None:
        """Continue a journaled sequence: keep its newest events (the contiguous tail of it), go on
        from its last seq (``last_seq`` when that is later: the events after it are not kept)."""
        for ev in events:
            if ev.seq > self.last_seq:
                self._events.append(ev)
                self.last_seq = ev.seq
        if last_seq > self.last_seq:
            self._events.clear()
            self.last_seq = last_seq

    @property
    def first_seq(self) -> int:
        """Oldest seq still kept (last_seq + 1 when empty)."""
        return self._events[0].seq if self._events else self.last_seq + 1

    def after(self, after_seq: int, limit: int = MAX_REPLAY) -> list[OrderEvent]:
        """Events with seq > after_seq, oldest first, at most ``limit``. Evicted events are gone."""
        if after_seq >= self.last_seq or not self._events:
            return []
        start = max(0, after_seq + 1 - self._events[0].seq)
        stop = min(len(self._events), start + limit)
        return [self._events[i] for i in range(start, stop)]

    def __len__(self) -> int:
        return len(self._events)
