"""Log lines that cannot flood: a condition is logged when it changes, and while it lasts at most once
per reminder interval with the count of repeats left out; a bare message at most once per interval;
one line per key at most once per interval (refused peers and commands, which may retry at any rate).

Both take the clock as a parameter (monotonic nanoseconds), so tests drive them with a fake one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from common.clock import mono_ns

Clock = Callable[[], int]
REMINDER_S = 60.0


class ConditionLog:
    """One ongoing condition (a link down, a peer not ready), identified by a key such as the failure's
    classification. ``report`` logs when the key differs from the last one reported, otherwise only
    when ``reminder_s`` passed since the last line, with ``repeats`` = how many reports it left out.
    ``clear`` ends the condition, logging once that it is over when one was active."""

    def __init__(
        self, logger: logging.Logger, reminder_s: float = REMINDER_S, clock: Clock = mono_ns
    ) -> None:
        self._log = logger
        self._reminder_ns = int(reminder_s * 1e9)
        self._clock = clock
        self.key: str | None = None  # the active condition, None when all is well
        self.repeats = 0  # reports left out since the last line
        self._last_ns = 0
        self._since_ns = 0

    @property
    def active(self) -> bool:
        return self.key is not None

    def report(self, key: str, msg: str, level: int = logging.WARNING, **fields: Any) -> bool:
        """The condition ``key`` holds (again). Returns whether a line was written."""
        now = self._clock()
        if key == self.key and now - self._last_ns < self._reminder_ns:
            self.repeats += 1
            return False
        if key == self.key:
            fields["repeats"] = self.repeats
            fields["ongoing_s"] = round((now - self._since_ns) / 1e9, 1)
        else:
            self.key, self._since_ns = key, now
        self.repeats = 0
        self._last_ns = now
        self._log.log(level, msg, extra={"fields": fields})
        return True

    def clear(self, msg: str = "", level: int = logging.INFO, **fields: Any) -> bool:
        """The condition is over. Logs ``msg`` (when given) only if one was active."""
        if self.key is None:
            return False
        fields.setdefault("after_s", round((self._clock() - self._since_ns) / 1e9, 1))
        fields.setdefault("was", self.key)
        self.key, self.repeats = None, 0
        if msg:
            self._log.log(level, msg, extra={"fields": fields})
        return True


class RateLimitedLog:
    """A warning that fires at most once per ``interval_s``, reporting how many it suppressed (for
    per-message noise such as malformed frames, where each occurrence is alike)."""

    def __init__(self, logger: logging.Logger, interval_s: float = 5.0, clock: Clock = mono_ns) -> None:
        self._log = logger
        self._interval_ns = int(interval_s * 1e9)
        self._clock = clock
        self._next_ns: int | None = None
        self._suppressed = 0

    def warning(self, msg: str, **fields: Any) -> bool:
        now = self._clock()
        if self._next_ns is not None and now < self._next_ns:
            self._suppressed += 1
            return False
        self._next_ns = now + self._interval_ns
        fields["suppressed_since_last"] = self._suppressed
        self._suppressed = 0
        self._log.warning(msg, extra={"fields": fields})
        return True


class LogLimiter:
    """Whether a line keyed ``key`` may be written now: at most once per ``interval_s`` per key (a
    refused peer may retry at a high rate). Keys come from small vocabularies (refusal reasons,
    exception types), so the table stays small."""

    def __init__(self, interval_s: float = 1.0, clock: Clock = mono_ns) -> None:
        self._interval_ns = int(interval_s * 1e9)
        self._clock = clock
        self._next_ns: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        if now < self._next_ns.get(key, now):
            return False
        self._next_ns[key] = now + self._interval_ns
        return True
