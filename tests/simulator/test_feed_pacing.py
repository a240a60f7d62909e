"""The venue's feed pacing: a tick that owes more than ``CHUNK`` messages (a high rate, a catch-up
after a stall) is made and sent in chunks with a loop turn between them, so the loop reads an order
POST that arrives meanwhile instead of after the whole batch."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import uvloop

from simulator.feed import CHUNK, FeedDriver
from simulator.market import Market, MdEvent


class _Hub:
    def __init__(self) -> None:
        self.sent = 0

    def publish(self, feed: str, events: list[MdEvent], track: bool = False) -> list[Any]:
        self.sent += len(events)
        return []


class _Exchange:
    def on_quote(self, *args: object) -> None:
        pass

    def on_trade(self, *args: object) -> None:
        pass


class _LoggedMarket(Market):
    """Writes each ``step``'s size into the shared log."""

    def __init__(self, log: list[object]) -> None:
        super().__init__(["AAPL", "MSFT"], ["BTC/USD"], seed=3)
        self.log = log

    def step(self, n: int, now_ns: int) -> list[MdEvent]:
        self.log.append(n)
        return super().step(n, now_ns)


def test_a_tick_owing_more_than_a_chunk_hands_the_loop_back_between_chunks() -> None:
    log: list[object] = []

    async def main() -> None:
        hub = _Hub()
        driver = FeedDriver(hub, _Exchange(), _LoggedMarket(log), None, rate=2_000_000.0)  # type: ignore[arg-type]
        driver.start()

        async def other_work() -> None:  # stands for the loop's socket reads
            while True:
                log.append("turn")
                await asyncio.sleep(0)

        observer = asyncio.ensure_future(other_work())
        await asyncio.sleep(0.03)
        observer.cancel()
        await driver.stop()
        assert hub.sent >= driver.generated > 0

    uvloop.run(main())
    steps = [n for n in log if isinstance(n, int)]
    assert sum(steps) > 4 * CHUNK  # the ticks owed several chunks each (~2,000 messages a ms)
    assert max(steps) == CHUNK
    # every chunk is followed by a loop turn before the next chunk is made
    assert all(not (isinstance(a, int) and isinstance(b, int)) for a, b in itertools.pairwise(log))
