"""Over tcp every socket is CURVE: a client without a key, with a key nobody generated, or with
another service's key on a privileged socket completes no handshake (counted in
zt_peer_refused_total) and nothing it sends is handled; the right key gets through, and the
operator's key reaches the control socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
import zmq
import zmq.auth
from prometheus_client import REGISTRY

from common import curve, wire
from common.auth import PRIVILEGED
from common.clock import wall_ns
from common.config import Settings
from common.peer_link import LinkSecurity
from common.service import Service
from common.zap import curve_client
from common.zmq_io import RpcClient
from tests.kit.system import free_port


def _intent() -> wire.OrderIntent:
    now = wall_ns()
    return wire.OrderIntent(
        intent_id="c.1", strategy="s", symbol="AAPL", side="buy", qty=1, limit_px=1,
        signal_ns=now, deadline_ns=now + 10**10,
    )  # fmt: skip


def _request(service: str) -> Any:
    if service == "execution":
        return wire.OrderRequest(client_order_id="zt-c.1", intent=_intent(), risk_ns=wall_ns())
    return _intent()


class Recorder(Service):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.handled: list[str] = []

    def handle(self, msg: Any) -> Any:
        self.handled.append(type(msg).__name__)
        return wire.Reply(ok=True, detail="handled")


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _settings(tmp_path: Path, keys: Path) -> Settings:
    base = free_port()  # ten ports from here; a collision fails the bind loudly, never silently
    return Settings(
        zmq={"run_dir": tmp_path / "run", "transport": "tcp", "tcp_base_port": base, "curve_dir": keys,
             "heartbeat_interval_ms": 50},
        metrics={"base_port": 0},
        control={"token": "t"},
    )  # fmt: skip


def _run(tmp_path: Path, service: str, scenario: Callable[[Recorder, Path], Awaitable[None]]) -> None:
    keys = tmp_path / "keys"
    curve.generate(keys)
    cls = type(f"Recorder_{service}", (Recorder,), {"name": service})
    settings = _settings(tmp_path, keys)

    async def main() -> None:
        svc = cls(settings)
        task = asyncio.get_running_loop().create_task(svc.run_forever())
        try:
            await scenario(svc, keys)
        finally:
            svc.request_stop()
            await asyncio.wait_for(task, 5)

    uvloop.run(main())


def _rogue(
    svc: Service, endpoint: str, key_pair: tuple[bytes, bytes] | None, server_key: bytes
) -> zmq.Socket:
    """A DEALER that queues one request (no IMMEDIATE): only a completed handshake delivers it."""
    sock = svc.ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if key_pair is not None:
        curve_client(sock, key_pair[0], key_pair[1], server_key)
    sock.connect(endpoint)
    sock.send_multipart([b"\x00" * 8, wire.encode(_request(svc.name))])
    return sock


async def _until_alive(client: RpcClient) -> None:
    """The heartbeat pings come back: the handshake completed."""
    for _ in range(250):
        if client.alive:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no handshake with {client.peer}")


def _pair(keys: Path, name: str) -> tuple[bytes, bytes]:
    public, secret = zmq.auth.load_certificate(curve.secret_path(keys, name))
    assert secret is not None
    return public, secret


@pytest.mark.parametrize("service", ["execution", "risk"])
def test_only_the_peers_key_gets_requests_handled(tmp_path: Path, service: str) -> None:
    spec = PRIVILEGED[service]

    async def scenario(svc: Recorder, keys: Path) -> None:
        endpoint = svc.settings.zmq.endpoint(service, spec.kind)
        server_key = curve.load(keys, spec.peer).publics[service]
        stranger = zmq.curve_keypair()  # a key nobody generated
        other = "market_data"  # a real service, not this socket's peer
        before = {r: _sample("zt_peer_refused_total", service=service, socket=spec.kind, reason=r)
                  for r in ("protocol", "credentials")}  # fmt: skip
        rogues = [
            _rogue(svc, endpoint, None, server_key),  # no CURVE at all
            _rogue(svc, endpoint, stranger, server_key),  # a key nobody knows
            _rogue(svc, endpoint, _pair(keys, other), server_key),  # another service's key
            _rogue(svc, endpoint, _pair(keys, curve.OPERATOR), server_key),  # even the operator's
            _rogue(svc, endpoint, _pair(keys, spec.peer), stranger[0]),  # the peer's key, a fake server key
        ]
        await asyncio.sleep(0.6)  # many reconnect attempts by every rogue
        assert svc.handled == []
        after = {r: _sample("zt_peer_refused_total", service=service, socket=spec.kind, reason=r)
                 for r in before}  # fmt: skip
        assert after["protocol"] >= before["protocol"] + 2  # no CURVE; a fake server key
        assert after["credentials"] >= before["credentials"] + 3  # stranger, other service, operator
        for sock in rogues:
            sock.close(0)

        # the real peer with its own key: handled
        peer_settings = svc.settings
        peer = RpcClient(
            svc.ctx, svc.loop, endpoint, "test", service, timeout_ms=2000, heartbeat_ms=50,
            setup=LinkSecurity(peer_settings, spec.peer).client(service, spec.kind),
        )  # fmt: skip
        await _until_alive(peer)
        assert (await peer.request(_request(service))).ok
        assert svc.handled == [type(_request(service)).__name__]
        peer.close()

    _run(tmp_path, service, scenario)


def test_pub_and_rpc_take_the_services_and_the_operator_only(tmp_path: Path) -> None:
    async def scenario(svc: Recorder, keys: Path) -> None:
        rpc = svc.settings.zmq.endpoint("signal", "rpc")
        before = _sample("zt_peer_refused_total", service="signal", socket="rpc", reason="credentials")
        server_key = curve.load(keys, curve.OPERATOR).publics["signal"]
        rogue = _rogue(svc, rpc, zmq.curve_keypair(), server_key)
        # every service and the operator reach the control socket; the reply proves the handshake
        for name in curve.KEY_NAMES:
            cli = RpcClient(
                svc.ctx, svc.loop, rpc, "test", "signal", timeout_ms=2000, heartbeat_ms=20,
                setup=LinkSecurity(svc.settings, name).client("signal", "rpc"),
            )  # fmt: skip
            await _until_alive(cli)
            reply = await cli.request(wire.Control(cmd="ping"))
            assert reply.ok and reply.detail == "pong", name
            cli.close()
        await asyncio.sleep(0.3)
        assert _sample("zt_peer_refused_total", service="signal", socket="rpc", reason="credentials") > before
        rogue.close(0)

        # the publisher: a subscriber with a stranger's key receives nothing, a service's key does
        pub = svc.settings.zmq.endpoint("signal", "pub")
        good = svc.ctx.socket(zmq.SUB)
        bad = svc.ctx.socket(zmq.SUB)
        for sock, pair in ((good, _pair(keys, "risk")), (bad, zmq.curve_keypair())):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            curve_client(sock, pair[0], pair[1], server_key)
            sock.connect(pub)
        got = await asyncio.to_thread(good.poll, 3000)  # heartbeats every 50 ms
        assert got
        assert not bad.poll(300)
        good.close(0)
        bad.close(0)

    _run(tmp_path, "signal", scenario)


def test_a_service_without_its_keys_does_not_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    curve.generate(keys)
    curve.secret_path(keys, "risk").unlink()
    cls = type("Recorder_risk", (Recorder,), {"name": "risk"})

    async def main() -> None:
        cls(_settings(tmp_path, keys))

    with pytest.raises(curve.CurveKeyError, match=r"risk\.key_secret"):
        uvloop.run(main())
