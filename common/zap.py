"""Peer authentication for ZeroMQ sockets: a ZAP handler (RFC 27) on the event loop.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of a context once per incoming
connection on a socket with a security mechanism; nothing is checked per message. Each protected
server socket registers a :class:`PeerPolicy` under its ZAP domain (its endpoint).

Mechanism: PLAIN today (ipc, inside the owner-only run folder): the client's username is its service
name, its password ``common.auth.peer_password``. Over tcp this is where CURVE goes: ``server_security``
sets the server's secret key, ``client_security`` the client's key pair and the server's public key,
and ``PeerPolicy`` checks the client's public key instead of a password.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass, field
from typing import ClassVar

import zmq
from zmq.utils.monitor import parse_monitor_message

from common.auth import PEER_REFUSED, LogLimiter

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


@dataclass(frozen=True)
class PeerPolicy:
    """Who may connect to one server socket."""

    service: str  # metric/log labels
    socket: str
    peer: str  # the only username accepted
    password: bytes = field(repr=False)


def server_security(sock: zmq.Socket, domain: str) -> None:
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.PLAIN_SERVER, 1)


def client_security(sock: zmq.Socket, username: str, password: bytes) -> None:
    sock.setsockopt(zmq.PLAIN_USERNAME, username.encode())
    sock.setsockopt(zmq.PLAIN_PASSWORD, password)


class ZapHandler:
    """The one ZAP handler of a zmq.Context, answered on the current event loop."""

    _handlers: ClassVar[dict[zmq.Context, ZapHandler]] = {}

    def __init__(self, ctx: zmq.Context) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(ZAP_ENDPOINT)
        self.policies: dict[bytes, PeerPolicy] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._fd = self.sock.getsockopt(zmq.FD)
        self._logs = LogLimiter()

    @classmethod
    def register(
        cls, ctx: zmq.Context, loop: asyncio.AbstractEventLoop, domain: str, policy: PeerPolicy
    ) -> None:
        handler = cls._handlers.get(ctx)
        if handler is None or handler.sock.closed:
            handler = cls._handlers[ctx] = cls(ctx)
        handler._attach(loop)
        handler.policies[domain.encode()] = policy

    @classmethod
    def unregister(cls, ctx: zmq.Context, domain: str) -> None:
        handler = cls._handlers.get(ctx)
        if handler is not None:
            handler.policies.pop(domain.encode(), None)

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on ``loop`` (tests run many loops in one process; the socket outlives each)."""
        if self.loop is loop:
            return
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self._fd)
        self.loop = loop
        loop.add_reader(self._fd, self._drain)
        loop.call_soon(self._drain)

    def _drain(self) -> None:
        sock = self.sock
        while not sock.closed and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                sock.send_multipart(self._answer(frames), zmq.NOBLOCK)
            except zmq.ZMQError:
                log.exception("ZAP reply not sent")

    def _answer(self, frames: list[bytes]) -> list[bytes]:
        # [routing id, b"", version, request id, domain, address, identity, mechanism, *credentials]
        envelope, req = frames[:2], frames[2:]
        if len(req) < 6:
            return [*envelope, b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, req_id, domain, _address, _identity, mechanism, *creds = req
        policy = self.policies.get(domain)
        if policy is None:
            log.error("ZAP request for an unknown domain refused")
            return [*envelope, version, req_id, b"400", b"unknown domain", b"", b""]
        user = creds[0] if mechanism == b"PLAIN" and len(creds) == 2 else b""
        password = creds[1] if user else b""
        user_ok = hmac.compare_digest(user, policy.peer.encode())
        password_ok = hmac.compare_digest(password, policy.password)
        if user_ok and password_ok:
            return [*envelope, version, req_id, b"200", b"OK", user, b""]
        refused(policy, "credentials", user.decode(errors="replace"), self._logs)
        return [*envelope, version, req_id, b"400", b"not allowed", b"", b""]


def refused(policy: PeerPolicy, reason: str, claimed: str, logs: LogLimiter) -> None:
    """Count a refused peer; log the name it claimed (never a password), at most once a second."""
    PEER_REFUSED.labels(policy.service, policy.socket, reason).inc()
    if logs.allow(f"{policy.socket}/{reason}"):
        log.warning(
            "peer refused",
            extra={"fields": {"socket": policy.socket, "reason": reason, "claimed": claimed[:64]}},
        )


class HandshakeMonitor:
    """Counts connections refused before ZAP is asked (no or another mechanism: no credentials)."""

    EVENTS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL

    def __init__(self, sock: zmq.Socket, loop: asyncio.AbstractEventLoop, policy: PeerPolicy) -> None:
        self._server = sock
        self.sock = sock.get_monitor_socket(self.EVENTS)
        self.loop = loop
        self.policy = policy
        self._logs = LogLimiter()
        self._fd = self.sock.getsockopt(zmq.FD)
        loop.add_reader(self._fd, self._drain)
        loop.call_soon(self._drain)

    def _drain(self) -> None:
        while not self.sock.closed and self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                event = parse_monitor_message(self.sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
            if event["event"] & self.EVENTS:
                refused(self.policy, "protocol", "", self._logs)

    def close(self) -> None:
        try:
            self.loop.remove_reader(self._fd)
        except Exception:
            pass
        if not self._server.closed:
            self._server.disable_monitor()
        self.sock.close(0)
