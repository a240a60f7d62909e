"""Micro-benchmark: Alpaca msgpack frame -> wire messages (decode + normalize + numba book), ns/msg.

    .venv/bin/python -m bench.md_decode

10-message frames, the shape Alpaca batches. Variants are interleaved and each is reported as the
median of several rounds (the CPU speed on these VMs flips between modes; see perf-baseline §7).
Also prints the alternative decoders measured when choosing (msgpack-python with timestamp=2).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import msgpack

from common import wire
from services.market_data.book import warm_up
from services.market_data.decode import decode_frame
from services.market_data.normalize import Normalizer

FRAME_MSGS = 10
T0 = 1_700_000_000_123_456_789


def _ts(i: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(T0 + i * 1000)


def stock_quotes(rng: random.Random) -> bytes:
    msgs = []
    for i in range(FRAME_MSGS):
        bp = round(190 + rng.randrange(100) / 100, 2)
        msgs.append(
            {"T": "q", "S": rng.choice(["AAPL", "MSFT"]), "bx": "V", "bp": bp, "bs": rng.randrange(1, 9),
             "ax": "Q", "ap": round(bp + 0.02, 2), "as": rng.randrange(1, 9), "c": ["R"], "t": _ts(i), "z": "C"}
        )  # fmt: skip
    return msgpack.packb(msgs)


def crypto_book_deltas(rng: random.Random) -> bytes:
    msgs = []
    for i in range(FRAME_MSGS):
        side = "b" if rng.random() < 0.5 else "a"
        px = 67000 + (-1 if side == "b" else 1) * rng.randrange(1, 200) / 4
        lv = [{"p": px, "s": 0.0 if rng.random() < 0.3 else rng.randrange(1, 10**6) / 10**4}]
        msgs.append(
            {
                "T": "o",
                "S": "BTC/USD",
                "t": _ts(i),
                "b": lv if side == "b" else [],
                "a": lv if side == "a" else [],
            }
        )
    return msgpack.packb(msgs)


def mixed_crypto(rng: random.Random) -> bytes:
    msgs = msgpack.unpackb(crypto_book_deltas(rng), timestamp=0)[:5]
    for i in range(5):
        msgs.append(
            {"T": "q", "S": "BTC/USD", "bp": 67000.5, "bs": 0.5, "ap": 67001.0, "as": 1.25, "t": _ts(i)}
        )
    return msgpack.packb(msgs)


def _time_per_msg(fn: Callable[[bytes], object], frames: list[bytes]) -> float:
    t0 = time.perf_counter_ns()
    for f in frames:
        fn(f)
    return (time.perf_counter_ns() - t0) / (len(frames) * FRAME_MSGS)


def main(rounds: int = 7, frames_per_round: int = 5_000) -> None:
    warm_up()
    rng = random.Random(1)
    norm = Normalizer(book_capacity=512, book_depth=5)
    seed_book = [{"T": "o", "S": "BTC/USD", "t": _ts(0), "r": True,
                  "b": [{"p": 67000 - k / 4, "s": 1.0} for k in range(1, 200)],
                  "a": [{"p": 67000 + k / 4, "s": 1.0} for k in range(1, 200)]}]  # fmt: skip
    norm.frame(msgpack.packb(seed_book), T0)
    encode = wire.encode_batch

    def full(f: bytes) -> None:  # what the service does per frame, minus the socket send
        for topic, msgs in norm.frame(f, T0).batches.items():
            encode(topic, msgs)

    variants: dict[str, tuple[Callable[[bytes], object], list[bytes]]] = {}
    quotes = [stock_quotes(rng) for _ in range(frames_per_round)]
    books = [crypto_book_deltas(rng) for _ in range(frames_per_round)]
    mixed = [mixed_crypto(rng) for _ in range(frames_per_round)]
    variants["stock quotes: decode only (msgspec typed, raw t)"] = (decode_frame, quotes)
    variants["stock quotes: decode only (msgpack-python, timestamp=2)"] = (
        lambda f: msgpack.unpackb(f, raw=False, timestamp=2),
        quotes,
    )
    variants["stock quotes: decode+normalize"] = (lambda f: norm.frame(f, T0), quotes)
    variants["stock quotes: decode+normalize+wire encode"] = (full, quotes)
    variants["crypto book deltas: decode+normalize+book(1 numba call)"] = (lambda f: norm.frame(f, T0), books)
    variants["crypto book deltas: + wire encode"] = (full, books)
    variants["crypto 5 deltas + 5 quotes: decode+normalize+book"] = (lambda f: norm.frame(f, T0), mixed)

    results: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, (fn, frames) in variants.items():
            results[name].append(_time_per_msg(fn, frames))
    print(
        f"{FRAME_MSGS}-message frames, {rounds} rounds x {frames_per_round} frames, median (min-max) ns/msg"
    )
    for name, vals in results.items():
        print(f"  {name:58s} {statistics.median(vals):7.0f}  ({min(vals):.0f}-{max(vals):.0f})")


if __name__ == "__main__":
    main()
