"""Peer authentication for ZeroMQ sockets: a ZAP handler (RFC 27) on the event loop.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of a context once per incoming
connection on a socket with a security mechanism; nothing is checked per message. Each protected
server socket registers a :class:`PeerPolicy` under its ZAP domain (its endpoint).

Mechanisms. PLAIN over ipc (inside the owner-only run folder), on the privileged sockets only: the
client's username is its service name, its password ``common.auth.peer_password``. CURVE over tcp, on
every socket: ``curve_server`` gives the server its secret key, ``curve_client`` gives the client its
key pair and the server's public key (a client with another server key cannot even complete the
handshake), and the policy accepts only the client public keys it names.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import zmq
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from common.auth import PEER_REFUSED
from common.enums import PeerRefusal
from common.ratelog import LogLimiter

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


@dataclass(frozen=True)
class PeerPolicy:
    """Who may connect to one server socket: PLAIN usernames with their passwords, or CURVE client
    public keys (Z85) with the name each belongs to."""

    service: str  # metric/log labels
    socket: str
    plain: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    curve: Mapping[bytes, str] = field(default_factory=dict)
    # every public key this process knows, allowed here or not: a refusal names whose key it was
    known: Mapping[bytes, str] = field(default_factory=dict)

    def check(self, mechanism: bytes, creds: list[bytes]) -> tuple[str | None, str]:
        """(the authenticated name, or None; the name claimed, for the log of a refusal)."""
        if mechanism == b"PLAIN" and len(creds) == 2:
            user, password = creds
            claimed = user.decode(errors="replace")
            expected = self.plain.get(claimed)
            # compare even for an unknown name: the time taken says nothing about which names exist
            ok = hmac.compare_digest(password, expected if expected is not None else b"\0" * 64)
            return (claimed if ok and expected is not None else None), claimed
        if mechanism == b"CURVE" and len(creds) == 1 and len(creds[0]) == 32:
            key = z85.encode(creds[0])
            name = self.curve.get(key)
            return name, name or self.known.get(key, "unknown key")
        return None, mechanism.decode(errors="replace")[:16]


def server_security(sock: zmq.Socket, domain: str) -> None:
    """PLAIN server (ipc)."""
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.PLAIN_SERVER, 1)


def client_security(sock: zmq.Socket, username: str, password: bytes) -> None:
    """PLAIN client (ipc)."""
    sock.setsockopt(zmq.PLAIN_USERNAME, username.encode())
    sock.setsockopt(zmq.PLAIN_PASSWORD, password)


def curve_server(sock: zmq.Socket, domain: str, secret_key: bytes) -> None:
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key)


def curve_client(sock: zmq.Socket, public_key: bytes, secret_key: bytes, server_key: bytes) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public_key)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key)


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
        for reason in PeerRefusal:  # the series exist from the start (0): alerts see the first refusal
            PEER_REFUSED.labels(policy.service, policy.socket, reason)

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
        name, claimed = policy.check(mechanism, creds)
        if name is not None:
            return [*envelope, version, req_id, b"200", b"OK", name.encode(), b""]
        refused(policy, PeerRefusal.CREDENTIALS, claimed, self._logs)
        return [*envelope, version, req_id, b"400", b"not allowed", b"", b""]


def refused(policy: PeerPolicy, reason: PeerRefusal, claimed: str, logs: LogLimiter) -> None:
    """Count a refused peer; log the name it claimed or whose key it used (never a password or a
    key), at most once a second."""
    PEER_REFUSED.labels(policy.service, policy.socket, reason).inc()
    if logs.allow(f"{policy.socket}/{reason}"):
        log.warning(
            "peer refused",
            extra={"fields": {"socket": policy.socket, "reason": reason, "claimed": claimed[:64]}},
        )


class HandshakeMonitor:
    """Counts connections refused before ZAP is asked: no or another mechanism, or (CURVE) a client
    that does not hold this server's public key."""

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
                refused(self.policy, PeerRefusal.PROTOCOL, "", self._logs)

    def close(self) -> None:
        try:
            self.loop.remove_reader(self._fd)
        except Exception:
            pass
        if not self._server.closed:
            self._server.disable_monitor()
        self.sock.close(0)
