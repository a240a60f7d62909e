"""Token bucket shared by every REST call, so orders wait briefly instead of being sent into a 429.

Waiters are served first come, first served: a newcomer never takes a token somebody is already
waiting for (otherwise a stream of lookups could starve an order POST until it gives up). Waiting
is bounded by the caller's ``max_wait_s``, counted by the sleeps actually asked for, so a stalled
clock cannot make it spin or wait forever.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """``rate_per_min`` tokens a minute, at most ``burst`` saved up. ``clock`` returns seconds."""

    def __init__(self, rate_per_min: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_min <= 0 or burst <= 0:
            raise ValueError("rate_per_min and burst must be positive")
        self.rate_per_s = rate_per_min / 60.0
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._queue: deque[object] = deque()  # waiters, oldest first

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._stamp = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def available_now(self) -> bool:
        """True when ``try_take`` would succeed now and nobody waits before (nothing is taken)."""
        return not self._queue and self.tokens >= 1.0

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate_per_s

    async def acquire(self, max_wait_s: float) -> bool:
        """Take a token, waiting at most ``max_wait_s``; False (nothing taken) if that is not enough."""
        if not self._queue and self.try_take():
            return True
        ticket = object()
        self._queue.append(ticket)
        try:
            while True:
                if self._queue[0] is ticket and self.try_take():
                    return True
                # behind others: each of them needs a token first
                ahead = next(i for i, t in enumerate(self._queue) if t is ticket)
                self._refill()
                wait = max((ahead + 1.0 - self._tokens) / self.rate_per_s, 0.001)
                if self._queue[0] is ticket:
                    wait = max(self.wait_time(), 0.001)
                if wait > max_wait_s:
                    return False
                sleep = min(wait, 1.0 / self.rate_per_s)
                max_wait_s -= sleep
                await asyncio.sleep(sleep)
        finally:
            self._queue.remove(ticket)
