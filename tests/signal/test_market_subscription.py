"""Signal subscribes to the feeds' status and the market data of its strategies' symbols only:
market_data's PUB filters the rest out before it reaches the process (all of it when a strategy takes
every symbol)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvloop
import zmq

from common import topics, wire
from common.config import StrategyConfig
from common.enums import FeedState
from common.ids import IntentIds
from common.zmq_io import Publisher, Subscriber
from services.signal.host import StrategyHost
from services.signal.registry import build_strategy
from services.signal.service import market_topics
from services.signal.strategy import StrategyContext


def _host(*symbol_lists: list[str]) -> StrategyHost:
    ctx = StrategyContext(ids=IntentIds(), intent_max_age_ns=10**9, clock_ns=lambda: 1)
    configs = [StrategyConfig(name=f"p{i}", kind="probe", symbols=s) for i, s in enumerate(symbol_lists)]
    return StrategyHost([build_strategy(cfg, ctx) for cfg in configs])


def test_the_strategies_symbols_or_everything() -> None:
    assert _host(["MSFT", "AAPL"], ["AAPL"]).market_symbols() == ["AAPL", "MSFT"]
    assert _host(["AAPL"], []).market_symbols() is None  # a strategy with no symbols takes them all
    assert _host().market_symbols() == []
    assert market_topics(None) == [topics.MD]
    assert market_topics([]) == [b"md.fs."]
    assert market_topics(["AAPL"]) == [b"md.fs.", b"md.q.AAPL", b"md.t.AAPL", b"md.b.AAPL", b"md.o.AAPL"]


def _quote(symbol: str, i: int) -> wire.Quote:
    return wire.Quote(symbol=symbol, bid_px=i, bid_sz=1, ask_px=i + 1, ask_sz=1, exch_ns=i, recv_ns=i)


def test_other_symbols_never_reach_the_subscriber(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/md.pub"

    async def main() -> list[tuple[bytes, Any]]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        got: list[tuple[bytes, Any]] = []
        done = asyncio.Event()

        def on_batch(topic: bytes, msgs: list[Any]) -> None:
            got.extend((topic, m) for m in msgs)
            if any(getattr(m, "bid_px", 0) == 999 for m in msgs):
                done.set()

        pub = Publisher(ctx, endpoint, "test")
        sub = Subscriber(ctx, loop, [endpoint], market_topics(["AAPL"]), on_batch, "test")
        await asyncio.sleep(0.2)  # slow joiner
        for i in range(100):
            pub.publish(b"md.q.MSFT", [_quote("MSFT", i)])
            pub.publish(b"md.q.AAPL", [_quote("AAPL", i)])
            pub.publish(
                b"md.fs.stocks",
                [wire.FeedStatus(feed="stocks", state=FeedState.SUBSCRIBED, detail="", ts_ns=i)],
            )
        pub.publish(b"md.q.AAPL", [_quote("AAPL", 999)])
        await asyncio.wait_for(done.wait(), 5)
        sub.close()
        pub.close()
        ctx.term()
        return got

    got = uvloop.run(main())
    assert {topic for topic, _ in got} == {b"md.q.AAPL", b"md.fs.stocks"}
    assert [m.bid_px for topic, m in got if topic == b"md.q.AAPL"] == [*range(100), 999]
