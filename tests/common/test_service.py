"""The service skeleton: a start() that fails or never finishes still ends in a clean shutdown
with every socket closed, and requests are no longer taken while stop() runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import uvloop

from common import wire
from common.config import Settings
from common.service import Service
from common.zmq_io import RpcClient, RpcError


def _settings(tmp_path: Path) -> Settings:
    return Settings(zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 50}, metrics={"base_port": 0})


class Probe(Service):
    name = "risk"

    def __init__(self, settings: Settings, start_behaviour: str) -> None:
        super().__init__(settings)
        self.start_behaviour = start_behaviour
        self.stopped = False
        self.started = asyncio.Event()
        self.in_stop = asyncio.Event()
        self.release_stop = asyncio.Event()
        self.handled: list[str] = []

    async def start(self) -> None:
        self.started.set()
        if self.start_behaviour == "raise":
            raise RuntimeError("venue unreachable")
        if self.start_behaviour == "hang":
            await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True
        if self.start_behaviour == "slow_stop":
            self.in_stop.set()
            await self.release_stop.wait()

    def handle(self, msg: Any) -> Any:
        self.handled.append(type(msg).__name__)
        return wire.Reply(ok=True, detail="handled")

    def sockets_closed(self) -> bool:
        return self.rpc.sock.closed and self.pub.sock.closed and all(c.sock.closed for c in self._clients)


def test_start_that_raises_shuts_down_and_propagates(tmp_path: Path) -> None:
    async def main() -> Probe:
        svc = Probe(_settings(tmp_path), "raise")
        svc.client("execution")
        with pytest.raises(RuntimeError, match="venue unreachable"):
            await asyncio.wait_for(svc.run_forever(), 5)
        return svc

    svc = uvloop.run(main())
    assert svc.stopped and svc.sockets_closed()


def test_stop_request_while_start_hangs_cancels_it(tmp_path: Path) -> None:
    async def main() -> Probe:
        svc = Probe(_settings(tmp_path), "hang")
        task = asyncio.get_running_loop().create_task(svc.run_forever())
        await asyncio.wait_for(svc.started.wait(), 5)
        svc.request_stop()
        await asyncio.wait_for(task, 5)  # before: waited for start() forever
        return svc

    svc = uvloop.run(main())
    assert svc.stopped and svc.sockets_closed()


def test_no_requests_are_served_while_stop_runs(tmp_path: Path) -> None:
    async def main() -> tuple[Probe, str]:
        settings = _settings(tmp_path)
        svc = Probe(settings, "slow_stop")
        loop = asyncio.get_running_loop()
        task = loop.create_task(svc.run_forever())
        await asyncio.wait_for(svc.started.wait(), 5)
        cli = RpcClient(
            svc.ctx,
            loop,
            settings.zmq.endpoint("risk", "rpc"),
            "test",
            "risk",
            timeout_ms=300,
            heartbeat_ms=0,
        )
        await asyncio.sleep(0.1)
        assert isinstance(await cli.request(wire.Replay(after_seq=0)), wire.Reply)
        svc.request_stop()
        await asyncio.wait_for(svc.in_stop.wait(), 5)
        try:
            await cli.request(wire.Replay(after_seq=0))
            outcome = "answered"
        except RpcError as exc:
            outcome = type(exc).__name__
        svc.release_stop.set()
        await asyncio.wait_for(task, 5)
        cli.close()
        return svc, outcome

    svc, outcome = uvloop.run(main())
    assert svc.handled == ["Replay"]
    assert outcome in ("RpcTimeout", "RpcUnavailable")
