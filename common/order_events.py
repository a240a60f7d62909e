"""Receiving execution's order events (OrderUpdate, Fill) without losing any.

Execution numbers every order event with a gap-free ``seq`` and keeps them for replay. PUB/SUB can
drop (slow joiner, high-water mark, a subscriber restart), so a receiver:
  * delivers events strictly in seq order, each exactly once;
  * on a gap, or when a heartbeat announces a newer seq than it has, asks execution for
    ``Replay(after_seq)`` over request/reply and fills the hole;
  * on start, replays from 0 to learn everything that happened before it connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from common import topics, wire
from common.zmq_io import RpcClient, RpcError

log = logging.getLogger(__name__)

OrderEvent = wire.OrderUpdate | wire.Fill


class OrderEventReceiver:
    def __init__(self, service: Any, on_event: Callable[[OrderEvent], None], replay_timeout_ms: int = 2000):
        """``service`` is a common.service.Service; subscribes to execution's PUB itself."""
        self._on_event = on_event
        self.last_seq = 0
        self._buffer: dict[int, OrderEvent] = {}
        self._client: RpcClient = service.client("execution", timeout_ms=replay_timeout_ms)
        self._replaying = False
        self._want_replay = False
        self._loop = service.loop
        self.gaps_filled = 0
        service.subscribe("execution", [topics.EX, topics.heartbeat("execution")], self._on_batch)
        self._request_replay()

    def _on_batch(self, topic: bytes, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, wire.OrderUpdate | wire.Fill):
                self._accept(m)
            elif isinstance(m, wire.Heartbeat) and m.last_event_seq > self.last_seq and not self._buffer:
                self._request_replay()
        if self._buffer:
            self._request_replay()

    def _accept(self, ev: OrderEvent) -> None:
        if ev.seq <= self.last_seq:
            return  # duplicate (replay overlapping live delivery)
        if ev.seq == self.last_seq + 1:
            self.last_seq = ev.seq
            self._on_event(ev)
            while (nxt := self._buffer.pop(self.last_seq + 1, None)) is not None:
                self.last_seq = nxt.seq
                self._on_event(nxt)
        else:
            self._buffer[ev.seq] = ev

    def _request_replay(self) -> None:
        if self._replaying:
            self._want_replay = True
            return
        self._replaying = True
        self._loop.create_task(self._replay())

    async def _replay(self) -> None:
        try:
            while True:
                self._want_replay = False
                before = self.last_seq
                try:
                    reply = await self._client.request(wire.Replay(after_seq=self.last_seq))
                except RpcError as exc:
                    log.warning(
                        "order event replay failed, will retry", extra={"fields": {"error": str(exc)}}
                    )
                    await asyncio.sleep(0.5)
                    self._want_replay = True
                    continue
                if isinstance(reply, wire.Reply) and reply.ok:
                    for ev in wire.decode_list(reply.data):
                        if isinstance(ev, wire.OrderUpdate | wire.Fill):
                            self._accept(ev)
                    if self.last_seq > before:
                        self.gaps_filled += 1
                if not self._want_replay:
                    return
        finally:
            self._replaying = False
