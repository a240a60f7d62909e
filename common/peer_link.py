"""How a process's ZeroMQ sockets authenticate, and the privileged request sockets.

Over ipc (one host, the owner-only run folder): the privileged sockets, execution's "orders" (only
risk) and risk's "intents" (only signal), take PLAIN credentials derived from the peer secret; pub and
rpc are protected by the folder alone. Over tcp: every socket is CURVE, each server takes only the
client keys ``common.auth.allowed_clients`` names, and a process without its keys does not start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import zmq

from common import curve
from common.auth import PRIVILEGED, PrivilegedSocket, allowed_clients, peer_password
from common.config import PRIVILEGED_KINDS, EndpointKind, Settings
from common.zap import (
    HandshakeMonitor,
    PeerPolicy,
    ZapHandler,
    client_security,
    curve_client,
    curve_server,
    server_security,
)
from common.zmq_io import RequestHandler, RpcServer, SocketSetup

log = logging.getLogger(__name__)


class SocketGuard:
    """One bound socket's security: its mechanism options, its ZAP policy and a monitor counting the
    handshakes that fail before ZAP is asked. ``setup`` goes to the socket before it binds."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        endpoint: str,
        policy: PeerPolicy,
        options: Callable[[zmq.Socket], None],
    ) -> None:
        self.ctx = ctx
        self.loop = loop
        self.endpoint = endpoint
        self.policy = policy
        self._options = options
        self.monitor: HandshakeMonitor | None = None
        ZapHandler.register(ctx, loop, endpoint, policy)

    def setup(self, sock: zmq.Socket) -> None:
        self._options(sock)
        self.monitor = HandshakeMonitor(sock, self.loop, self.policy)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        ZapHandler.unregister(self.ctx, self.endpoint)


class LinkSecurity:
    """The security of the sockets of one process that acts as ``me`` (a service, or the operator)."""

    def __init__(self, settings: Settings, me: str) -> None:
        self.settings = settings
        self.me = me
        self.keys = curve.load(settings.zmq.curve_dir, me) if settings.zmq.transport == "tcp" else None

    def guard(
        self, ctx: zmq.Context, loop: asyncio.AbstractEventLoop, service: str, kind: EndpointKind
    ) -> SocketGuard | None:
        """The guard of ``service``'s ``kind`` socket, bound by this process; None = not authenticated
        (pub and rpc over ipc)."""
        domain = self.settings.zmq.bind_endpoint(service, kind)
        keys = self.keys
        if keys is not None:
            allowed = allowed_clients(service, kind, curve.OPERATOR)
            known = {key: name for name, key in keys.publics.items()}
            policy = PeerPolicy(service, kind, curve={keys.publics[n]: n for n in allowed}, known=known)
            return SocketGuard(ctx, loop, domain, policy, lambda s: curve_server(s, domain, keys.secret))
        if kind in PRIVILEGED_KINDS:
            peer = PRIVILEGED[service].peer
            policy = PeerPolicy(service, kind, plain={peer: peer_password(self.settings.peer_secret(), peer)})
            return SocketGuard(ctx, loop, domain, policy, lambda s: server_security(s, domain))
        return None

    def client(self, service: str, kind: EndpointKind) -> SocketSetup | None:
        """Socket setup that makes a client reach ``service``'s ``kind`` socket as ``me``."""
        keys = self.keys
        if keys is not None:
            server_key = keys.publics[service]
            return lambda s: curve_client(s, keys.public, keys.secret, server_key)
        if kind in PRIVILEGED_KINDS:
            return credentials(self.settings, self.me)
        return None


class PeerServer:
    """A ROUTER only ``spec.peer`` can connect to; the handler sees nothing from anyone else."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        security: LinkSecurity,
        spec: PrivilegedSocket,
        handler: RequestHandler,
    ) -> None:
        self.spec = spec
        self.endpoint = security.settings.zmq.bind_endpoint(spec.service, spec.kind)
        guard = security.guard(ctx, loop, spec.service, spec.kind)
        assert guard is not None  # a privileged socket is always authenticated
        self.guard = guard
        self.policy = guard.policy
        self.rpc = RpcServer(ctx, loop, self.endpoint, handler, spec.service, setup=guard.setup)

    def close(self) -> None:
        self.rpc.close()
        self.guard.close()


def credentials(settings: Settings, me: str) -> SocketSetup:
    """PLAIN socket setup (ipc) that makes a client connect as service ``me``."""
    password = peer_password(settings.peer_secret(), me)

    def setup(sock: zmq.Socket) -> None:
        client_security(sock, me, password)

    return setup
