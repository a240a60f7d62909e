"""The numba L2 book against the plain-Python reference on random delta streams."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.book_stream import StreamGen
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
    book, packed, ref = L2Book("X", capacity), L2Book("X", capacity), RefBook(capacity)
    with_top = L2Book("X", capacity)
    last: tuple[int, list[tuple[int, int]], list[tuple[int, int]]] | None = None
    unchanged_sides = 0
    for _ in range(300):
        sides, prices, sizes = _random_batch(rng, rng.randrange(0, 25))
        reset = rng.random() < 0.03
        dropped = book.apply(
            np.array(sides, dtype=np.int8),
            np.array(prices, dtype=np.int64),
            np.array(sizes, dtype=np.int64),
            reset,
        )
        flat = np.array([x for triple in zip(sides, prices, sizes, strict=True) for x in triple], np.int64)
        assert packed.apply_packed(flat, reset) == dropped == ref.apply(sides, prices, sizes, reset)
        assert book.top(depth) == packed.top(depth) == ref.top(depth)
        assert book.counts == packed.counts == (len(ref.sides[0]), len(ref.sides[1]))
        got = with_top.apply_packed_top(flat, reset, depth)
        assert got == (dropped, *ref.top(depth))
        for side in (1, 2) if last is not None else ():
            # a side whose top did not change is the very list returned before
            assert (got[side] is last[side]) == (got[side] == last[side])
            unchanged_sides += got[side] is last[side]
        last = got
    assert book.dropped == packed.dropped == with_top.dropped == ref.dropped
    assert unchanged_sides > 0
    if capacity == 8:
        assert ref.dropped > 0  # the stream really exercised the capacity limit


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    capacity=st.sampled_from([24, 64, 200, 512]),
    depths=st.sampled_from([(40, 260), (5, 40), (150, 260)]),
    frame_max=st.sampled_from([1, 10, 50]),
)
def test_realistic_stream_matches_reference(
    seed: int, capacity: int, depths: tuple[int, int], frame_max: int
) -> None:
    """Best bid/ask and top 5 after every delta; the whole book, counts and drops after every frame.

    The stream clusters at the touch and sweeps through it (the venue deletes the levels a crossing
    order takes); capacities below the stream's depth make the book drop its worst levels.
    """
    gen = StreamGen(seed, min_depth=depths[0], max_depth=depths[1], frame_min=1, frame_max=frame_max)
    frames = gen.frames(1_500)
    framed, single, ref = L2Book("X", capacity), L2Book("X", capacity), RefBook(capacity)
    for f in frames:
        framed.apply_packed(f.packed(), f.reset)
        if f.reset:
            single.apply(f.sides[:0], f.prices[:0], f.sizes[:0], True)
            ref.apply([], [], [], True)
        for k in range(len(f.sides)):
            single.apply(f.sides[k : k + 1], f.prices[k : k + 1], f.sizes[k : k + 1], False)
            ref.apply([int(f.sides[k])], [int(f.prices[k])], [int(f.sizes[k])], False)
            assert single.top(5) == ref.top(5)
        assert framed.top(capacity) == ref.top(capacity)
        assert framed.counts == (len(ref.sides[0]), len(ref.sides[1]))
        assert framed.dropped == single.dropped == ref.dropped
    bids, asks = framed.top(1)
    assert bids and asks and bids[0][0] < asks[0][0]  # the stream never crosses the book


def test_stream_is_realistic() -> None:
    """The generator keeps 40–260 levels a side and hits the touch far more often than the depths."""
    gen = StreamGen(3)
    frames = gen.frames(20_000)
    assert all(10 <= len(f.sides) <= 70 for f in frames[1:])  # a sweep adds its deletes and refills
    assert all(40 <= n <= 260 for n in gen.depth())
    assert gen.swept > 0  # orders crossed the touch and took levels
    ref = RefBook(10_000)
    at_touch = deep = 0
    for f in frames:
        for k in range(len(f.sides)):
            side, price = int(f.sides[k]), int(f.prices[k])
            bids, asks = ref.top(10)
            near = [p for p, _ in (bids if side == 0 else asks)][:3]
            at_touch += price in near
            ref.apply([side], [price], [int(f.sizes[k])], f.reset and k == 0)
            deep += price not in [p for p, _ in (bids if side == 0 else asks)]
    n = sum(len(f.sides) for f in frames[1:])
    assert at_touch > n // 2
    assert deep > n // 50  # inserts behind the 10th level and deep deletes happen too


def test_delete_of_absent_level_and_reset() -> None:
    book = L2Book("X", 8)
    book.apply(np.array([0, 1], np.int8), np.array([99, 101], np.int64), np.array([5, 6], np.int64), False)
    book.apply(np.array([0], np.int8), np.array([98], np.int64), np.array([0], np.int64), False)
    assert book.top(5) == ([(99, 5)], [(101, 6)])
    book.apply(np.array([1], np.int8), np.array([105], np.int64), np.array([1], np.int64), True)
    assert book.top(5) == ([], [(105, 1)])


def test_full_side_drops_the_worst_level_and_counts_it() -> None:
    book = L2Book("X", 2)
    bids = np.zeros(3, np.int8)
    assert book.apply(bids, np.array([10, 11, 12], np.int64), np.array([1, 1, 1], np.int64), False) == 1
    assert book.top(5) == ([(12, 1), (11, 1)], [])
    # A new level worse than everything held is itself the one dropped.
    assert book.apply(bids[:1], np.array([9], np.int64), np.array([1], np.int64), False) == 1
    assert book.top(5) == ([(12, 1), (11, 1)], [])
    assert book.dropped == 2


def test_runs_move_back_to_the_middle_of_their_buffer() -> None:
    """Bids: a full side gaining a new best level every time (its run drifts to the buffer's end).
    Asks: half full, a new worst level in and the best out every time (its run drifts to the start).
    Both hit the buffer's ends many times over and stay exact."""
    capacity = 16
    book, ref = L2Book("X", capacity), RefBook(capacity)
    for k in range(40 * capacity):
        sides = [0, 1, 1]
        prices = [1_000 + k, 10_000 + k, 10_000 + k - capacity // 2]
        sizes = [k + 1, k + 1, 0]
        book.apply(np.array(sides, np.int8), np.array(prices, np.int64), np.array(sizes, np.int64), False)
        ref.apply(sides, prices, sizes, False)
        assert book.top(capacity) == ref.top(capacity)
    assert book.counts == (capacity, capacity // 2)
    assert book.dropped == ref.dropped > 0


def test_side_outside_bid_ask_is_skipped() -> None:
    book = L2Book("X", 8)
    book.apply(
        np.array([2, -1, 0], np.int8), np.array([5, 6, 7], np.int64), np.array([1, 1, 1], np.int64), False
    )
    assert book.top(5) == ([(7, 1)], [])
    book.apply_packed(np.array([2, 5, 1, -1, 6, 1, 1, 9, 2, 0], np.int64), False)  # + an incomplete delta
    assert book.top(5) == ([(7, 1)], [(9, 2)])


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        L2Book("X", 0)
