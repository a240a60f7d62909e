"""The market-data client hands each message to the feed from the socket's read callback (no queue,
no task switch): fragmented messages arrive whole, text frames as text, in order, pings among them
are answered, and a handler that raises costs that frame only, never the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from common.clock import wall_ns
from common.enums import FeedState
from services.market_data import decode as d
from services.market_data.alpaca_ws import FeedConnection
from tests.kit.market_data import SIM_KEY, SIM_SECRET, FakeAlpaca

PATH = "/v2/iex"


@pytest.fixture
def venue() -> Iterator[FakeAlpaca]:
    v = FakeAlpaca()
    yield v
    v.close()


def test_messages_arrive_whole_in_order_and_a_failing_handler_keeps_the_connection(
    venue: FakeAlpaca,
) -> None:
    received: list[tuple[bytes | str, int]] = []
    states: list[FeedState] = []

    def on_frame(frame: bytes | str, recv_ns: int) -> list[d._Rec]:
        if frame == b"boom":
            raise RuntimeError("handler bug")
        received.append((frame, recv_ns))
        if isinstance(frame, bytes) and frame.startswith(b"\x91"):  # the subscription ack
            return d.decode_frame(frame)[0]
        return []

    first = msgpack.packb([{"T": "q", "S": "AAPL"}])
    whole = b"x" * 70_000

    async def main() -> None:
        conn = FeedConnection(
            "stocks", venue.url(PATH), (SIM_KEY, SIM_SECRET), {"quotes": ["AAPL"]}, on_frame,
            lambda s, _: states.append(s), 0.05, 0.1,
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(conn.run())
        try:
            for _ in range(250):
                if FeedState.SUBSCRIBED in states:
                    break
                await asyncio.sleep(0.02)
            assert FeedState.SUBSCRIBED in states, states
            before = wall_ns()
            sends: list[Any] = [first, [whole[:30_000], whole[30_000:]], "text frame", b"boom", b"after"]
            for frame in sends:
                await asyncio.to_thread(venue.send, PATH, frame)
                # a ping among the data: websockets still sees it and answers
                assert await asyncio.to_thread(venue.ping, PATH) == 1
            for _ in range(250):
                if len(received) >= 5:
                    break
                await asyncio.sleep(0.02)
            frames = [f for f, _ in received[1:]]
            assert frames == [first, whole, "text frame", b"after"], [str(f)[:40] for f in frames]
            assert all(before <= ns <= wall_ns() for _, ns in received[1:])
            assert FeedState.DISCONNECTED not in states and conn.reconnects == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
