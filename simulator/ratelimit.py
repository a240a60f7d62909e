"""Per-API-key request budget over a fixed one-minute window (Alpaca: 200/min per account)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch_s: int  # when the current window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(self.remaining),
            "X-Ratelimit-Reset": str(self.reset_epoch_s),
        }


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, used)

    def take(self, key: str) -> RateDecision:
        now = int(self.clock())
        start = now - now % WINDOW_S
        win_start, used = self._windows.get(key, (start, 0))
        if win_start != start:
            used = 0
        allowed = used < self.per_minute
        if allowed:
            used += 1
        self._windows[key] = (start, used)
        return RateDecision(allowed, self.per_minute, self.per_minute - used, start + WINDOW_S)

    def reset(self) -> None:
        self._windows.clear()
