"""The real alpaca-py 0.44 data streams against the venue: parsed models, and reconnect after a drop."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from alpaca.data.live import CryptoDataStream, StockDataStream
from alpaca.data.models import Bar, Orderbook, Quote, Trade

from tests.kit.md_venue import KEY, SECRET, VenueThread, sim_config
from tests.kit.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


class Collector:
    def __init__(self) -> None:
        self.got: dict[str, list[Any]] = defaultdict(list)

    def handler(self, kind: str) -> Callable[[Any], Any]:
        async def on(item: Any) -> None:
            self.got[kind].append((time.monotonic(), item))

        return on


def run_stream(stream: StockDataStream | CryptoDataStream) -> threading.Thread:
    t = threading.Thread(target=stream.run, name="alpaca-stream", daemon=True)
    t.start()
    return t


def stop_stream(stream: StockDataStream | CryptoDataStream, thread: threading.Thread) -> None:
    stream.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()


def test_alpaca_py_streams_parse_every_model_and_reconnect_after_a_drop() -> None:
    cfg = sim_config(message_rate=400.0, bar_interval_s=0.5, stocks=["FAKEPACA"], crypto=["BTC/USD"])
    with VenueThread(cfg) as venue:
        stocks, crypto = Collector(), Collector()
        s = StockDataStream(KEY, SECRET, url_override=venue.ws("/v2/test"))
        s.subscribe_quotes(stocks.handler("quotes"), "FAKEPACA")
        s.subscribe_trades(stocks.handler("trades"), "*")
        s.subscribe_bars(stocks.handler("bars"), "FAKEPACA")
        c = CryptoDataStream(KEY, SECRET, url_override=venue.ws("/v1beta3/crypto/us"))
        c.subscribe_quotes(crypto.handler("quotes"), "BTC/USD")
        c.subscribe_trades(crypto.handler("trades"), "BTC/USD")
        c.subscribe_orderbooks(crypto.handler("orderbooks"), "BTC/USD")
        c.subscribe_bars(crypto.handler("bars"), "*")
        threads = [(s, run_stream(s)), (c, run_stream(c))]
        try:
            wait_until(lambda: len(stocks.got) == 3 and len(crypto.got) == 4, 15, "the condition")
            kinds = {"quotes": Quote, "trades": Trade, "bars": Bar, "orderbooks": Orderbook}
            for col in (stocks, crypto):
                for kind, items in col.got.items():
                    assert all(isinstance(item, kinds[kind]) for _, item in items), kind
            q = stocks.got["quotes"][0][1]
            assert q.symbol == "FAKEPACA" and q.bid_price < q.ask_price and q.timestamp.tzinfo is not None
            bar = stocks.got["bars"][0][1]
            assert bar.trade_count is not None and bar.vwap is not None and bar.low <= bar.vwap <= bar.high
            first_book = crypto.got["orderbooks"][0][1]
            assert first_book.reset is True and len(first_book.bids) == 5 and len(first_book.asks) == 5
            assert not any(book.reset for _, book in crypto.got["orderbooks"][1:])

            dropped_at = time.monotonic()
            assert venue.post("/sim/faults/streams/drop")["md_dropped"] == 2
            wait_until(lambda: venue.get("/sim/health")["md_connections"] == 2, 15, "the condition")
            wait_until(
                lambda: any(t > dropped_at + 0.3 for t, _ in stocks.got["quotes"]), 10, "the condition"
            )
            wait_until(
                lambda: any(t > dropped_at + 0.3 for t, _ in crypto.got["quotes"]), 10, "the condition"
            )
            wait_until(
                lambda: sum(book.reset for _, book in crypto.got["orderbooks"]) == 2, 10, "the condition"
            )  # re-snapshot
        finally:
            for stream, thread in threads:
                stop_stream(stream, thread)
