"""Window statistics from two scrapes of cumulative counters: rates, and quantiles from histogram
bucket deltas (what Prometheus's ``histogram_quantile(rate(...))`` computes)."""

from __future__ import annotations

import math


def counter_delta(before: float | None, after: float | None) -> float | None:
    """How much a counter grew between two scrapes. A counter lower than before was reset (the
    process restarted): everything it counts now happened in the window. None when either is missing."""
    if before is None or after is None:
        return None
    return after if after < before else after - before


def rate(before: float | None, after: float | None, seconds: float) -> float | None:
    """Per-second growth of a counter over ``seconds``; None without two values or a positive window."""
    delta = counter_delta(before, after)
    if delta is None or seconds <= 0:
        return None
    return delta / seconds


def bucket_delta(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    """Cumulative bucket counts of the observations made between two scrapes. A histogram whose total
    went down was reset: its ``after`` counts are the window."""
    if not before or _total(after) < _total(before):
        return dict(after)
    return {le: max(0.0, count - before.get(le, 0.0)) for le, count in after.items()}


def _total(buckets: dict[float, float]) -> float:
    return buckets.get(math.inf, max(buckets.values(), default=0.0))


def observations(buckets: dict[float, float]) -> int:
    return int(_total(buckets))


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile (0..1) of cumulative buckets, interpolated linearly inside its bucket (from 0
    for the first). An answer in the +Inf bucket is the highest finite bound (it is at least that).
    None when there are no observations."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} not in [0, 1]")
    bounds = sorted(buckets)
    total = _total(buckets)
    if not bounds or total <= 0:
        return None
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank and count > prev_count:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        if not math.isinf(le):
            prev_le = le
        prev_count = count
    return prev_le
