"""Drives the market: paces the synthetic process (or a capture replay) and delivers every event to
the exchange (quotes and trades) and to the market-data hub (subscribers).

Pacing is in batches per loop tick: each wake-up generates however many messages the target rate
owes since the last one, so 50k msgs/s costs ~1000 wake-ups a second, not 50k sleeps; a tick that
owes more than ``CHUNK`` hands the loop back between chunks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from common.clock import wall_ns
from common.log import kv
from simulator.market import Market, MdEvent, ReplaySource
from simulator.md_stream import MdHub

log = logging.getLogger("simulator.feed")

MAX_BACKLOG_S = 0.25  # after a stall, catch up at most this much, not the whole gap
# At most this many messages are made and sent per loop turn: a catch-up (or a rate the venue can
# barely make) never holds the loop for long, so an order's arrival is read, and stamped, promptly.
CHUNK = 64


class VenueSink(Protocol):
    """What the feed tells the exchange (S1's ``Exchange`` implements this)."""

    def on_quote(
        self, symbol: str, bid_px: object, bid_sz: object, ask_px: object, ask_sz: object, ts_ns: int
    ) -> None: ...

    def on_trade(self, symbol: str, px: object, sz: object, ts_ns: int) -> None: ...


class FeedDriver:
    def __init__(
        self,
        hub: MdHub,
        exchange: VenueSink,
        market: Market | None,
        replay: ReplaySource | None,
        rate: float,
        paused: bool = False,
    ) -> None:
        self.hub = hub
        self.exchange = exchange
        self.market = market
        self.replay = replay
        self.rate = rate
        self._running = asyncio.Event()
        if not paused:
            self._running.set()
        self._task: asyncio.Task[None] | None = None
        self.generated = 0
        self.replay_done = False
        self._exchange_errors = 0

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def set_rate(self, rate: float) -> None:
        if not rate >= 0:
            raise ValueError("rate must be >= 0")
        self.rate = rate

    def seed_venue(self) -> int:
        """Give the exchange the synthetic market's opening touch of every symbol (not sent to
        subscribers: nobody is connected before the ready line). Returns the quotes given."""
        if self.market is None:
            return 0
        quotes = self.market.opening_quotes(wall_ns())
        for ev in quotes:
            if ev.venue_quote is not None:
                self.exchange.on_quote(ev.symbol, *ev.venue_quote, ev.msg["t"])
        return len(quotes)

    def start(self) -> None:
        if self.replay is not None:
            self._task = asyncio.get_running_loop().create_task(self._run_replay())
        elif self.market is not None:
            self._task = asyncio.get_running_loop().create_task(self._run_synthetic())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def deliver(self, events: list[MdEvent], track: bool = False) -> list[asyncio.Future[int]]:
        """Tell the exchange, then queue to subscribers (per feed, order kept within a feed)."""
        exchange = self.exchange
        stocks: list[MdEvent] = []
        crypto: list[MdEvent] = []
        for ev in events:
            try:
                if ev.venue_quote is not None:
                    exchange.on_quote(ev.symbol, *ev.venue_quote, ev.msg["t"])
                elif ev.venue_trade is not None:
                    exchange.on_trade(ev.symbol, *ev.venue_trade, ev.msg["t"])
            except Exception:
                self._exchange_errors += 1
                if self._exchange_errors <= 10:
                    log.exception("exchange rejected a market event", extra=kv(symbol=ev.symbol))
            (stocks if ev.feed == "stocks" else crypto).append(ev)
        futures = self.hub.publish("stocks", stocks, track) if stocks else []
        if crypto:
            futures += self.hub.publish("crypto", crypto, track)
        return futures

    async def _run_synthetic(self) -> None:
        assert self.market is not None
        loop = asyncio.get_running_loop()
        owed = 0.0
        last = loop.time()
        while True:
            rate = self.rate
            await asyncio.sleep(min(0.05, max(0.001, 1.0 / rate)) if rate > 0 else 0.05)
            if not self._running.is_set():
                await self._running.wait()
                last = loop.time()
                owed = 0.0
                continue
            now = loop.time()
            owed = min(owed + rate * (now - last), rate * MAX_BACKLOG_S + 1)
            last = now
            n = int(owed)
            if n <= 0:
                continue
            owed -= n
            while True:
                chunk = min(n, CHUNK)
                events = self.market.step(chunk, wall_ns())
                self.generated += len(events)
                self.deliver(events)
                n -= chunk
                if n <= 0:
                    break
                await asyncio.sleep(0)  # the loop reads its sockets (order POSTs) between chunks

    async def _run_replay(self) -> None:
        assert self.replay is not None
        loop = asyncio.get_running_loop()
        prev_recv: int | None = None
        prev_at = loop.time()
        frames = 0
        for frame in self.replay.frames():
            if not self._running.is_set():
                await self._running.wait()
                prev_at = loop.time()
            if prev_recv is not None:
                gap = (frame.recv_ns - prev_recv) / 1e9 - (loop.time() - prev_at)
                if gap > 0:
                    await asyncio.sleep(gap)
            prev_recv, prev_at = frame.recv_ns, loop.time()
            events = self.replay.events(frame)
            self.generated += len(events)
            self.deliver(events)
            frames += 1
        self.replay_done = True
        log.info("replay finished", extra=kv(frames=frames, file=str(self.replay.path)))
