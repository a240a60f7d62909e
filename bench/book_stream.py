"""A seeded, realistic L2 delta stream for the book benchmark and the book property test.

The shape of a crypto L2 feed: a snapshot, then frames of 10–50 deltas. Each side keeps between
``min_depth`` and ``max_depth`` levels (40–260 by default). Updates cluster at the touch: the level a
delta hits lies a geometric number of levels from the best (mean 1.5), with a few anywhere in the
book. Size changes dominate; inserts fill gaps or improve the touch inside the spread (a spread
wider than 4 ticks is soon narrowed); deletes remove levels. A buy priced at or through the best ask
(~1.5% of deltas) is handled as the venue would: the asks it reaches are deleted (consumed) before
the bid rests, so the published book is never crossed. Every delete hits a level
that exists, so any L2 book (ours, the reference, nautilus_trader's) sees the same stream.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import numpy as np

TICK_NANOS = 10_000_000  # $0.01
LOT_NANOS = 100_000  # 0.0001 units
MID_TICKS = 6_000_000  # $60,000.00


@dataclass(frozen=True, slots=True)
class Frame:
    reset: bool
    sides: np.ndarray  # int8, 0 bid / 1 ask
    prices: np.ndarray  # int64 nanos
    sizes: np.ndarray  # int64 nanos, 0 = delete

    def packed(self) -> np.ndarray:
        """The flat int64 (side, price, size, ...) array ``L2Book.apply_packed`` takes."""
        return np.stack([self.sides.astype(np.int64), self.prices, self.sizes], axis=1).ravel()


class _Side:
    """One side of the generator's own book, kept ascending by goodness (the best level last)."""

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.keys: list[int] = []  # ticks for bids, -ticks for asks: ascending, best last
        self.sizes: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def price(self, key: int) -> int:
        return key if self.is_bid else -key

    def key(self, ticks: int) -> int:
        return ticks if self.is_bid else -ticks

    def best_ticks(self) -> int:
        return self.price(self.keys[-1])

    def set(self, key: int, size: int) -> None:
        if key not in self.sizes:
            bisect.insort(self.keys, key)
        self.sizes[key] = size

    def delete(self, key: int) -> None:
        del self.sizes[key]
        del self.keys[bisect.bisect_left(self.keys, key)]


