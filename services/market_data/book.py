"""Fixed-capacity L2 order book in numba: one call applies a whole frame of deltas.

Layout per book: ``levels[side, i] = (price_nanos, size_nanos)`` for ``i < counts[side]``; side 0
is bids (descending price), side 1 asks (ascending). Calling numba costs ~340 ns of dispatch while
one update costs ~50 ns, so deltas are always handed over in batches (docs/architecture.md, "Measured baselines").

Overflow: when a side is full, inserting a new level drops the WORST level of that side (or the new
level itself if it is the worst). Depth beyond ``capacity`` is therefore lost until the next
snapshot; a later delete of a dropped level is a no-op. The top of book is never affected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BID = 0
ASK = 1


@njit(cache=True)
def _find(levels: np.ndarray, side: int, n: int, price: int) -> int:
    """Index of ``price`` or of where it would be inserted, keeping the side's order."""
    lo = 0
    hi = n
    if side == 0:
        while lo < hi:
            mid = (lo + hi) >> 1
            if levels[0, mid, 0] > price:
                lo = mid + 1
            else:
                hi = mid
    else:
        while lo < hi:
            mid = (lo + hi) >> 1
            if levels[1, mid, 0] < price:
                lo = mid + 1
            else:
                hi = mid
    return lo


@njit(cache=True)
def apply_batch(
    levels: np.ndarray,
    counts: np.ndarray,
    sides: np.ndarray,
    prices: np.ndarray,
    sizes: np.ndarray,
    reset: bool,
) -> None:
    """Apply deltas in order. ``reset`` empties the book first (an ``r: true`` snapshot).

    Size 0 deletes the level (absent levels are ignored); any other size sets it.
    """
    cap = levels.shape[1]
    if reset:
        counts[0] = 0
        counts[1] = 0
    for k in range(sides.shape[0]):
        side = sides[k]
        price = prices[k]
        size = sizes[k]
        n = counts[side]
        i = _find(levels, side, n, price)
        present = i < n and levels[side, i, 0] == price
        if size == 0:
            if present:
                for j in range(i, n - 1):
                    levels[side, j, 0] = levels[side, j + 1, 0]
                    levels[side, j, 1] = levels[side, j + 1, 1]
                counts[side] = n - 1
        elif present:
            levels[side, i, 1] = size
        elif i < cap:
            last = n if n < cap else cap - 1  # when full, the worst level falls off the end
            for j in range(last, i, -1):
                levels[side, j, 0] = levels[side, j - 1, 0]
                levels[side, j, 1] = levels[side, j - 1, 1]
            levels[side, i, 0] = price
            levels[side, i, 1] = size
            if n < cap:
                counts[side] = n + 1


class L2Book:
    """One symbol's book: the arrays plus the frame-level apply and the top-N view."""

    __slots__ = ("counts", "levels", "symbol")

    def __init__(self, symbol: str, capacity: int) -> None:
        self.symbol = symbol
        self.levels = np.zeros((2, capacity, 2), dtype=np.int64)
        self.counts = np.zeros(2, dtype=np.int64)

    def apply(self, sides: np.ndarray, prices: np.ndarray, sizes: np.ndarray, reset: bool) -> None:
        apply_batch(self.levels, self.counts, sides, prices, sizes, reset)

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks), best first, at most ``depth`` levels each, as (price, size) nanos."""
        nb = min(depth, int(self.counts[0]))
        na = min(depth, int(self.counts[1]))
        bids = [(p, s) for p, s in self.levels[0, :nb].tolist()]
        asks = [(p, s) for p, s in self.levels[1, :na].tolist()]
        return bids, asks


def warm_up() -> None:
    """Compile (or load from the cache) before the first frame arrives."""
    book = L2Book("WARMUP", 8)
    book.apply(
        np.array([0, 1, 0, 1], dtype=np.int8),
        np.array([2, 3, 1, 3], dtype=np.int64),
        np.array([1, 1, 1, 0], dtype=np.int64),
        True,
    )
    book.top(1)
