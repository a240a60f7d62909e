"""A real simulator trading venue (aiohttp + Exchange, REST and trade_updates) on 127.0.0.1:0 in a
background thread, for tests that drive the venue directly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from common.config import SimConfig
from simulator.exchange import Exchange
from simulator.rest import TRADE_STREAM_HUB, add_trading_routes
from simulator.trade_stream import TradeStreamHub

T = TypeVar("T")

KEY = "test-key"
SECRET = "test-secret-value"


class SimServer:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.loop = uvloop.new_event_loop()
        self.exchange = Exchange(cfg)
        self.app = web.Application()
        add_trading_routes(self.app, self.exchange, cfg)
        self.hub: TradeStreamHub = self.app[TRADE_STREAM_HUB]
        self._thread = threading.Thread(target=self.loop.run_forever, name="sim-venue", daemon=True)
        self._thread.start()
        self.runner = web.AppRunner(self.app)
        self.call_async(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.call_async(site.start())
        port = self.runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/stream"

    def call_async(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the venue's loop (the Exchange is single-threaded) and return its result."""

        async def run() -> T:
            return fn(*args)

        return self.call_async(run())

    def quote(self, symbol: str, bid: str, bid_sz: str, ask: str, ask_sz: str) -> None:
        self.call(
            self.exchange.on_quote, symbol, Decimal(bid), Decimal(bid_sz), Decimal(ask), Decimal(ask_sz), 0
        )

    def trade(self, symbol: str, px: str, sz: str = "1") -> None:
        self.call(self.exchange.on_trade, symbol, Decimal(px), Decimal(sz), 0)

    def stop(self) -> None:
        self.call_async(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def make_cfg(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {"key_id": KEY, "secret_key": SECRET, "port": 0, "rate_limit_per_min": 100_000}
    base.update(overrides)
    return SimConfig(**base)
