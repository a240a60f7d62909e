"""One market-data feed (stocks or crypto): WebSocket -> normalize -> publish, and its state.

Every state change is published as a ``FeedStatus`` on ``md.fs.<feed>`` so downstream knows when
data cannot be trusted; ``check_stale`` turns a silent-but-subscribed feed into "stale".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from common import topics, wire
from common.clock import mono_ns, wall_ns
from common.enums import FeedState
from common.metrics import STAGE_LATENCY
from common.ratelog import RateLimitedLog
from services.market_data import decode as d
from services.market_data.alpaca_ws import FeedConnection
from services.market_data.capture import FrameCapture
from services.market_data.metrics import FEED_STATE, FRAMES, MALFORMED, MESSAGES
from services.market_data.normalize import Normalizer

log = logging.getLogger(__name__)

Publish = Callable[[bytes, list[Any]], None]
_RETRY_LOOP_STATES = frozenset({FeedState.CONNECTING, FeedState.DISCONNECTED, FeedState.ERROR})


class Feed:
    def __init__(
        self,
        feed: str,
        url: str,
        credentials: tuple[str, str],
        channels: dict[str, list[str]],
        publish: Publish,
        normalizer: Normalizer,
        reconnect_min_s: float,
        reconnect_max_s: float,
        capture: FrameCapture | None = None,
    ) -> None:
        self.feed = feed
        self.symbols = sorted({s for syms in channels.values() for s in syms})
        # Only subscribed symbols are published, and only their books kept: a venue that sends others
        # must not grow per-symbol state here or downstream.
        self._symbol_set = frozenset(self.symbols)
        self._wildcard = "*" in self._symbol_set  # Alpaca's "every symbol": nothing to filter on
        self._topics = frozenset(
            topics.sym(prefix, s)
            for prefix in (topics.MD_QUOTE, topics.MD_TRADE, topics.MD_BAR, topics.MD_BOOK)
            for s in self.symbols
        )
        self.unsubscribed = 0  # messages on symbols we did not subscribe to, dropped
        self._publish = publish
        self.normalizer = normalizer
        self._capture = capture
        self.conn = FeedConnection(
            feed, url, credentials, channels, self.on_frame, self.set_state, reconnect_min_s, reconnect_max_s
        )
        self.state = FeedState.DISCONNECTED
        self.detail = ""
        self.last_data_mono_ns = 0
        self.frames = 0
        self._status_topic = topics.MD_FEED + feed.encode()
        self._frames = FRAMES.labels(feed)
        self._malformed_frame = MALFORMED.labels(feed, "frame")
        self._malformed_msg = MALFORMED.labels(feed, "message")
        self._unsubscribed_msg = MALFORMED.labels(feed, "unsubscribed_symbol")
        self._msg_counters: dict[str, Any] = {}
        self._latency = STAGE_LATENCY.labels("market_data", "md_publish")
        self._state_metric = FEED_STATE.labels(feed)
        self._state_metric.state(FeedState.DISCONNECTED.value)
        # quote topic -> symbol, for the last quote's exchange time (zt_md_last_quote_age_seconds)
        self._quote_topics = {topics.sym(topics.MD_QUOTE, s): s for s in self.symbols}
        self.last_quote_exch_ns: dict[str, int] = {}
        self._bad_log = RateLimitedLog(log)
        self._unsubscribed_log = RateLimitedLog(log)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.conn.run(), name=f"feed-{self.feed}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.conn.close()

    # ---- state ----------------------------------------------------------------------------

    def set_state(self, state: FeedState, detail: str) -> None:
        if state is FeedState.SUBSCRIBED:
            self.last_data_mono_ns = mono_ns()  # the stale clock starts at subscription
        if state == self.state and detail == self.detail:
            return
        changed = state != self.state
        self.state, self.detail = state, detail
        self._state_metric.state(state.value)
        self.publish_status()
        # the reconnect loop's states (connecting / error / disconnected) are logged by the link's
        # LinkHealth when the failure changes, not on every attempt
        if changed and state not in _RETRY_LOOP_STATES:
            log.info("feed state", extra={"fields": {"feed": self.feed, "state": state, "detail": detail}})

    def publish_status(self) -> None:
        """Also called periodically, so a subscriber that joins late learns the state."""
        self._publish(
            self._status_topic,
            [wire.FeedStatus(feed=self.feed, state=self.state, detail=self.detail, ts_ns=wall_ns())],
        )

    def check_stale(self, stale_after_ns: int) -> None:
        if self.state is FeedState.SUBSCRIBED and mono_ns() - self.last_data_mono_ns > stale_after_ns:
            self.set_state(FeedState.STALE, f"no market data for {stale_after_ns / 1e9:g}s")

    def last_message_age_s(self) -> float | None:
        if not self.last_data_mono_ns:
            return None
        return round((mono_ns() - self.last_data_mono_ns) / 1e9, 3)

    # ---- data -----------------------------------------------------------------------------

    def on_frame(self, frame: bytes | str, recv_ns: int) -> list[d._Rec]:
        """Normalize and publish one frame; return its control messages. Never raises on bad data."""
        self.frames += 1
        self._frames.inc()
        if not isinstance(frame, bytes):
            self._malformed_frame.inc()
            self._bad_log.warning("dropped text frame (expected msgpack)", feed=self.feed)
            return []
        try:
            result = self.normalizer.frame(frame, recv_ns)
        except d.FrameError as exc:
            self._malformed_frame.inc()
            self._bad_log.warning("dropped malformed frame", feed=self.feed, error=str(exc)[:200])
            return []
        publish = self._publish
        allowed = self._topics
        quote_topics = self._quote_topics
        for topic, msgs in result.batches.items():
            if topic in allowed or self._wildcard:
                publish(topic, msgs)
                symbol = quote_topics.get(topic)
                if symbol is not None:
                    self.last_quote_exch_ns[symbol] = msgs[-1].exch_ns
            else:
                self._unsubscribed(topic, len(msgs))
        if len(self.normalizer.books) > len(self._symbol_set) and not self._wildcard:
            for symbol in [s for s in self.normalizer.books if s not in self._symbol_set]:
                del self.normalizer.books[symbol]
        if result.batches:
            self._latency.observe((wall_ns() - recv_ns) / 1e9)
            self.last_data_mono_ns = mono_ns()
            self.conn.data_seen()
            if self.state is FeedState.STALE:
                self.set_state(FeedState.SUBSCRIBED, "data resumed")
        if result.errors:
            self._malformed_msg.inc(len(result.errors))
            self._bad_log.warning(
                "skipped malformed messages", feed=self.feed, count=len(result.errors), first=result.errors[0]
            )
        for kind, n in result.counts.items():
            counter = self._msg_counters.get(kind)
            if counter is None:
                counter = self._msg_counters[kind] = MESSAGES.labels(self.feed, kind)
            counter.inc(n)
        if self._capture is not None:
            try:
                self._capture.write(self.feed, recv_ns, frame)
            except Exception:
                self._bad_log.warning("capture write failed", feed=self.feed)
        return result.controls

    def _unsubscribed(self, topic: bytes, n: int) -> None:
        self.unsubscribed += n
        self._unsubscribed_msg.inc(n)
        self._unsubscribed_log.warning(
            "dropped messages on a symbol not subscribed", feed=self.feed, topic=topic[:64]
        )

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "detail": self.detail,
            "url": self.conn.url,
            "symbols": self.symbols,
            "last_message_age_s": self.last_message_age_s(),
            "frames": self.frames,
            "reconnects": self.conn.reconnects,
            "link": self.conn.health.status(),
            "unsubscribed_dropped": self.unsubscribed,
        }
