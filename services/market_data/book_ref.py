"""Plain-Python reference book (dict + sorted) with the same overflow rule as the numba book."""

from __future__ import annotations


class RefBook:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})

    def apply(self, sides: list[int], prices: list[int], sizes: list[int], reset: bool) -> None:
        if reset:
            self.sides[0].clear()
            self.sides[1].clear()
        for side, price, size in zip(sides, prices, sizes, strict=True):
            levels = self.sides[side]
            if size == 0:
                levels.pop(price, None)
                continue
            levels[price] = size
            if len(levels) > self.capacity:
                worst = min(levels) if side == 0 else max(levels)
                del levels[worst]

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.sides[0].items(), reverse=True)[:depth]
        asks = sorted(self.sides[1].items())[:depth]
        return bids, asks
