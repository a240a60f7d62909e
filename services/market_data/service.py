"""The market_data service: Alpaca stock and crypto streams -> normalized wire messages on PUB."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from common.config import Settings
from common.enums import FeedState
from common.service import Service
from services.market_data.book import warm_up
from services.market_data.capture import FrameCapture
from services.market_data.feed import Feed
from services.market_data.metrics import LAST_QUOTE_AGE, declare_feed_series
from services.market_data.normalize import Normalizer

log = logging.getLogger(__name__)


def stock_channels(settings: Settings) -> dict[str, list[str]]:
    md = settings.market_data
    return {
        "quotes": list(md.stocks),
        "trades": list(md.stocks) if md.subscribe_trades else [],
        "bars": list(md.stocks) if md.subscribe_bars else [],
        "updatedBars": list(md.stocks) if md.subscribe_bars else [],
    }


def crypto_channels(settings: Settings) -> dict[str, list[str]]:
    md = settings.market_data
    return {
        "quotes": list(md.crypto),
        "orderbooks": list(md.crypto),
        "trades": list(md.crypto) if md.subscribe_trades else [],
        "bars": list(md.crypto) if md.subscribe_bars else [],
        "updatedBars": list(md.crypto) if md.subscribe_bars else [],
    }


class MarketDataService(Service):
    name: ClassVar[str] = "market_data"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.feeds: dict[str, Feed] = {}
        self._capture: FrameCapture | None = None

    async def start(self) -> None:
        md = self.settings.market_data
        warm_up()  # compiled or loaded from numba's cache now, not on the first frame
        if md.capture_file is not None:
            self._capture = FrameCapture(md.capture_file)
        credentials = self.settings.credentials()
        plan = [
            ("stocks", md.stocks, self.settings.stock_stream_url(), stock_channels(self.settings)),
            ("crypto", md.crypto, self.settings.crypto_stream_url(), crypto_channels(self.settings)),
        ]
        for feed_name, symbols, url, channels in plan:
            if not symbols:
                continue
            feed = Feed(
                feed_name,
                url,
                credentials,
                channels,
                self.pub.publish,
                Normalizer(md.book_capacity, md.book_depth_published, feed_name),
                md.reconnect_min_s,
                md.reconnect_max_s,
                self._capture,
            )
            self.feeds[feed_name] = feed
            declare_feed_series(feed_name)
            self.tasks.spawn(f"feed_{feed_name}", feed.conn.run, on_failure=_show_failure(feed))
        self.tasks.spawn("stale_watchdog", self._stale_watchdog)
        LAST_QUOTE_AGE.watch([*md.stocks, *md.crypto], self.last_quote_exch_ns)

    def last_quote_exch_ns(self, symbol: str) -> int | None:
        """Exchange time of the last quote published for ``symbol`` (None: none yet)."""
        for feed in self.feeds.values():
            ts = feed.last_quote_exch_ns.get(symbol)
            if ts is not None:
                return ts
        return None

    async def _stale_watchdog(self) -> None:
        """Turns silent feeds stale, and re-publishes every feed's status for late subscribers."""
        stale_after_s = self.settings.market_data.stale_after_s
        stale_after_ns = int(stale_after_s * 1e9)
        while True:
            await asyncio.sleep(min(1.0, stale_after_s / 4))
            for feed in self.feeds.values():
                feed.check_stale(stale_after_ns)
                feed.publish_status()

    async def stop(self) -> None:
        await self.tasks.stop()  # the feeds' tasks first, then their sockets
        await asyncio.gather(*(f.stop() for f in self.feeds.values()), return_exceptions=True)
        if self._capture is not None:
            self._capture.close()

    def heartbeat_state(self) -> str:
        if not self.feeds:
            return "ok"
        return "ok" if all(f.state is FeedState.SUBSCRIBED for f in self.feeds.values()) else "degraded"

    def is_ready(self) -> bool:
        return self.heartbeat_state() == "ok"

    def state_reason(self) -> str:
        return "; ".join(
            f"{name} feed {f.state}" + (f": {f.detail}" if f.detail else "")
            for name, f in self.feeds.items()
            if f.state is not FeedState.SUBSCRIBED
        )

    def status(self) -> dict[str, Any]:
        down = [
            f"{name}: {f.detail}" for name, f in self.feeds.items() if f.state is not FeedState.SUBSCRIBED
        ]
        return {
            "feeds": {name: f.status() for name, f in self.feeds.items()},
            "not_ready_reason": "; ".join(down),
        }


def _show_failure(feed: Feed) -> Callable[[BaseException], None]:
    """A feed whose task failed is in error until it reconnects: never green while it is down."""
    return lambda exc: feed.set_state(FeedState.ERROR, f"feed task failed: {type(exc).__name__}")


SERVICE_CLASS = MarketDataService
