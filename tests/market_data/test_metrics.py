"""market_data's metrics: the feed state as a Prometheus enum (one series per FeedState, 1 for
the current one), and the age of each configured symbol's last quote, computed when scraped from
the quote's exchange time."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from common.enums import FeedState
from common.metrics import AgeGauge
from services.market_data.feed import Feed
from services.market_data.normalize import Normalizer
from tests.kit.alpaca_frames import frame, stock_quote


def _feed(name: str) -> Feed:
    def publish(topic: bytes, msgs: list[Any]) -> None:
        pass

    channels = {"quotes": ["AAPL", "MSFT"]}
    return Feed(name, "ws://unused", ("k", "s"), channels, publish, Normalizer(64, 5, name), 0.1, 1.0)


def _states(feed: str) -> dict[str, float | None]:
    return {
        s: REGISTRY.get_sample_value("zt_md_feed_state", {"feed": feed, "zt_md_feed_state": s})
        for s in FeedState.values()
    }


def test_feed_state_is_an_enum_with_one_current_state() -> None:
    feed = _feed("enumtest")
    assert _states("enumtest") == {s: float(s == "disconnected") for s in FeedState.values()}
    for state in (FeedState.CONNECTING, FeedState.SUBSCRIBED, FeedState.STALE, FeedState.ERROR):
        feed.set_state(state, "")
        assert _states("enumtest") == {s: float(s == state.value) for s in FeedState.values()}


def test_last_quote_exchange_time_is_kept_per_subscribed_symbol() -> None:
    feed = _feed("quotetest")
    now = time.time_ns()
    feed.on_frame(
        frame(stock_quote("AAPL", t=now - 3_000_000_000), stock_quote("AAPL", t=now - 1_000_000_000)), now
    )
    feed.on_frame(frame(stock_quote("TSLA", t=now)), now)  # not subscribed: not published, not kept
    assert feed.last_quote_exch_ns == {"AAPL": now - 1_000_000_000}


def test_age_gauge_grows_from_the_last_timestamp_and_skips_what_it_cannot_read() -> None:
    registry = CollectorRegistry()
    ages = AgeGauge("zt_test_age_seconds", "test", "symbol", registry=registry)
    now = time.time_ns()
    stamps = {"AAPL": now - 2_000_000_000, "MSFT": 0}

    def read(symbol: str) -> int | None:
        if symbol == "BAD":
            raise KeyError(symbol)
        return stamps.get(symbol)

    ages.watch(["AAPL", "MSFT", "BAD", "NONE"], read)
    first = registry.get_sample_value("zt_test_age_seconds", {"symbol": "AAPL"})
    assert first is not None and first >= 2.0
    for symbol in ("MSFT", "BAD", "NONE"):  # nothing yet, or unreadable: no sample, and no failed scrape
        assert registry.get_sample_value("zt_test_age_seconds", {"symbol": symbol}) is None
    stamps["AAPL"] = now - 4_000_000_000
    later = registry.get_sample_value("zt_test_age_seconds", {"symbol": "AAPL"})
    assert later is not None and later >= 4.0
