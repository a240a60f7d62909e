"""A logger call that fires at most once per interval and reports how many it suppressed."""

from __future__ import annotations

import logging
from typing import Any

from common.clock import mono_ns


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 5.0) -> None:
        self._log = logger
        self._interval_ns = int(interval_s * 1e9)
        self._next_ns = 0
        self._suppressed = 0

    def warning(self, msg: str, **fields: Any) -> None:
        now = mono_ns()
        if now < self._next_ns:
            self._suppressed += 1
            return
        self._next_ns = now + self._interval_ns
        fields["suppressed_since_last"] = self._suppressed
        self._suppressed = 0
        self._log.warning(msg, extra={"fields": fields})
