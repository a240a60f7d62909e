"""Time. Wall-clock nanoseconds travel in messages; monotonic nanoseconds measure durations."""

from __future__ import annotations

import time
from datetime import UTC, datetime

wall_ns = time.time_ns
mono_ns = time.monotonic_ns


def ns_to_s(ns: int) -> float:
    return ns / 1e9


def iso_utc(ns: int) -> str | None:
    """Wall-clock nanoseconds as ISO 8601 UTC to the microsecond (``2025-01-02T03:04:05.123456Z``)."""
    if ns <= 0:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def tick_age_error(tick_exch_ns: int, now_ns: int, max_age_ns: int) -> str:
    """Why an order built from the tick stamped ``tick_exch_ns`` (exchange time) must not go out now,
    or "" when it may. An order not built from a tick (0: a timer) is not judged here."""
    if tick_exch_ns <= 0:
        return ""
    age = now_ns - tick_exch_ns
    if age > max_age_ns:
        return f"built from a tick {age / 1e6:.1f} ms old (limit {max_age_ns / 1e6:.0f} ms)"
    if -age > max_age_ns:
        return f"built from a tick stamped {-age / 1e6:.1f} ms in the future"
    return ""
