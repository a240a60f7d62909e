"""Alpaca msgpack frames -> wire structs; malformed frames and messages are counted and skipped."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from prometheus_client import REGISTRY

from common import topics, wire
from common.fixed import to_fixed
from services.market_data import decode as d
from services.market_data.capture import FrameCapture
from services.market_data.feed import Feed
from services.market_data.normalize import Normalizer
from tests.kit import alpaca_frames as af

RECV = 1_700_000_000_200_000_000


def _norm() -> Normalizer:
    return Normalizer(book_capacity=16, book_depth=3)


def test_stock_quote_trade_bar() -> None:
    res = _norm().frame(
        af.frame(af.stock_quote(), af.stock_trade(), af.stock_bar(), af.stock_bar(kind="u")), RECV
    )
    assert not res.errors
    assert res.batches[b"md.q.AAPL"] == [
        wire.Quote(
            symbol="AAPL",
            bid_px=to_fixed("190.12"),
            bid_sz=3 * 10**9,
            ask_px=to_fixed("190.14"),
            ask_sz=2 * 10**9,
            exch_ns=af.T_NS,
            recv_ns=RECV,
        )
    ]
    assert res.batches[b"md.t.AAPL"] == [
        wire.Trade(
            symbol="AAPL",
            px=to_fixed("190.13"),
            sz=100 * 10**9,
            trade_id=52983525029461,
            exch_ns=af.T_NS,
            recv_ns=RECV,
        )
    ]
    bar = wire.Bar(
        symbol="AAPL",
        open=to_fixed("190"),
        high=to_fixed("190.5"),
        low=to_fixed("189.75"),
        close=to_fixed("190.25"),
        volume=12345 * 10**9,
        vwap=to_fixed("190.2"),
        trades=42,
        start_ns=af.T_NS,
        recv_ns=RECV,
    )
    assert res.batches[b"md.b.AAPL"] == [bar, bar]
    assert res.counts == {"quote": 1, "trade": 1, "bar": 2}


def test_bar_with_null_vwap_and_count() -> None:
    res = _norm().frame(af.frame(af.stock_bar(vw=None, n=None)), RECV)
    (bar,) = res.batches[b"md.b.AAPL"]
    assert (bar.vwap, bar.trades) == (0, 0)


def test_crypto_quote_and_trade_exact_fractional_sizes() -> None:
    res = _norm().frame(af.frame(af.crypto_quote(), af.crypto_trade()), RECV)
    (q,) = res.batches[b"md.q.BTC/USD"]
    assert (q.bid_px, q.bid_sz, q.ask_px, q.ask_sz) == (
        to_fixed("67000.5"),
        to_fixed("0.12345678"),
        to_fixed("67001.25"),
        to_fixed("1.5"),
    )
    (t,) = res.batches[b"md.t.BTC/USD"]
    assert (t.px, t.sz, t.trade_id, t.exch_ns) == (
        to_fixed("67000.75"),
        to_fixed("0.000123"),
        987654,
        af.T_NS,
    )


def test_orderbook_snapshot_then_deltas_one_book_per_frame() -> None:
    n = _norm()
    snap = af.orderbook(
        bids=[(100.0, 1.0), (99.5, 2.0), (99.0, 3.0)], asks=[(100.5, 1.0), (101.0, 2.0)], reset=True
    )
    res = n.frame(af.frame(snap), RECV)
    (book,) = res.batches[b"md.o.BTC/USD"]
    assert book.bids == [
        (to_fixed(100), to_fixed(1)),
        (to_fixed("99.5"), to_fixed(2)),
        (to_fixed(99), to_fixed(3)),
    ]
    assert book.asks == [(to_fixed("100.5"), to_fixed(1)), (to_fixed(101), to_fixed(2))]
    # Two delta messages in one frame -> one Book after both; size 0 deletes; absent delete ignored.
    later = af.T_NS + 5
    deltas = af.frame(
        af.orderbook(bids=[(100.0, 0.0), (99.75, 4.0)], asks=[(102.0, 0.0)]),
        af.orderbook(bids=[(100.25, 0.5)], asks=[(100.5, 0.25)], t=later),
    )
    res = n.frame(deltas, RECV + 1)
    (book,) = res.batches[b"md.o.BTC/USD"]
    assert book.bids == [
        (to_fixed("100.25"), to_fixed("0.5")),
        (to_fixed("99.75"), to_fixed(4)),
        (to_fixed("99.5"), to_fixed(2)),
    ]
    assert book.asks == [(to_fixed("100.5"), to_fixed("0.25")), (to_fixed(101), to_fixed(2))]
    assert (book.exch_ns, book.recv_ns) == (later, RECV + 1)
    assert res.counts == {"orderbook": 2}


def test_reset_mid_frame_discards_earlier_deltas() -> None:
    n = _norm()
    n.frame(af.frame(af.orderbook(bids=[(10.0, 1.0)], asks=[(11.0, 1.0)], reset=True)), RECV)
    res = n.frame(
        af.frame(
            af.orderbook(bids=[(10.5, 1.0)]), af.orderbook(bids=[(9.0, 2.0)], asks=[(12.0, 3.0)], reset=True)
        ),
        RECV,
    )
    (book,) = res.batches[b"md.o.BTC/USD"]
    assert book.bids == [(to_fixed(9), to_fixed(2))]
    assert book.asks == [(to_fixed(12), to_fixed(3))]


def test_controls_are_returned_and_other_types_ignored() -> None:
    res = _norm().frame(
        af.frame(
            {"T": "subscription", "quotes": ["AAPL"], "trades": [], "bars": []},
            {"T": "error", "code": 405, "msg": "symbol limit exceeded"},
            {
                "T": "s",
                "S": "AAPL",
                "sc": "H",
                "sm": "Trading Halt",
                "rc": "T1",
                "rm": "News",
                "t": af.ts(),
                "z": "C",
            },
        ),
        RECV,
    )
    assert [type(c) for c in res.controls] == [d.SubscriptionRec, d.ErrorRec]
    assert res.controls[1].code == 405
    assert res.counts == {"ignored": 1}
    assert not res.batches and not res.errors


@pytest.mark.parametrize(
    "bad",
    [
        {"T": "q", "S": "AAPL", "bp": "x", "bs": 1, "ap": 1.0, "as": 1, "t": af.ts()},  # wrong type
        {"T": "q", "S": "AAPL", "bs": 1, "ap": 1.0, "as": 1, "t": af.ts()},  # missing bp
        {"T": "q", "S": "AAPL", "bp": -1.0, "bs": 1, "ap": 1.0, "as": 1, "t": af.ts()},  # negative price
        {"T": "t", "S": "AAPL", "p": float("nan"), "s": 1, "t": af.ts()},  # not finite
        {"T": "t", "S": "AAPL", "p": 1.0, "s": 1, "t": "yesterday"},  # unparseable time
        {"T": "t", "S": "AAPL", "p": 1.0, "s": 1},  # no time
        {"T": "o", "S": "BTC/USD", "t": af.ts(), "b": [{"p": 1.0, "s": -2.0}], "a": []},  # negative size
        {"T": "zz", "S": "AAPL"},  # unknown type
        "not a map",
    ],
)
def test_malformed_message_is_skipped_rest_of_frame_kept(bad: object) -> None:
    res = _norm().frame(af.frame(af.stock_quote(bp=1.5), bad, af.stock_quote(bp=2.5)), RECV)
    assert len(res.errors) == 1
    assert [q.bid_px for q in res.batches[b"md.q.AAPL"]] == [to_fixed("1.5"), to_fixed("2.5")]


@pytest.mark.parametrize("price", [0.0, 1e-10, 4.9e-10, -1.0, float("nan"), 1e300])
def test_bad_book_level_leaves_book_untouched(price: float) -> None:
    n = _norm()
    n.frame(af.frame(af.orderbook(bids=[(10.0, 1.0)], asks=[(11.0, 1.0)], reset=True)), RECV)
    bad = {
        "T": "o",
        "S": "BTC/USD",
        "t": af.ts(),
        "b": [{"p": 10.5, "s": 1.0}],
        "a": [{"p": price, "s": 1.0}],  # a price that rounds to 0 nanos is no level either
    }
    res = n.frame(af.frame(bad), RECV)
    assert len(res.errors) == 1 and not res.batches
    assert n.books["BTC/USD"].top(5) == ([(to_fixed(10), to_fixed(1))], [(to_fixed(11), to_fixed(1))])


@pytest.mark.parametrize("at", [0, 1, 2])
def test_a_refused_book_message_takes_back_only_its_own_levels(at: int) -> None:
    """A refused delta or snapshot, wherever it sits in the frame, leaves the frame's other messages
    for that symbol applied as if it had not been there (a refused snapshot resets nothing)."""
    snapshot = af.orderbook(bids=[(10.0, 1.0)], asks=[(11.0, 1.0)], reset=True)
    good = [af.orderbook(bids=[(10.25, 2.0)]), af.orderbook(asks=[(10.75, 1.5)])]
    bad = [
        af.orderbook(bids=[(10.5, 1.0)], asks=[(-1.0, 1.0)]),  # a delta whose second level is refused
        af.orderbook(bids=[(8.0, 1.0)], asks=[(13.0, -2.0)], reset=True),  # a snapshot likewise
    ]
    n = _norm()
    n.frame(af.frame(snapshot), RECV)
    expected = n.frame(af.frame(*good), RECV).batches[b"md.o.BTC/USD"]
    n.frame(af.frame(snapshot), RECV)
    res = n.frame(af.frame(*good[:at], *bad, *good[at:]), RECV)
    assert len(res.errors) == 2 and res.counts == {"orderbook": 2}
    assert res.batches[b"md.o.BTC/USD"] == expected
    assert n.books["BTC/USD"].top(5) == (expected[0].bids, expected[0].asks)


def test_book_levels_beyond_capacity_are_dropped_and_counted() -> None:
    n = Normalizer(book_capacity=8, book_depth=3, feed="crypto-drops")
    before = REGISTRY.get_sample_value("zt_md_book_levels_dropped_total", {"feed": "crypto-drops"}) or 0.0
    bids = [(100.0 - i, 1.0) for i in range(11)]  # 11 levels into a side that holds 8
    res = n.frame(af.frame(af.orderbook(bids=bids, asks=[(101.0, 1.0)], reset=True)), RECV)
    (book,) = res.batches[b"md.o.BTC/USD"]
    assert [p for p, _ in book.bids] == [to_fixed(100), to_fixed(99), to_fixed(98)]  # the top is intact
    assert n.books["BTC/USD"].counts == (8, 1)
    assert n.book_levels_dropped == 3
    after = REGISTRY.get_sample_value("zt_md_book_levels_dropped_total", {"feed": "crypto-drops"})
    assert after == before + 3


def test_rfc3339_string_timestamp_is_exact() -> None:
    msg = af.stock_quote()
    msg["t"] = "2023-11-14T22:13:20.123456789Z"
    (q,) = _norm().frame(af.frame(msg), RECV).batches[b"md.q.AAPL"]
    assert q.exch_ns == af.T_NS


@pytest.mark.parametrize("ns", [0, 1_700_000_000_000_000_000, af.T_NS, 2**34 * 10**9 + 5, -5 * 10**9 + 7])
def test_all_three_msgpack_timestamp_sizes(ns: int) -> None:
    raw = d.msgspec.msgpack.Decoder(d.msgspec.Raw).decode(msgpack.packb(msgpack.Timestamp.from_unix_nano(ns)))
    assert d.ts_ns(raw) == ns


def test_ns_to_rfc3339_round_trip() -> None:
    assert d.rfc3339_to_ns(d.ns_to_rfc3339(af.T_NS)) == af.T_NS


def test_feed_counts_malformed_frames_and_publishes_batches() -> None:
    published: list[tuple[bytes, list[object]]] = []
    feed = Feed(
        "stocks",
        "ws://unused",
        ("k", "s"),
        {"quotes": ["AAPL"]},
        lambda t, m: published.append((t, m)),
        _norm(),
        0.1,
        1,
    )
    bad_frames = [b"\xc1", msgpack.packb({"T": "q"}), "text frame"]
    for f in bad_frames:
        assert feed.on_frame(f, RECV) == []
    assert published == []
    malformed = feed._malformed_frame._value.get()  # the live Prometheus child
    assert malformed >= len(bad_frames)
    feed.on_frame(af.frame(af.stock_quote(), af.stock_quote("MSFT"), af.stock_quote()), RECV)
    # MSFT was not subscribed: dropped and counted, not published (no per-symbol state for it)
    assert [(t, len(m)) for t, m in published] == [(topics.sym(topics.MD_QUOTE, "AAPL"), 2)]
    assert feed.unsubscribed == 1


def test_capture_file_gets_alpaca_shaped_frames(tmp_path: Path) -> None:
    from common.capture import read_capture

    path = tmp_path / "cap" / "md.jsonl"
    capture = FrameCapture(path)
    feed = Feed(
        "crypto",
        "ws://unused",
        ("k", "s"),
        {"quotes": ["BTC/USD"]},
        lambda t, m: None,
        _norm(),
        0.1,
        1,
        capture,
    )
    feed.on_frame(af.frame(af.crypto_quote(), af.crypto_trade()), RECV)
    capture.close()
    (captured,) = list(read_capture(path))
    assert (captured.feed, captured.recv_ns) == ("crypto", RECV)
    assert [m["T"] for m in captured.msgs] == ["q", "t"]
    assert captured.msgs[0]["t"] == "2023-11-14T22:13:20.123456789Z"
    assert captured.msgs[0]["bs"] == 0.12345678


_EDGE_NUMBERS = [0, 0.0, -0.0, 1e-10, 5e-10, 1.5e-9, 2.5e-9, 190.12, 0.12345678, 3_999_999.999999999, 4e6, 4e6 + 0.5,
                 4.6e9, 1e12, -1e-12, -0.5, -1.0, 2**53 + 1, 2**62, 2**63, float("inf"), float("nan")]  # fmt: skip


@pytest.mark.parametrize("value", _EDGE_NUMBERS)
def test_inlined_quote_conversion_matches_the_checked_path(value: float) -> None:
    """frame() converts quotes inline; each field must come out exactly as the per-value check says,
    or be rejected with the same reason."""
    from services.market_data import normalize

    msg = af.stock_quote()
    msg.update(bp=value, bs=value, ap=value, **{"as": value})
    n = _norm()
    res = n.frame(af.frame(msg), RECV)
    try:
        expected = [normalize._px(value, "bp"), normalize._sz(value, "bs")] * 2
    except (ValueError, OverflowError) as exc:
        assert not res.batches and len(res.errors) == 1
        assert n.rejected == ({exc.reason: 1} if isinstance(exc, normalize.bounds.OutOfRange) else {})
        return
    (q,) = res.batches[b"md.q.AAPL"]
    assert [q.bid_px, q.bid_sz, q.ask_px, q.ask_sz] == expected


@pytest.mark.parametrize("ns", [af.T_NS, 946_684_800 * 10**9 - 1, 946_684_800 * 10**9, 2**34 * 10**9 + 5])
def test_inlined_timestamp_matches_the_checked_path(ns: int) -> None:
    n = _norm()
    res = n.frame(af.frame(af.stock_quote(t=ns), af.orderbook(bids=[(10.0, 1.0)], t=ns)), RECV)
    from common import bounds
    from common.clock import wall_ns

    if not bounds.MIN_VENUE_TS_NS <= ns <= wall_ns() + bounds.MAX_AHEAD_NS:
        assert n.rejected == {"timestamp": 2} and not res.batches
    else:
        assert res.batches[b"md.q.AAPL"][0].exch_ns == ns
        assert res.batches[b"md.o.BTC/USD"][0].exch_ns == ns
