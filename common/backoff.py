"""Reconnect backoff: exponential with "equal jitter" (a delay in [d/2, d]), reset once data flows.

Fast reconnect loops are what get a client 406/429 at Alpaca (one connection per key, a ~90 s
reaper for half-dead sockets), so every reconnecting client in zerotick uses this one policy.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0:
            raise ValueError("min_s must be positive")
        self.min_s = min_s
        self.max_s = max(max_s, min_s)
        self._rng = rng or random.Random()
        self.attempt = 0

    def reset(self) -> None:
        """Data flowed: the next failure starts from the minimum again."""
        self.attempt = 0

    def next_delay(self, longest: bool = False) -> float:
        """Seconds to wait before the next attempt; ``longest`` for errors that mean 'slow down'."""
        cap = self.max_s if longest else min(self.max_s, self.min_s * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 60)
        return cap / 2 + self._rng.uniform(0, cap / 2)
