"""The numba L2 book against the plain-Python reference on random delta streams."""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.market_data.book import L2Book
from services.market_data.book_ref import RefBook


def _random_batch(rng: random.Random, n: int) -> tuple[list[int], list[int], list[int]]:
    sides, prices, sizes = [], [], []
    for _ in range(n):
        side = rng.randrange(2)
        # Narrow price grid: many updates hit existing levels, many deletes hit absent ones.
        price = (1000 + (rng.randrange(60) if side else -rng.randrange(60))) * 10_000_000
        size = 0 if rng.random() < 0.3 else rng.randrange(1, 5_000) * 1_000_000
        sides.append(side)
        prices.append(price)
        sizes.append(size)
    return sides, prices, sizes


@pytest.mark.parametrize("seed", range(40))
def test_numba_book_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    capacity = rng.choice([8, 16, 64])  # small capacities force overflow
    depth = rng.choice([1, 5, 10, 64])
    book, ref = L2Book("X", capacity), RefBook(capacity)
    overflowed = False
    for _ in range(300):
        sides, prices, sizes = _random_batch(rng, rng.randrange(0, 25))
        reset = rng.random() < 0.03
        book.apply(
            np.array(sides, dtype=np.int8),
            np.array(prices, dtype=np.int64),
            np.array(sizes, dtype=np.int64),
            reset,
        )
        ref.apply(sides, prices, sizes, reset)
        assert book.top(depth) == ref.top(depth)
        assert [int(c) for c in book.counts] == [len(ref.sides[0]), len(ref.sides[1])]
        overflowed |= len(ref.sides[0]) == capacity or len(ref.sides[1]) == capacity
    if capacity == 8:
        assert overflowed  # the stream really exercised the capacity limit


def test_delete_of_absent_level_and_reset() -> None:
    book = L2Book("X", 8)
    book.apply(np.array([0, 1], np.int8), np.array([99, 101], np.int64), np.array([5, 6], np.int64), False)
    book.apply(np.array([0], np.int8), np.array([98], np.int64), np.array([0], np.int64), False)
    assert book.top(5) == ([(99, 5)], [(101, 6)])
    book.apply(np.array([1], np.int8), np.array([105], np.int64), np.array([1], np.int64), True)
    assert book.top(5) == ([], [(105, 1)])
