"""Test support for the venue's market side: the whole venue on its own loop in a thread, its real
exchange extended to record what the feed told it, and small HTTP helpers for /sim."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import orjson
import uvloop

from common.config import SimConfig
from simulator.app import VenueServer, build_app
from simulator.exchange import Exchange

T = TypeVar("T")
KEY = "test-key"
SECRET = "test-secret"


class RecordingExchange(Exchange):
    """The real exchange, also remembering every quote and trade the feed gave it."""

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__(cfg)
        self.quotes: list[tuple[str, Decimal, Decimal, Decimal, Decimal, int]] = []
        self.trades: list[tuple[str, Decimal, Decimal, int]] = []

    def on_quote(
        self, symbol: str, bid_px: Decimal, bid_sz: Decimal, ask_px: Decimal, ask_sz: Decimal, ts_ns: int
    ) -> None:
        self.quotes.append((symbol, bid_px, bid_sz, ask_px, ask_sz, ts_ns))
        super().on_quote(symbol, bid_px, bid_sz, ask_px, ask_sz, ts_ns)

    def on_trade(self, symbol: str, px: Decimal, sz: Decimal, ts_ns: int) -> None:
        self.trades.append((symbol, px, sz, ts_ns))
        super().on_trade(symbol, px, sz, ts_ns)


def sim_config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {
        "port": 0,
        "metrics_port": 0,
        "key_id": KEY,
        "secret_key": SECRET,
        "message_rate": 0.0,
        "stocks": ["AAPL", "FAKEPACA"],
        "crypto": ["BTC/USD"],
        "book_depth": 5,
    }
    base.update(overrides)
    return SimConfig.model_validate(base)


class VenueThread:
    """The whole venue (recording exchange) running on a uvloop in a daemon thread."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.exchange = RecordingExchange(cfg)
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="venue", daemon=True)
        self.server: VenueServer | None = None

    def __enter__(self) -> VenueThread:
        self._thread.start()
        self.server = self.call(self._start())
        return self

    async def _start(self) -> VenueServer:
        server = VenueServer(self.cfg, build_app(self.cfg, self.exchange))
        await server.start()
        return server

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def origin(self) -> str:
        assert self.server is not None
        return self.server.rest_url

    def ws(self, path: str) -> str:
        return self.origin.replace("http://", "ws://") + path

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            self.origin + path, data=orjson.dumps(body or {}), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return orjson.loads(resp.read())

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.origin + path, timeout=10) as resp:
            return orjson.loads(resp.read())
