"""The snapshots of the last window: each new one is compared with the oldest still in the window."""

from __future__ import annotations

from collections import deque

from zerotick.top.snapshot import Snapshot


class Window:
    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the window must be positive")
        self.seconds = seconds
        self._snaps: deque[Snapshot] = deque()

    def push(self, snap: Snapshot) -> Snapshot | None:
        """Add ``snap``; return the snapshot its window starts at: the newest one at least ``seconds``
        older, or the oldest there is while the window fills (None for the very first)."""
        while len(self._snaps) > 1 and self._snaps[1].taken_s <= snap.taken_s - self.seconds:
            self._snaps.popleft()
        base = self._snaps[0] if self._snaps else None
        self._snaps.append(snap)
        return base
