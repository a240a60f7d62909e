"""The real market_data process against an in-test Alpaca-protocol WebSocket venue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from common import wire
from common.fixed import to_fixed
from tests.kit import alpaca_frames as af
from tests.kit.market_data import (
    FakeAlpaca,
    MdSubscriber,
    rpc_control,
    start_service,
    stop_process,
    wait_feeds_subscribed,
    write_config,
)

STOCKS, CRYPTO = "/v2/iex", "/v1beta3/crypto/us"


@pytest.fixture
def venue() -> Iterator[FakeAlpaca]:
    v = FakeAlpaca()
    yield v
    v.close()


def _run(tmp_path: Path, venue: FakeAlpaca, extra: str = "") -> tuple[object, MdSubscriber]:
    cfg = write_config(tmp_path, venue.url(STOCKS), venue.url(CRYPTO), extra)
    sub = MdSubscriber(tmp_path / "run")
    proc = start_service(cfg, tmp_path / "md.log")
    return proc, sub


def _log(tmp_path: Path) -> str:
    return (tmp_path / "md.log").read_text(errors="replace")


def test_streams_normalized_data_survives_bad_frames_and_reconnects(
    tmp_path: Path, venue: FakeAlpaca
) -> None:
    proc, sub = _run(tmp_path, venue)
    try:
        wait_feeds_subscribed(tmp_path / "run", ("stocks", "crypto"), sub)
        stock_sub = next(s for s in venue.subscribes if "orderbooks" not in s)
        crypto_sub = next(s for s in venue.subscribes if "orderbooks" in s)
        assert stock_sub["quotes"] == ["AAPL", "MSFT"] and crypto_sub["orderbooks"] == ["BTC/USD"]

        venue.send(STOCKS, af.frame(af.stock_quote(bp=100.25), af.stock_trade()))
        q = sub.wait_for(lambda t, m: isinstance(m, wire.Quote), what="quote")
        assert (q.symbol, q.bid_px, q.exch_ns) == ("AAPL", to_fixed("100.25"), af.T_NS)

        snap = af.orderbook(
            bids=[(50.0, 1.0), (49.0, 2.0), (48.0, 1.0), (47.0, 1.0)], asks=[(51.0, 3.0)], reset=True
        )
        venue.send(CRYPTO, af.frame(snap))
        book = sub.wait_for(lambda t, m: isinstance(m, wire.Book), what="book")
        assert book.bids == [
            (to_fixed(50), to_fixed(1)),
            (to_fixed(49), to_fixed(2)),
            (to_fixed(48), to_fixed(1)),
        ]
        assert book.asks == [(to_fixed(51), to_fixed(3))]

        # Garbage, a text frame, a bad message: the socket stays up and good data still flows.
        venue.send(STOCKS, b"\xc1\xc1")
        venue.send(STOCKS, '[{"T":"q"}]')
        venue.send(STOCKS, af.frame({"T": "q", "S": "AAPL"}, af.stock_quote("MSFT", bp=7.5)))
        q = sub.wait_for(lambda t, m: isinstance(m, wire.Quote) and m.symbol == "MSFT", what="MSFT quote")
        assert q.bid_px == to_fixed("7.5")

        # The venue drops the stream: disconnected, then subscribed again, and data resumes.
        connects_before = venue.connects[STOCKS]
        venue.drop(STOCKS)
        sub.wait_feed("stocks", "disconnected")
        sub.wait_feed("stocks", "subscribed")
        assert venue.connects[STOCKS] == connects_before + 1
        venue.send(STOCKS, af.frame(af.stock_quote(bp=101.5)))
        q = sub.wait_for(
            lambda t, m: isinstance(m, wire.Quote) and m.bid_px == to_fixed("101.5"), what="resumed"
        )

        # Silence while subscribed becomes "stale"; the next data says so.
        sub.wait_feed("stocks", "stale", timeout=10)
        venue.send(STOCKS, af.frame(af.stock_quote(bp=102.0)))
        resumed = sub.wait_feed("stocks", "subscribed")
        assert resumed.detail == "data resumed"

        status = rpc_control(tmp_path / "run", "status")
        feeds = orjson.loads(status.data)["feeds"]
        assert feeds["stocks"]["symbols"] == ["AAPL", "MSFT"]
        assert feeds["crypto"]["state"] in ("subscribed", "stale")
        assert feeds["stocks"]["reconnects"] == 1
        assert feeds["stocks"]["last_message_age_s"] is not None
    finally:
        stop_process(proc)
        sub.close()
    assert proc.returncode == 0, _log(tmp_path)[-3000:]
    assert "test-secret-value" not in _log(tmp_path)


def test_connection_limit_406_is_reported_and_retried(tmp_path: Path, venue: FakeAlpaca) -> None:
    # Several in a row: the first may come before our SUB has joined; each waits the long backoff.
    venue.auth_errors.extend([(406, "connection limit exceeded")] * 4)
    proc, sub = _run(tmp_path, venue, extra="")
    try:
        err = sub.wait_for(lambda t, m: isinstance(m, wire.FeedStatus) and m.state == "error", what="error")
        assert "406" in err.detail
        retry = sub.wait_for(
            lambda t, m: isinstance(m, wire.FeedStatus) and m.feed == err.feed and m.state == "disconnected",
            what="disconnected",
        )
        assert retry.detail.startswith("venue_error: ") and "error 406" in retry.detail
        sub.wait_feed(err.feed, "subscribed")
    finally:
        stop_process(proc)
        sub.close()


def test_a_late_subscriber_learns_the_feed_state_without_a_change(tmp_path: Path, venue: FakeAlpaca) -> None:
    proc, first = _run(tmp_path, venue)
    try:
        wait_feeds_subscribed(tmp_path / "run", ("stocks", "crypto"))
        late = MdSubscriber(tmp_path / "run")  # joins after every state change already happened
        st = late.wait_feed("crypto", "subscribed", timeout=10.0)
        assert st.feed == "crypto"
        late.close()
    finally:
        first.close()
        stop_process(proc)
