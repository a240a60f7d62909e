"""Fuzz market_data's decoder with venue-shaped frames: out-of-range numbers (huge, negative, NaN,
2^64-1), timestamps from any century, wrong types, truncated and oversized frames. The feed's frame
handler never raises, every message it publishes encodes and is in range, bad ones are counted."""

from __future__ import annotations

import math
from typing import Any

import msgpack
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from common import bounds, wire
from common.clock import wall_ns
from services.market_data.feed import Feed
from services.market_data.normalize import Normalizer

EXAMPLES = 300
INT_EDGES = [0, 1, -1, 2**31, 2**32 - 1, 2**53, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]
FLOAT_EDGES = [
    0.0,
    -0.0,
    1e-12,
    190.12,
    67000.5,
    4e6,
    1e9,
    4.6e9,
    1e12,
    1e21,
    1e300,
    -1.0,
    math.inf,
    -math.inf,
    math.nan,
]

numbers = st.one_of(
    st.sampled_from(INT_EDGES),
    st.sampled_from(FLOAT_EDGES),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0.0001, 100_000.0),
)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.integers(-(2**63), 2**64 - 1), max_size=2),
)
plausible = st.one_of(st.floats(0.01, 100_000.0), st.integers(0, 1_000_000))
valueish = st.one_of(plausible, plausible, plausible, plausible, numbers, junk)

seconds = st.one_of(
    st.integers(1_600_000_000, 1_800_000_000),  # plausible
    st.sampled_from(
        [0, -1, 2**34 - 1, 2**34, 18_000_000_000, -9_300_000_000, 2**40, -(2**40)]
    ),  # 2554, 1677, ...
    st.integers(-(2**62), 2**62),
)
timestamps = st.one_of(
    st.builds(msgpack.Timestamp, seconds, st.integers(0, 999_999_999)),
    st.sampled_from(
        ["2024-01-02T03:04:05.123456789Z", "1600-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "not a time", ""]
    ),
    junk,
)
symbols = st.sampled_from(["AAPL", "BTC/USD", "", "X" * 40])
levels = st.lists(st.fixed_dictionaries({"p": valueish, "s": valueish}), max_size=4)


def _rec(kind: str, fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"T": st.just(kind), "S": symbols, "t": timestamps, **fields})


records = st.one_of(
    _rec("q", {"bp": valueish, "bs": valueish, "ap": valueish, "as": valueish}),
    _rec("t", {"p": valueish, "s": valueish, "i": valueish}),
    _rec("b", {k: valueish for k in ("o", "h", "l", "c", "v", "vw", "n")}),
    _rec("u", {k: valueish for k in ("o", "h", "l", "c", "v")}),
    _rec("o", {"b": levels, "a": levels, "r": st.booleans()}),
    st.fixed_dictionaries({"T": st.sampled_from(["error", "success", "subscription", "zz", "s", 7])}),
    junk,
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    msgs = draw(st.lists(records, max_size=12))
    data = msgpack.packb(msgs, datetime=False)
    shape = draw(st.sampled_from(["whole", "whole", "truncated", "garbage", "oversized", "not_a_list"]))
    if shape == "truncated":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if shape == "garbage":
        return draw(st.binary(max_size=64))
    if shape == "oversized":
        return msgpack.packb(msgs * 50, datetime=False)
    if shape == "not_a_list":
        return msgpack.packb({"T": "q", "S": "AAPL"})
    return data


def _quote_frame(t: Any, bid: Any) -> bytes:
    quote = {"T": "q", "S": "AAPL", "t": t, "bp": bid, "bs": 1, "ap": 190.5, "as": 2}
    return msgpack.packb([quote], datetime=False)


# Whatever the generator draws this run, each outcome the test asserts on is exercised at least once.
GOOD_TS = msgpack.Timestamp(1_750_000_000, 123)
KNOWN_OUTCOMES = (
    _quote_frame(GOOD_TS, 190.25),  # published
    _quote_frame("1600-01-01T00:00:00Z", 190.25),  # rejected: timestamp
    _quote_frame(GOOD_TS, -1.0),  # rejected: price
)


def _feed(published: list[Any]) -> Feed:
    def publish(topic: bytes, msgs: list[Any]) -> None:
        frame = wire.encode_batch(topic, msgs)  # what the PUB socket does: must never raise
        _, back = wire.decode_batch(frame)
        published.extend(back)

    channels = {"quotes": ["AAPL", "BTC/USD"], "orderbooks": ["BTC/USD"]}
    return Feed("crypto", "ws://unused", ("k", "s"), channels, publish, Normalizer(64, 5, "crypto"), 0.1, 1.0)


def test_feed_frame_handler_survives_any_venue_frame() -> None:
    published: list[Any] = []
    feed = _feed(published)
    seen = {"frames": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(frames())
    @example(KNOWN_OUTCOMES[0])
    @example(KNOWN_OUTCOMES[1])
    @example(KNOWN_OUTCOMES[2])
    def one(frame: bytes) -> None:
        seen["frames"] += 1
        start = len(published)
        feed.on_frame(frame, wall_ns())  # raises nothing, whatever the frame
        now = wall_ns()
        for m in published[start:]:
            assert bounds.message_error(m, now) == "", m
            ts = m.start_ns if isinstance(m, wire.Bar) else m.exch_ns
            assert ts >= bounds.MIN_VENUE_TS_NS

    one()
    rejected = feed.normalizer.rejected
    print(
        f"md decoder fuzz: {seen['frames']} frames, {len(published)} published, rejected by reason {rejected}"
    )
    assert seen["frames"] >= EXAMPLES // 2
    assert rejected.get("price", 0) > 0 and rejected.get("timestamp", 0) > 0
    assert published  # some plausible messages made it through


def test_the_reported_killers_are_rejected_not_fatal() -> None:
    """The testers' cases: a bar close of 1e12, timestamps after 2554 and before 1677."""
    published: list[Any] = []
    feed = _feed(published)
    good_t = msgpack.Timestamp(1_700_000_000, 0)
    bar = {"T": "b", "S": "AAPL", "o": 1.0, "h": 1.0, "l": 1.0, "c": 1e12, "v": 1, "t": good_t}
    late = {
        "T": "q",
        "S": "AAPL",
        "bp": 1.0,
        "bs": 1,
        "ap": 1.0,
        "as": 1,
        "t": msgpack.Timestamp(18_000_000_000, 0),
    }
    early = {**late, "t": msgpack.Timestamp(-9_300_000_000, 0)}
    fine = {**late, "t": good_t}
    feed.on_frame(msgpack.packb([bar, late, early, fine], datetime=False), wall_ns())
    assert [type(m).__name__ for m in published] == ["Quote"]
    assert feed.normalizer.rejected == {"price": 1, "timestamp": 2}
