"""Benchmark: the numba L2 book against nautilus_trader's OrderBook on one realistic delta stream.

    .venv/bin/python -m bench.book [--quick] [--deltas N] [--reps R] [--seed S]

The stream (``bench/book_stream.py``, seeded): a snapshot, then frames of 10–50 deltas, 40–260 levels
a side, updates clustered at the touch. Variants, each with its own book, timed over the same blocks
of frames in rotating order, every repetition from a fresh book:

- ``numba_batch``: ``L2Book.apply_packed`` once per frame (what market_data does: one flat array);
- ``numba_batch_3arrays``: ``L2Book.apply`` once per frame (sides, prices, sizes as three arrays);
- ``numba_single``: one ``L2Book.apply`` call per delta (shows the dispatch cost batching avoids);
- ``nautilus_batch``: ``OrderBook.apply_deltas`` once per frame (L2_MBP, pre-built deltas);
- ``nautilus_single``: ``OrderBook.apply_delta`` per pre-built delta.

Inputs are built before timing on both sides (numpy arrays per frame, nautilus delta objects).
Correctness, untimed: a numba book fed one delta at a time and a nautilus book fed ``apply_delta``
are compared on best bid/ask and the top 5 (price and size) after EVERY delta, and the per-frame
numba book against the per-frame nautilus book after every frame; every difference is counted.

nautilus_trader is optional (the ``bench`` extra, ``make bench-deps``); without it the numba
figures are reported alone with ``nautilus_available = 0``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.book_stream import Frame, StreamGen
from services.market_data.book import L2Book

CAPACITY = 512  # market_data.book_capacity's default
TOP = 5
BLOCK_FRAMES = 50  # frames timed per variant before the next variant takes its turn

Top = tuple[list[tuple[int, int]], list[tuple[int, int]]]


@dataclass(slots=True)
class Variant:
    """A book under test: ``make`` builds a book holding the snapshot, ``run`` applies frames[lo:hi]."""

    name: str
    make: Callable[[], Any]
    run: Callable[[Any, int, int], None]


def numba_variants(frames: list[Frame], book_cls: type = L2Book) -> list[Variant]:
    def make() -> Any:
        book = book_cls("BENCH", CAPACITY)
        f = frames[0]
        book.apply(f.sides, f.prices, f.sizes, f.reset)
        return book

    packed = [f.packed() for f in frames]
    singles = [
        [(f.sides[k : k + 1], f.prices[k : k + 1], f.sizes[k : k + 1]) for k in range(len(f.sides))]
        for f in frames
    ]

    def run_packed(book: Any, lo: int, hi: int) -> None:
        apply = book.apply_packed
        for deltas in packed[lo:hi]:
            apply(deltas, False)

    def run_arrays(book: Any, lo: int, hi: int) -> None:
        apply = book.apply
        for f in frames[lo:hi]:
            apply(f.sides, f.prices, f.sizes, False)

    def run_single(book: Any, lo: int, hi: int) -> None:
        apply = book.apply
        for frame in singles[lo:hi]:
            for s, p, z in frame:
                apply(s, p, z, False)

    return [
        Variant("numba_batch", make, run_packed),
        Variant("numba_batch_3arrays", make, run_arrays),
        Variant("numba_single", make, run_single),
    ]


class Nautilus:
    """nautilus_trader's L2_MBP OrderBook fed the same stream as pre-built delta objects."""

    def __init__(self, frames: list[Frame]) -> None:
        from nautilus_trader.model.book import OrderBook
        from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
        from nautilus_trader.model.enums import BookAction, BookType, OrderSide
        from nautilus_trader.model.identifiers import InstrumentId
        from nautilus_trader.model.objects import FIXED_PRECISION, Price, Quantity

        self._book_cls, self._book_type = OrderBook, BookType.L2_MBP
        self.instrument = InstrumentId.from_str("BTC/USD.ALPACA")
        self.scale = 10 ** (FIXED_PRECISION - 9)  # our nanos -> nautilus raw
        order_side = (OrderSide.BUY, OrderSide.SELL)
        held: tuple[set[int], set[int]] = (set(), set())  # which action a delta is: add, update, delete
        self.frames: list[list[Any]] = []
        for f in frames:
            if f.reset:
                held[0].clear()
                held[1].clear()
            deltas = [OrderBookDelta.clear(self.instrument, 0, 0, 0)] if f.reset else []
            for side, px, sz in zip(f.sides.tolist(), f.prices.tolist(), f.sizes.tolist(), strict=True):
                if sz == 0:
                    action = BookAction.DELETE
                    held[side].discard(px)
                elif px in held[side]:
                    action = BookAction.UPDATE
                else:
                    action = BookAction.ADD
                    held[side].add(px)
                order = BookOrder(
                    order_side[side],
                    Price.from_raw(px * self.scale, 2),
                    Quantity.from_raw(sz * self.scale, 4),
                    0,
                )
                deltas.append(OrderBookDelta(self.instrument, action, order, 0, 0, 0, 0))
            self.frames.append(deltas)
        self.batches = [OrderBookDeltas(self.instrument, d) for d in self.frames]

    def book(self) -> Any:
        book = self._book_cls(self.instrument, self._book_type)
        book.apply_deltas(self.batches[0])
        return book

    def variants(self) -> list[Variant]:
        batches, frames = self.batches, self.frames

        def run_batch(book: Any, lo: int, hi: int) -> None:
            apply = book.apply_deltas
            for b in batches[lo:hi]:
                apply(b)

        def run_single(book: Any, lo: int, hi: int) -> None:
            apply = book.apply_delta
            for deltas in frames[lo:hi]:
                for d in deltas:
                    apply(d)

        return [
            Variant("nautilus_batch", self.book, run_batch),
            Variant("nautilus_single", self.book, run_single),
        ]

    def top(self, book: Any) -> Top:
        scale = self.scale
        return (
            [(lv.price.raw // scale, lv.orders()[0].size.raw // scale) for lv in book.bids()[:TOP]],
            [(lv.price.raw // scale, lv.orders()[0].size.raw // scale) for lv in book.asks()[:TOP]],
        )


def load_nautilus(frames: list[Frame]) -> tuple[Nautilus | None, str]:
    try:
        import nautilus_trader
    except ImportError:
        return None, "nautilus_trader is not installed (make bench-deps)"
    return Nautilus(frames), f"nautilus_trader {nautilus_trader.__version__}"


def cross_check(frames: list[Frame], naut: Nautilus | None) -> dict[str, float]:
    """Untimed: top 5 after every delta (numba one delta at a time vs nautilus apply_delta) and after
    every frame (numba per frame vs nautilus apply_deltas). Also the depth the stream kept."""
    single, framed = L2Book("CHECK", CAPACITY), L2Book("CHECK", CAPACITY)
    n_single = naut.book() if naut else None
    n_framed = naut.book() if naut else None
    f0 = frames[0]
    single.apply(f0.sides, f0.prices, f0.sizes, True)
    framed.apply(f0.sides, f0.prices, f0.sizes, True)
    mismatches = checked = 0
    bid_depths, ask_depths, touch_hits = [], [], 0
    for i in range(1, len(frames)):
        f = frames[i]
        bids, asks = single.top(TOP)
        near = ({p for p, _ in bids}, {p for p, _ in asks})
        for k, (side, px) in enumerate(zip(f.sides.tolist(), f.prices.tolist(), strict=True)):
            touch_hits += px in near[side]
            single.apply(f.sides[k : k + 1], f.prices[k : k + 1], f.sizes[k : k + 1], False)
            if n_single is not None and naut is not None:
                n_single.apply_delta(naut.frames[i][k])
                checked += 1
                mismatches += single.top(TOP) != naut.top(n_single)
            near = tuple({p for p, _ in lv} for lv in single.top(TOP))  # type: ignore[assignment]
        framed.apply_packed(f.packed(), False)
        mismatches += framed.top(CAPACITY) != single.top(CAPACITY)
        if n_framed is not None and naut is not None:
            n_framed.apply_deltas(naut.batches[i])
            mismatches += framed.top(TOP) != naut.top(n_framed)
        nb, na = framed.counts
        bid_depths.append(nb)
        ask_depths.append(na)
    n_deltas = sum(len(f.sides) for f in frames[1:])
    depths = bid_depths + ask_depths
    return {
        "mismatches": float(mismatches),
        "checked_deltas": float(checked),
        "depth_mean": statistics.fmean(depths),
        "depth_min": float(min(depths)),
        "depth_max": float(max(depths)),
        "touch_share": touch_hits / n_deltas,  # deltas at one of the 5 best prices of their side
        "dropped_levels": float(framed.dropped),
    }


def time_variants(
    variants: list[Variant], n_frames: int, n_deltas: int, reps: int
) -> tuple[dict[str, list[float]], list[float]]:
    """ns per delta per repetition for each variant, and numba_batch/nautilus_batch ratios per block."""
    per_rep: dict[str, list[float]] = {v.name: [] for v in variants}
    block_ratios: list[float] = []
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(reps):
            books = {v.name: v.make() for v in variants}
            total = dict.fromkeys(books, 0)
            for b, lo in enumerate(range(1, n_frames, BLOCK_FRAMES)):
                hi = min(lo + BLOCK_FRAMES, n_frames)
                took = {}
                shift = (b + rep) % len(variants)
                for v in variants[shift:] + variants[:shift]:
                    t0 = clock()
                    v.run(books[v.name], lo, hi)
                    took[v.name] = clock() - t0
                    total[v.name] += took[v.name]
                if "nautilus_batch" in took and took["numba_batch"]:
                    block_ratios.append(took["nautilus_batch"] / took["numba_batch"])
            for name, ns in total.items():
                per_rep[name].append(ns / n_deltas)
    finally:
        if gc_was_enabled:
            gc.enable()
    return per_rep, block_ratios


def run(
    quick: bool = False, deltas: int | None = None, reps: int | None = None, seed: int = 9
) -> dict[str, float]:
    """Flat figures: ns/delta p50 over repetitions per variant, ratios, mismatches, depth stats."""
    n = deltas or (40_000 if quick else 400_000)
    reps = reps or (3 if quick else 7)
    gen = StreamGen(seed)
    frames = gen.frames(n)
    n_deltas = sum(len(f.sides) for f in frames[1:])
    naut, _ = load_nautilus(frames)
    variants = numba_variants(frames) + (naut.variants() if naut else [])
    out: dict[str, float] = {
        "deltas": float(n_deltas),
        "frames": float(len(frames) - 1),
        "deltas_per_frame": n_deltas / (len(frames) - 1),
        "reps": float(reps),
        "nautilus_available": float(naut is not None),
        "swept_levels": float(gen.swept),
    }
    out.update(cross_check(frames, naut))
    per_rep, block_ratios = time_variants(variants, len(frames), n_deltas, reps)
    for name, values in per_rep.items():
        out[f"{name}_ns_p50"] = statistics.median(values)
        out[f"{name}_ns_min"] = min(values)
    if naut is not None:
        numba = out["numba_batch_ns_p50"]
        out["ratio_vs_nautilus_batch"] = out["nautilus_batch_ns_p50"] / numba
        out["ratio_vs_nautilus_single"] = out["nautilus_single_ns_p50"] / numba
        out["ratio_vs_nautilus_batch_block_p50"] = statistics.median(block_ratios)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--deltas", type=int)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--seed", type=int, default=9)
    args = ap.parse_args()
    try:
        import nautilus_trader

        which = f"nautilus_trader {nautilus_trader.__version__}"
    except ImportError:
        which = "nautilus_trader MISSING: numba figures only (make bench-deps)"
    print(f"L2 book, realistic stream (seed {args.seed}); {which}")
    res = run(args.quick, args.deltas, args.reps, args.seed)
    for key, value in res.items():
        print(f"  {key:36} {value:12.2f}" if value != int(value) else f"  {key:36} {int(value):12d}")
    if res["mismatches"]:
        raise SystemExit(f"{int(res['mismatches'])} mismatches between the books")


if __name__ == "__main__":
    main()
