"""Time. Wall-clock nanoseconds travel in messages; monotonic nanoseconds measure durations."""

from __future__ import annotations

import time

wall_ns = time.time_ns
mono_ns = time.monotonic_ns


def ns_to_s(ns: int) -> float:
    return ns / 1e9
