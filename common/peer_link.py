"""The privileged request sockets: execution's "orders" (only risk) and risk's "intents" (only signal).

The server side is an RpcServer whose connections common.zap authenticates; the client side is an
RpcClient with the connecting service's credentials. Both derive passwords from the peer secret.
"""

from __future__ import annotations

import asyncio
import logging

import zmq

from common.auth import PrivilegedSocket, peer_password
from common.config import Settings
from common.zap import HandshakeMonitor, PeerPolicy, ZapHandler, client_security, server_security
from common.zmq_io import RequestHandler, RpcServer, SocketSetup

log = logging.getLogger(__name__)


class PeerServer:
    """A ROUTER only ``spec.peer`` can connect to; the handler sees nothing from anyone else."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        settings: Settings,
        spec: PrivilegedSocket,
        handler: RequestHandler,
    ) -> None:
        self.ctx = ctx
        self.spec = spec
        self.endpoint = settings.zmq.endpoint(spec.service, spec.kind)
        if self.endpoint.startswith("tcp://"):
            log.warning(
                "privileged socket over tcp with PLAIN credentials (not encrypted); CURVE replaces it",
                extra={"fields": {"socket": spec.kind}},
            )
        password = peer_password(settings.peer_secret(), spec.peer)
        self.policy = PeerPolicy(spec.service, spec.kind, spec.peer, password)
        ZapHandler.register(ctx, loop, self.endpoint, self.policy)
        self.rpc = RpcServer(
            ctx,
            loop,
            self.endpoint,
            handler,
            spec.service,
            setup=lambda sock: server_security(sock, self.endpoint),
        )
        self.monitor = HandshakeMonitor(self.rpc.sock, loop, self.policy)

    def close(self) -> None:
        self.monitor.close()
        self.rpc.close()
        ZapHandler.unregister(self.ctx, self.endpoint)


def credentials(settings: Settings, me: str) -> SocketSetup:
    """Socket setup that makes a client connect as service ``me``."""
    password = peer_password(settings.peer_secret(), me)

    def setup(sock: zmq.Socket) -> None:
        client_security(sock, me, password)

    return setup