class StreamGen:
    """Generates frames; ``frames(n_deltas)`` yields the snapshot first."""

    def __init__(
        self, seed: int, min_depth: int = 40, max_depth: int = 260, frame_min: int = 10, frame_max: int = 50
    ) -> None:
        self.rng = random.Random(seed)
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.frame_min = frame_min
        self.frame_max = frame_max
        self.sides = (_Side(True), _Side(False))
        self.target = [self.rng.randint(min_depth, max_depth) for _ in range(2)]
        self.swept = 0  # levels a crossing order took (deleted before it rested)

    def _size(self) -> int:
        return self.rng.randint(1, 50_000) * LOT_NANOS

    def _distance(self) -> int:
        """Levels from the touch: geometric near it, sometimes anywhere."""
        rng = self.rng
        if rng.random() < 0.05:
            return rng.randrange(self.max_depth)
        d = 0
        while rng.random() < 0.6:
            d += 1
        return d

    def snapshot(self) -> list[tuple[int, int, int]]:
        out = []
        for s, side in enumerate(self.sides):
            side.keys.clear()
            side.sizes.clear()
            ticks = MID_TICKS - 1 if s == 0 else MID_TICKS + 1
            step = -1 if s == 0 else 1
            for _ in range(self.target[s]):
                side.set(side.key(ticks), self._size())
                ticks += step * (1 + (self.rng.random() < 0.3) * self.rng.randint(1, 4))
            out += [(s, side.price(k) * TICK_NANOS, side.sizes[k]) for k in reversed(side.keys)]
        return out

    def _delta(self, out: list[tuple[int, int, int]]) -> None:
        rng = self.rng
        s = rng.randrange(2)
        side, other = self.sides[s], self.sides[1 - s]
        if rng.random() < 0.002:  # the depth a side aims at drifts, every ~1,000 deltas
            self.target[s] = rng.randint(self.min_depth, self.max_depth)
        n = len(side)
        d = min(self._distance(), n - 1)
        if self._spread() > 4 and rng.random() < 0.3:  # a wide spread is soon narrowed
            self._insert(s, side, other, 0, out, improve=True)
            return
        r = rng.random()
        p_delete = 0.15 if n <= self.target[s] else 0.35
        p_insert = 0.35 if n < self.target[s] else 0.15
        if n <= self.min_depth:
            p_delete = 0.0
        elif n >= self.max_depth:
            p_insert = 0.0
        if r < p_delete:
            key = side.keys[n - 1 - d]
            side.delete(key)
            out.append((s, side.price(key) * TICK_NANOS, 0))
        elif r < p_delete + p_insert:
            self._insert(s, side, other, d, out)
        else:
            key = side.keys[n - 1 - d]
            size = self._size()
            side.sizes[key] = size
            out.append((s, side.price(key) * TICK_NANOS, size))

    def _spread(self) -> int:
        bids, asks = self.sides
        return asks.best_ticks() - bids.best_ticks() if len(bids) and len(asks) else 0

    def _insert(
        self,
        s: int,
        side: _Side,
        other: _Side,
        d: int,
        out: list[tuple[int, int, int]],
        improve: bool = False,
    ) -> None:
        rng = self.rng
        n = len(side)
        spread = side.key(other.best_ticks()) - side.keys[-1] if len(other) else 2
        if d == 0 and rng.random() < 0.1:
            key = side.keys[-1] + spread + rng.randint(0, 3)  # reaches or crosses the other touch
        elif d == 0 and spread > 1 and (improve or rng.random() < 0.5):
            key = side.keys[-1] + rng.randint(1, spread - 1)  # improves the touch inside the spread
        else:
            key = side.keys[n - 1 - d] - rng.randint(1, 3)  # behind the d-th level: the first free tick
            while key in side.sizes:
                key -= 1
        ticks = side.price(key)
        o = 1 - s
        while len(other) and (ticks >= other.best_ticks() if s == 0 else ticks <= other.best_ticks()):
            consumed = other.keys[-1]
            other.delete(consumed)  # the aggressor trades the level away: the venue deletes it
            self.swept += 1
            out.append((o, other.price(consumed) * TICK_NANOS, 0))
        size = self._size()
        side.set(key, size)
        out.append((s, ticks * TICK_NANOS, size))
        while len(side) > self.max_depth:  # the venue publishes a bounded depth: the worst falls off
            worst = side.keys[0]
            side.delete(worst)
            out.append((s, side.price(worst) * TICK_NANOS, 0))
        if len(other) < self.min_depth:  # liquidity refills behind a sweep
            far = other.keys[0] if len(other) else other.key(ticks + (1 if s == 0 else -1)) + 1
            for _ in range(self.min_depth - len(other)):
                far -= rng.randint(1, 2)
                size = self._size()
                other.set(far, size)
                out.append((o, other.price(far) * TICK_NANOS, size))

    def frames(self, n_deltas: int) -> list[Frame]:
        """A snapshot frame, then frames of ``frame_min``–``frame_max`` deltas, ~``n_deltas`` in all."""
        frames = [_frame(True, self.snapshot())]
        made = 0
        while made < n_deltas:
            want = self.rng.randint(self.frame_min, self.frame_max)
            deltas: list[tuple[int, int, int]] = []
            while len(deltas) < want:
                self._delta(deltas)
            frames.append(_frame(False, deltas))
            made += len(deltas)
        return frames

    def depth(self) -> tuple[int, int]:
        return len(self.sides[0]), len(self.sides[1])


def _frame(reset: bool, deltas: list[tuple[int, int, int]]) -> Frame:
    sides, prices, sizes = zip(*deltas, strict=True) if deltas else ((), (), ())
    return Frame(
        reset,
        np.array(sides, dtype=np.int8),
        np.array(prices, dtype=np.int64),
        np.array(sizes, dtype=np.int64),
    )
