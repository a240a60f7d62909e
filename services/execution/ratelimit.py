"""Token bucket shared by every REST call, so orders wait briefly instead of being sent into a 429."""

from __future__ import annotations

import asyncio
import time
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

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate_per_s

    async def acquire(self, max_wait_s: float) -> bool:
        """Take a token, waiting at most ``max_wait_s``; False (nothing taken) if that is not enough."""
        while True:
            if self.try_take():
                return True
            wait = self.wait_time()
            if wait > max_wait_s:
                return False
            max_wait_s -= wait
            await asyncio.sleep(wait)
