"""A running ExecutionService seen from outside: an RPC client and a subscriber, as risk uses them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import zmq

from common import topics, wire
from common.clock import wall_ns
from common.fixed import to_fixed
from common.zmq_io import RpcClient, Subscriber
from services.execution.service import ExecutionService


class Harness:
    """A running ExecutionService plus a client and a subscriber, as risk would use them."""

    def __init__(self, svc: ExecutionService, venue: Any = None) -> None:
        self.svc, self.venue = svc, venue
        ctx = zmq.Context.instance()
        z = svc.settings.zmq
        loop = asyncio.get_running_loop()
        self.rpc = RpcClient(ctx, loop, z.endpoint("execution", "rpc"), "test", "execution", timeout_ms=3000)
        self.events: list[wire.OrderUpdate | wire.Fill] = []
        self.sub = Subscriber(ctx, loop, [z.endpoint("execution", "pub")], [topics.EX], self._on, "test")

    def _on(self, topic: bytes, msgs: list[Any]) -> None:
        self.events.extend(msgs)

    def fills(self, coid: str) -> list[wire.Fill]:
        return [e for e in self.events if isinstance(e, wire.Fill) and e.client_order_id == coid]

    def statuses(self, coid: str) -> list[str]:
        return [
            e.status for e in self.events if isinstance(e, wire.OrderUpdate) and e.client_order_id == coid
        ]

    async def order(self, coid: str, qty: str = "100", px: str = "100") -> wire.OrderAck:
        now = wall_ns()
        intent = wire.OrderIntent(
            intent_id=coid, strategy="s1", symbol="AAPL", side="buy", qty=to_fixed(qty), limit_px=to_fixed(px),
            tick_recv_ns=now, signal_ns=now, deadline_ns=now + 5_000_000_000,
        )  # fmt: skip
        ack = await self.rpc.request(wire.OrderRequest(client_order_id=coid, intent=intent, risk_ns=now))
        assert isinstance(ack, wire.OrderAck)
        return ack

    def close(self) -> None:
        self.rpc.close()
        self.sub.close()


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
