"""Orders reach execution only from risk, intents reach risk only from signal: a process without the
right credentials gets nothing handled on the privileged socket (the handshake fails, counted), and
the general socket refuses orders and intents with a clear reply (counted). Control commands that
change something need the token and run only before their deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
import zmq
from prometheus_client import REGISTRY

from common import wire
from common.auth import PRIVILEGED, peer_password
from common.clock import wall_ns
from common.config import Settings
from common.peer_link import credentials
from common.service import Service
from common.zap import client_security
from common.zmq_io import RpcClient

TOKEN = "peer-test-token"


def _intent() -> wire.OrderIntent:
    now = wall_ns()
    return wire.OrderIntent(
        intent_id="r.1", strategy="anything", symbol="AAPL", side="buy", qty=50, limit_px=1,
        signal_ns=now, deadline_ns=now + 10**10,
    )  # fmt: skip


def _request(service: str) -> Any:
    intent = _intent()
    if service == "execution":
        return wire.OrderRequest(client_order_id="zt-r.1", intent=intent, risk_ns=wall_ns())
    return intent


class Recorder(Service):
    """Records every request handed to ``handle`` and every run of the mutating command ``cancel_all``."""

    CONTROL_MUTATING = frozenset({"cancel_all"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.handled: list[str] = []
        self.wipes = 0

    def handle(self, msg: Any) -> Any:
        self.handled.append(type(msg).__name__)
        return wire.Reply(ok=True, detail="handled")

    def control(self, cmd: wire.Control) -> wire.Reply | None:
        if cmd.cmd == "cancel_all":
            self.wipes += 1
            return wire.Reply(ok=True, detail="wiped")
        return None


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _run(tmp_path: Path, service: str, scenario: Callable[[Recorder], Awaitable[None]]) -> None:
    cls = type(f"Recorder_{service}", (Recorder,), {"name": service})
    settings = Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 50},
        metrics={"base_port": 0},
        control={"token": TOKEN},
    )

    async def main() -> None:
        svc = cls(settings)
        task = asyncio.get_running_loop().create_task(svc.run_forever())
        try:
            await scenario(svc)
        finally:
            svc.request_stop()
            await asyncio.wait_for(task, 5)

    uvloop.run(main())


def _rogue(svc: Service, username: str | None, password: bytes = b"") -> zmq.Socket:
    """A DEALER on the privileged socket that queues its request (no IMMEDIATE): only a completed
    handshake could ever deliver it."""
    spec = PRIVILEGED[svc.name]
    sock = svc.ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if username is not None:
        client_security(sock, username, password)
    sock.connect(svc.settings.zmq.endpoint(svc.name, spec.kind))
    sock.send_multipart([b"\x00" * 8, wire.encode(_request(svc.name))])
    return sock


@pytest.mark.parametrize("service", ["execution", "risk"])
def test_only_the_named_peer_gets_requests_handled(tmp_path: Path, service: str) -> None:
    spec = PRIVILEGED[service]

    async def scenario(svc: Recorder) -> None:
        secret = svc.settings.peer_secret()
        refused = {r: _sample("zt_peer_refused_total", service=service, socket=spec.kind, reason=r)
                   for r in ("protocol", "credentials")}  # fmt: skip
        wrong_socket = _sample(
            "zt_request_refused_total", service=service, kind=type(_request(service)).__name__
        )
        other = "market_data"
        rogues = [
            _rogue(svc, None),  # no credentials at all
            _rogue(svc, spec.peer, b"guessed-password"),  # the right name, a wrong password
            _rogue(svc, other, peer_password(secret, other)),  # a valid password for another name
            _rogue(svc, spec.peer, peer_password(secret, other)),  # the right name, another's password
            _rogue(svc, spec.peer, peer_password("another-secret", spec.peer)),  # another secret
        ]
        # the general socket: anyone can reach it, and it refuses orders and intents outright
        general = svc.client(service, timeout_ms=2000)
        await asyncio.sleep(0.1)
        reply = await general.request(_request(service))
        assert isinstance(reply, wire.Reply) and not reply.ok and f"only from {spec.peer}" in reply.detail
        assert _sample(
            "zt_request_refused_total", service=service, kind=type(_request(service)).__name__
        ) == (wrong_socket + 1)
        await asyncio.sleep(0.5)  # many reconnect attempts by every rogue
        assert svc.handled == []
        after = {r: _sample("zt_peer_refused_total", service=service, socket=spec.kind, reason=r)
                 for r in refused}  # fmt: skip
        assert after["protocol"] >= refused["protocol"] + 1
        assert after["credentials"] >= refused["credentials"] + 4
        for sock in rogues:
            sock.close(0)

        # the real peer, with its credentials: handled, and it answers the liveness ping
        peer = RpcClient(
            svc.ctx, svc.loop, svc.settings.zmq.endpoint(service, spec.kind), "test", service,
            timeout_ms=2000, heartbeat_ms=50, setup=credentials(svc.settings, spec.peer),
        )  # fmt: skip
        for _ in range(100):
            if peer.alive:
                break
            await asyncio.sleep(0.02)
        assert peer.alive
        assert (await peer.request(_request(service))).ok
        assert svc.handled == [type(_request(service)).__name__]
        peer.close()
        general.close()

    _run(tmp_path, service, scenario)


def test_mutating_control_needs_the_token_and_its_deadline(tmp_path: Path) -> None:
    async def scenario(svc: Recorder) -> None:
        cli = svc.client("signal", timeout_ms=2000)
        await asyncio.sleep(0.1)
        missing = await cli.request(wire.Control(cmd="cancel_all"))
        wrong = await cli.request(wire.Control(cmd="cancel_all", token=TOKEN + "x"))
        late = await cli.request(wire.Control(cmd="cancel_all", token=TOKEN, deadline_ns=wall_ns() - 1))
        assert not missing.ok and not wrong.ok and not late.ok and "deadline" in late.detail
        assert svc.wipes == 0  # nothing changed
        ok = await cli.request(wire.Control(cmd="cancel_all", token=TOKEN, deadline_ns=wall_ns() + 10**9))
        assert ok.ok and svc.wipes == 1
        status = await cli.request(wire.Control(cmd="status"))  # read-only: no token needed
        assert status.ok
        unknown = await cli.request(wire.Control(cmd="wipe", token=TOKEN))  # type: ignore[arg-type]
        assert not unknown.ok and "bad request" in unknown.detail  # outside the vocabulary: refused
        cli.close()

    _run(tmp_path, "signal", scenario)
