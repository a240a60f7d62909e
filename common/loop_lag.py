"""The event loop's lag: a periodic timer asks to wake after ``interval_s`` and records how much
later it actually woke (``zt_event_loop_lag_seconds{service}``). A callback that blocks the loop
(a slow handler, a GC pause, a stalled process) shows up as lag on every service it delays.

Runs under the service's task supervisor; a failure while recording is logged (rate-limited) and
counted, and measuring goes on: the probe never dies of one bad observation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from common.clock import mono_ns
from common.metrics import LOOP_LAG
from common.tasks import TASK_FAILURES

log = logging.getLogger(__name__)

INTERVAL_S = 0.1
ERROR_LOG_EVERY_NS = 60 * 1_000_000_000


class LoopLagProbe:
    def __init__(
        self,
        service: str,
        interval_s: float = INTERVAL_S,
        observe: Callable[[float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], int] = mono_ns,
    ) -> None:
        self.service = service
        self.interval_s = interval_s
        self._interval_ns = int(interval_s * 1e9)
        self._observe = observe if observe is not None else LOOP_LAG.labels(service).observe
        self._sleep = sleep
        self._clock = clock
        self._failures = TASK_FAILURES.labels(service, "loop_lag")
        self.samples = 0
        self.errors = 0
        self.max_lag_s = 0.0
        self._next_error_log_ns = 0

    async def run(self) -> None:
        while True:
            start = self._clock()
            await self._sleep(self.interval_s)
            lag_s = max(self._clock() - start - self._interval_ns, 0) / 1e9
            try:
                self._observe(lag_s)
            except Exception as exc:
                self._failed(exc)
                continue
            self.samples += 1
            self.max_lag_s = max(self.max_lag_s, lag_s)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self._failures.inc()
        now = self._clock()
        if now >= self._next_error_log_ns:
            self._next_error_log_ns = now + ERROR_LOG_EVERY_NS
            log.error(
                "event-loop lag not recorded",
                extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200], "errors": self.errors}},
            )
