"""Fixed-capacity L2 order book in numba: one call applies a whole frame of deltas.

Layout. Each side is a sorted run ``levels[side, lo:hi] = (key, size_nanos)`` inside a buffer of
``2 * capacity`` slots, with the BEST level at the END of the run (index ``hi - 1``). The key is the
price for bids and minus the price for asks, so both sides are ascending in key and one code path
serves both. Updates cluster at the touch, so a level is looked for from the end: the 4 best one by
one, then galloping (O(log distance) probes). An insert or delete moves only the levels on its
shorter side: the few between it and the touch, or, for a level deep in the book, those between it
and the worst level (the run grows or shrinks at either end). A run that reaches an end of the
buffer is moved back to its middle, at most once per ``capacity / 2`` inserts. Calling numba costs
~340 ns of dispatch while one update costs tens of ns, so deltas are always handed over a frame at
a time (docs/architecture.md, "Market data").

Overflow: when a side holds ``capacity`` levels, inserting a new level drops the WORST level of that
side (or the new level itself if it is the worst); each drop is counted. Depth beyond ``capacity``
is therefore lost until the next snapshot; a later delete of a dropped level is a no-op. The top of
book is never affected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BID = 0
ASK = 1

Levels = list[tuple[int, int]]  # (price, size) nanos, best first

# The slot after each side's buffer holds the bounds of its run: levels[side, -1] = (lo, hi). Keeping
# them in the same array saves an argument, and each array argument costs ~60 ns of numba dispatch.
LO = 0
HI = 1


@njit(cache=True, inline="always")
def _find(levels: np.ndarray, side: int, lo: int, hi: int, key: int) -> int:
    """First index in [lo, hi) whose key is >= ``key`` (hi if none): the 4 levels at the touch one
    by one (most updates land there), then galloping away from it and a binary search."""
    right = hi  # every key in [right, hi) is >= key
    for _ in range(4):
        if right == lo or levels[side, right - 1, 0] < key:
            return right
        right -= 1
    left = lo
    step = 1
    while True:
        probe = right - step
        if probe < lo:
            break
        if levels[side, probe, 0] < key:
            left = probe + 1
            break
        right = probe
        step <<= 1
    while left < right:
        mid = (left + right) >> 1
        if levels[side, mid, 0] < key:
            left = mid + 1
        else:
            right = mid
    return left


@njit(cache=True, inline="always")
def _move(levels: np.ndarray, side: int, src: int, dst: int, n: int) -> None:
    """Copy ``n`` levels from ``src`` to ``dst`` within one side; the ranges may overlap."""
    if dst < src:
        for j in range(n):
            levels[side, dst + j, 0] = levels[side, src + j, 0]
            levels[side, dst + j, 1] = levels[side, src + j, 1]
    else:
        for j in range(n - 1, -1, -1):
            levels[side, dst + j, 0] = levels[side, src + j, 0]
            levels[side, dst + j, 1] = levels[side, src + j, 1]


@njit(cache=True, inline="always")
def _apply_one(levels: np.ndarray, slots: int, side: int, key: int, size: int) -> int:
    """Set (size > 0) or delete (size 0) the level ``key`` of ``side``; 1 if a level was dropped."""
    cap = slots >> 1
    lo = levels[side, slots, LO]
    hi = levels[side, slots, HI]
    i = _find(levels, side, lo, hi, key)
    if i < hi and levels[side, i, 0] == key:
        if size != 0:
            levels[side, i, 1] = size
        elif hi - 1 - i <= i - lo:  # delete: close the gap from the shorter side
            _move(levels, side, i + 1, i, hi - 1 - i)
            levels[side, slots, HI] = hi - 1
        else:
            _move(levels, side, lo, lo + 1, i - lo)
            levels[side, slots, LO] = lo + 1
        return 0
    if size == 0:
        return 0
    dropped = 0
    if hi - lo == cap:
        dropped = 1
        if i == lo:  # the new level would be the worst: it is the one dropped
            return 1
        lo += 1  # drop the worst level; the insert below finds room at the head
    n = hi - lo
    if hi - i <= i - lo:  # insert: open the gap on the shorter side
        if hi == slots:
            new_lo = (slots - n) >> 1
            _move(levels, side, lo, new_lo, n)
            i += new_lo - lo
            lo, hi = new_lo, new_lo + n
        _move(levels, side, i, i + 1, hi - i)
        hi += 1
    else:
        if lo == 0:
            new_lo = (slots - n) >> 1
            _move(levels, side, lo, new_lo, n)
            i += new_lo - lo
            lo, hi = new_lo, new_lo + n
        _move(levels, side, lo, lo - 1, i - lo)
        lo -= 1
        i -= 1
    levels[side, i, 0] = key
    levels[side, i, 1] = size
    levels[side, slots, LO] = lo
    levels[side, slots, HI] = hi
    return dropped


@njit(cache=True, inline="always")
def _reset(levels: np.ndarray, slots: int) -> None:
    cap = slots >> 1
    levels[0, slots, LO] = levels[0, slots, HI] = levels[1, slots, LO] = levels[1, slots, HI] = cap


@njit(cache=True)
def apply_batch(
    levels: np.ndarray,
    sides: np.ndarray,
    prices: np.ndarray,
    sizes: np.ndarray,
    reset: bool,
) -> int:
    """Apply deltas in order; return how many levels the capacity limit dropped in this call.

    ``reset`` empties the book first (an ``r: true`` snapshot). Size 0 deletes the level (absent
    levels are ignored); any other size sets it. A side other than BID/ASK is skipped: it would
    index outside the arrays, which numba does not check.
    """
    slots = levels.shape[1] - 1
    if reset:
        _reset(levels, slots)
    dropped = 0
    for k in range(sides.shape[0]):
        side = sides[k]
        if side != 0 and side != 1:
            continue
        dropped += _apply_one(levels, slots, side, prices[k] if side == 0 else -prices[k], sizes[k])
    return dropped


@njit(cache=True)
def apply_packed(levels: np.ndarray, deltas: np.ndarray, reset: bool) -> int:
    """``apply_batch`` on one flat int64 array ``[side, price, size, side, price, size, ...]``.

    One array argument instead of three: numba's dispatch costs ~60 ns per array argument, and the
    caller builds one array instead of three. A trailing incomplete delta is ignored.
    """
    slots = levels.shape[1] - 1
    if reset:
        _reset(levels, slots)
    dropped = 0
    for k in range(0, deltas.shape[0] - 2, 3):
        side = deltas[k]
        if side != 0 and side != 1:
            continue
        price = deltas[k + 1]
        dropped += _apply_one(levels, slots, side, price if side == 0 else -price, deltas[k + 2])
    return dropped


TOP_HEADER = 4  # n_bids, n_asks, bids changed, asks changed


@njit(cache=True)
def apply_packed_top(levels: np.ndarray, deltas: np.ndarray, reset: bool, top: np.ndarray) -> int:
    """``apply_packed``, then the top of book written into ``top`` in the same call:
    ``[n_bids, n_asks, bids changed, asks changed, bid px, bid size, ... (depth pairs), ask px,
    ask size, ... (depth pairs)]``, best first, with ``depth = (len(top) - TOP_HEADER) // 4``.
    ``top`` keeps the previous call's top, so a side is flagged changed (1) only if its levels differ
    from that. Reading the top from Python instead takes several numpy slices per frame, each
    costing more than the whole apply."""
    dropped = apply_packed(levels, deltas, reset)
    slots = levels.shape[1] - 1
    depth = (top.shape[0] - TOP_HEADER) >> 2
    for side in range(2):
        lo = levels[side, slots, LO]
        hi = levels[side, slots, HI]
        n = min(depth, hi - lo)
        changed = top[side] != n
        top[side] = n
        base = TOP_HEADER + side * 2 * depth
        sign = 1 if side == 0 else -1
        for j in range(n):
            px = sign * levels[side, hi - 1 - j, 0]
            sz = levels[side, hi - 1 - j, 1]
            if top[base + 2 * j] != px or top[base + 2 * j + 1] != sz:
                changed = True
                top[base + 2 * j] = px
                top[base + 2 * j + 1] = sz
        top[2 + side] = 1 if changed else 0
    return dropped


class L2Book:
    """One symbol's book: the arrays plus the frame-level apply and the top-N view."""

    __slots__ = ("_top", "_top_lists", "dropped", "levels", "symbol")

    def __init__(self, symbol: str, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"book capacity must be at least 1, got {capacity}")
        self.symbol = symbol
        self.levels = np.zeros((2, 2 * capacity + 1, 2), dtype=np.int64)
        self.levels[:, -1] = capacity  # both runs empty, in the middle of their buffers
        self.dropped = 0  # levels lost to the capacity limit since this book was made
        self._top: np.ndarray | None = None  # apply_packed_top's output, reused
        self._top_lists: tuple[Levels, Levels] = ([], [])  # the top it last returned

    def apply(self, sides: np.ndarray, prices: np.ndarray, sizes: np.ndarray, reset: bool) -> int:
        """Apply one frame's deltas (int8 sides, int64 nanos); return the levels dropped for capacity."""
        dropped: int = apply_batch(self.levels, sides, prices, sizes, reset)
        if dropped:
            self.dropped += dropped
        return dropped

    def apply_packed(self, deltas: np.ndarray, reset: bool) -> int:
        """``apply`` for one flat int64 array of (side, price, size) triples: what market_data uses."""
        dropped: int = apply_packed(self.levels, deltas, reset)
        if dropped:
            self.dropped += dropped
        return dropped

    def apply_packed_top(self, deltas: np.ndarray, reset: bool, depth: int) -> tuple[int, Levels, Levels]:
        """``apply_packed`` and then ``top(depth)``, in one numba call: (dropped, bids, asks).

        A side whose top did not change comes back as the same list as the last call's: building
        the (price, size) tuples costs more than the numba call, and a frame often leaves one side's
        top as it was (deltas on the other side, or deep in the book). The lists are shared, so
        callers must not mutate them."""
        buf = self._top
        if buf is None or buf.shape[0] != TOP_HEADER + 4 * depth:
            buf = self._top = np.zeros(TOP_HEADER + 4 * depth, dtype=np.int64)
            self._top_lists = ([], [])
        dropped: int = apply_packed_top(self.levels, deltas, reset, buf)
        if dropped:
            self.dropped += dropped
        bids, asks = self._top_lists
        n_bids, n_asks, bids_changed, asks_changed = buf[:TOP_HEADER].tolist()
        if bids_changed:
            vals = iter(buf[TOP_HEADER : TOP_HEADER + 2 * n_bids].tolist())
            bids = list(zip(vals, vals, strict=False))  # whole pairs; strict costs ~300 ns
        if asks_changed:
            base = TOP_HEADER + 2 * depth
            vals = iter(buf[base : base + 2 * n_asks].tolist())
            asks = list(zip(vals, vals, strict=False))  # whole pairs; strict costs ~300 ns
        if bids_changed or asks_changed:
            self._top_lists = (bids, asks)
        return dropped, bids, asks

    @property
    def counts(self) -> tuple[int, int]:
        """Levels held per side: (bids, asks)."""
        (lo_b, hi_b), (lo_a, hi_a) = self.levels[:, -1].tolist()
        return hi_b - lo_b, hi_a - lo_a

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks), best first, at most ``depth`` levels each, as (price, size) nanos."""
        (lo_b, hi_b), (lo_a, hi_a) = self.levels[:, -1].tolist()
        nb = min(depth, hi_b - lo_b)
        na = min(depth, hi_a - lo_a)
        bids = [(k, s) for k, s in self.levels[0, hi_b - nb : hi_b][::-1].tolist()]
        asks = [(-k, s) for k, s in self.levels[1, hi_a - na : hi_a][::-1].tolist()]
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
    book.apply_packed(np.array([0, 5, 1, 1, 6, 0], dtype=np.int64), False)
    book.top(1)
    book.apply_packed_top(np.array([0, 5, 1], dtype=np.int64), False, 2)
