"""A running ExecutionService seen from outside: an RPC client and a subscriber, as risk uses them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import zmq
from aiohttp import web

from common import topics, wire
from common.clock import wall_ns
from common.config import Settings
from common.enums import TradingState
from common.fixed import to_fixed
from common.peer_link import credentials
from common.trading_state import StateStore, initial_record
from common.zmq_io import RpcClient, Subscriber
from services.execution.service import ExecutionService
from tests.kit.waiting import until

CONTROL_TOKEN = "test-control-token"


class Harness:
    """A running ExecutionService plus clients and a subscriber, as risk would use them: ``rpc`` on the
    general socket (controls, replay), ``orders`` on the orders socket with risk's credentials."""

    def __init__(self, svc: ExecutionService, venue: Any = None) -> None:
        self.svc, self.venue = svc, venue
        ctx = zmq.Context.instance()
        z = svc.settings.zmq
        loop = asyncio.get_running_loop()
        self.rpc = RpcClient(ctx, loop, z.endpoint("execution", "rpc"), "test", "execution", timeout_ms=3000)
        self.orders = RpcClient(
            ctx, loop, z.endpoint("execution", "orders"), "test", "execution", timeout_ms=3000,
            setup=credentials(svc.settings, "risk"),
        )  # fmt: skip
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
        ack = await self.orders.request(wire.OrderRequest(client_order_id=coid, intent=intent, risk_ns=now))
        assert isinstance(ack, wire.OrderAck)
        return ack

    async def control(self, cmd: str) -> Any:
        return await self.rpc.request(wire.Control(cmd=cmd, token=CONTROL_TOKEN))

    def close(self) -> None:
        self.rpc.close()
        self.orders.close()
        self.sub.close()


@contextlib.asynccontextmanager
async def running_execution(settings: Settings, venue: Any = None) -> AsyncIterator[Harness]:
    """An ExecutionService on this loop, ready (venue snapshot taken, trade stream connected), seen
    through a Harness; stopped cleanly afterwards."""
    # risk writes the trading state file at its start; these tests run execution without risk
    store = StateStore(settings.zmq.run_dir)
    if not store.path.exists():
        store.save(initial_record(TradingState.ACTIVE, "test: execution without risk"))
    svc = ExecutionService(settings)
    runner = asyncio.get_running_loop().create_task(svc.run_forever())
    h = Harness(svc, venue)
    try:
        await until(lambda: svc.ready and svc.stream.connected and h.orders.alive)
        await asyncio.sleep(0.05)  # slow-joiner: let the SUB connect before events flow
        yield h
    finally:
        h.close()
        svc.request_stop()
        await runner


def execution_settings(run_dir: Path, **overrides: Any) -> Settings:
    """Fast reconnects and a short HTTP timeout; ``overrides`` are Settings sections (merged)."""
    sections: dict[str, dict[str, Any]] = {
        "zmq": {"run_dir": run_dir, "heartbeat_interval_ms": 100},
        "execution": {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "http_timeout_s": 2.0},
        "metrics": {"base_port": 0},
        "control": {"token": CONTROL_TOKEN},
    }
    for name, body in overrides.items():
        sections.setdefault(name, {}).update(body)
    return Settings(**sections)


async def serve_local(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an aiohttp app on 127.0.0.1 at an ephemeral port; returns (runner, http origin)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
