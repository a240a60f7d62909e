"""Who may do what: the control token, and which peer may use a service's privileged socket.

Control: ``ping``, ``status`` and the commands a service declares read-only run for anyone who can
reach its rpc socket; every other command (fail closed: also one nobody declared) needs the control
token, compared in constant time. A command that arrives after its ``deadline_ns`` is not run.

Peers: execution takes orders only on its "orders" socket, where only risk can connect; risk takes
intents only on its "intents" socket, where only signal can connect (``PRIVILEGED``). Over ipc a
peer proves its name with a password derived from the shared peer secret (``peer_password``); over
tcp with its CURVE key, and every socket only takes the keys ``allowed_clients`` names. common.zap
checks once per connection.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field

from prometheus_client import Counter

from common import wire
from common.config import SERVICES, EndpointKind
from common.enums import ControlRefusal

log = logging.getLogger(__name__)

CONTROL_REFUSED = Counter(
    "zt_control_refused_total",
    "Control commands refused (reason: token = missing or wrong token, expired = after its deadline)",
    ["service", "cmd", "reason"],
)
PEER_REFUSED = Counter(
    "zt_peer_refused_total",
    "Connections refused on an authenticated socket (credentials: ZAP said no to the name or key; "
    "protocol: the handshake failed: no credentials, another mechanism, or the wrong server key)",
    ["service", "socket", "reason"],
)
REQUEST_REFUSED = Counter(
    "zt_request_refused_total",
    "Orders or intents refused because they came on a socket that does not take them",
    ["service", "kind"],
)

ALWAYS_READ_ONLY = frozenset({"ping", "status"})


def token_ok(presented: str, expected: str) -> bool:
    """Constant-time comparison; no expected token means nothing is authorised."""
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True)
class ControlGuard:
    """The control-command policy of one service."""

    service: str
    read_only: frozenset[str]
    mutating: frozenset[str]
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        # the commands that change something have their series from the start (0): alerts and
        # dashboards see the first refusal
        for cmd in self.mutating:
            for reason in ControlRefusal:
                CONTROL_REFUSED.labels(self.service, cmd, reason)

    def _label(self, cmd: str) -> str:
        known = cmd in ALWAYS_READ_ONLY or cmd in self.read_only or cmd in self.mutating
        return cmd if known else "other"

    def needs_token(self, cmd: str) -> bool:
        return cmd not in ALWAYS_READ_ONLY and cmd not in self.read_only

    def refusal(self, cmd: wire.Control, now_ns: int) -> wire.Reply | None:
        """None when ``cmd`` may run now; otherwise the reply that refuses it (counted, logged)."""
        return self.refusal_for(cmd.cmd, cmd.token, cmd.deadline_ns, now_ns)

    def refusal_for(self, name: str, token: str, deadline_ns: int, now_ns: int) -> wire.Reply | None:
        """The same policy for a typed command (e.g. SetTradingState) carrying a token and a deadline."""
        if self.needs_token(name) and not token_ok(token, self.token):
            self._refused(name, ControlRefusal.TOKEN)
            return wire.Reply(ok=False, detail=f"refused: {name[:64]!r} needs a valid control token")
        if deadline_ns and now_ns > deadline_ns:
            late_ms = (now_ns - deadline_ns) / 1e6
            self._refused(name, ControlRefusal.EXPIRED)
            return wire.Reply(
                ok=False,
                detail=f"refused: {name[:64]!r} arrived {late_ms:.1f} ms after its deadline; not run",
            )
        return None

    def _refused(self, cmd: str, reason: ControlRefusal) -> None:
        CONTROL_REFUSED.labels(self.service, self._label(cmd), reason).inc()
        log.warning("control command refused", extra={"fields": {"cmd": cmd[:64], "reason": reason}})


@dataclass(frozen=True)
class PrivilegedSocket:
    """A request socket that only one peer may connect to; ``requests`` are taken nowhere else."""

    service: str  # binds it
    kind: EndpointKind
    peer: str  # the only service that may connect
    requests: tuple[type, ...]


PRIVILEGED: dict[str, PrivilegedSocket] = {
    "execution": PrivilegedSocket(
        "execution", "orders", "risk", (wire.OrderRequest, wire.CancelRequest, wire.Trip)
    ),
    "risk": PrivilegedSocket("risk", "intents", "signal", (wire.OrderIntent,)),
}


def allowed_clients(service: str, kind: EndpointKind, operator: str) -> tuple[str, ...]:
    """Whose keys may connect to ``service``'s ``kind`` socket over tcp: the one peer on a privileged
    socket; every service and the operator's CLI on pub and rpc (the control token still guards
    every command that changes something)."""
    spec = PRIVILEGED.get(service)
    if spec is not None and spec.kind == kind:
        return (spec.peer,)
    return (*SERVICES, operator)


def peer_password(secret: str, service: str) -> bytes:
    """The password with which ``service`` proves its name: HMAC-SHA256(peer secret, name)."""
    if not secret:
        raise ValueError("no peer secret: set zmq.peer_secret or let the service create <run_dir>/peer.key")
    return hmac.new(secret.encode(), service.encode(), hashlib.sha256).hexdigest().encode()
