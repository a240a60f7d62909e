"""Plain-Python reference book (dict + sorted) with the same overflow rule as the numba book."""

from __future__ import annotations


class RefBook:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.dropped = 0  # levels lost to the capacity limit

    def apply(self, sides: list[int], prices: list[int], sizes: list[int], reset: bool) -> int:
        """Apply deltas in order; return how many levels the capacity limit dropped."""
        if reset:
            self.sides[0].clear()
            self.sides[1].clear()
        dropped = 0
        for side, price, size in zip(sides, prices, sizes, strict=True):
            levels = self.sides[side]
            if size == 0:
                levels.pop(price, None)
                continue
            levels[price] = size
            if len(levels) > self.capacity:
                worst = min(levels) if side == 0 else max(levels)
                del levels[worst]
                dropped += 1
        self.dropped += dropped
        return dropped

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.sides[0].items(), reverse=True)[:depth]
        asks = sorted(self.sides[1].items())[:depth]
        return bids, asks
