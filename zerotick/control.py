"""A synchronous control client for the CLI: one request over a DEALER, bounded by a timeout.

The command carries the control token and a deadline (now + timeout): a service that receives it
after the CLI gave up refuses it instead of acting on it later. Over tcp the CLI authenticates with
the operator's CURVE key (``common.curve``)."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import orjson
import zmq

from common import curve, fixed, wire
from common.clock import wall_ns
from common.config import Settings
from common.curve import OPERATOR
from common.zap import curve_client

_ids = itertools.count(1)


class ControlError(Exception):
    pass


class NotRunning(ControlError):
    """No connection to the service within the connect timeout: it is not running, or hung."""


def request(
    settings: Settings,
    service: str,
    msg: Any,
    timeout_ms: int = 1000,
    connect_timeout_ms: int | None = None,
    identity: str = OPERATOR,
) -> Any:
    """Send one request to ``service``; return the decoded reply message. Over tcp the socket is
    CURVE with ``identity``'s key (the operator's; a service's own for its health probe)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    try:
        _secure(sock, settings, service, identity)
        sock.connect(settings.zmq.endpoint(service, "rpc"))
        req_id = next(_ids).to_bytes(8, "little")
        connect_ms = timeout_ms if connect_timeout_ms is None else connect_timeout_ms
        if not sock.poll(connect_ms, zmq.POLLOUT):
            raise NotRunning("not running (no connection)")
        deadline_ns = wall_ns() + timeout_ms * 1_000_000
        sock.send_multipart([req_id, wire.encode(msg)])
        while (left_ms := (deadline_ns - wall_ns()) // 1_000_000) > 0 and sock.poll(left_ms, zmq.POLLIN):
            frames = sock.recv_multipart()
            if len(frames) != 2 or frames[0] != req_id:
                continue
            try:
                return wire.decode(frames[1])
            except wire.WireError as exc:
                raise ControlError(f"unreadable reply: {exc}") from None
        raise ControlError(f"no answer within {timeout_ms} ms (if it arrives later, it is not run)")
    finally:
        sock.close(0)


def _secure(sock: zmq.Socket, settings: Settings, service: str, identity: str) -> None:
    if settings.zmq.transport != "tcp":
        return  # ipc: the owner-only run folder is the boundary
    try:
        keys = curve.load(settings.zmq.curve_dir, identity)
    except curve.CurveKeyError as exc:  # kill goes on out of band: it catches ControlError
        raise ControlError(str(exc)) from None
    curve_client(sock, keys.public, keys.secret, keys.publics[service])


def send_control(
    settings: Settings,
    service: str,
    cmd: str,
    args: dict[str, str] | None = None,
    timeout_ms: int = 1000,
    identity: str = OPERATOR,
) -> Any:
    """Send ``Control(cmd, args)`` to ``service``; return the reply as plain data (for JSON output)."""
    deadline_ns = wall_ns() + timeout_ms * 1_000_000
    msg = wire.Control(cmd=cmd, args=args or {}, token=settings.control_token(), deadline_ns=deadline_ns)
    reply = request(settings, service, msg, timeout_ms, identity=identity)
    if isinstance(reply, wire.Reply):
        if not reply.ok:
            raise ControlError(reply.detail)
        if reply.data:
            try:
                return orjson.loads(reply.data)
            except orjson.JSONDecodeError:
                raise ControlError(f"{cmd}: reply data is not JSON ({len(reply.data)} bytes)") from None
        return {"detail": reply.detail}
    return as_doc(reply)


def as_doc(msg: Any) -> Any:
    """A typed reply as plain data for people: field names kept, positions in decimal units."""
    if isinstance(msg, wire.PositionsSnapshot):
        return {
            "as_of_seq": msg.as_of_seq if msg.as_of_seq >= 0 else None,
            "positions": {
                p.symbol: {
                    "qty": fixed.to_str(p.qty),
                    "avg_px": fixed.to_str(p.avg_px),
                    "realized_pnl": fixed.to_str(p.realized_pnl),
                }
                for p in msg.positions
            },
        }
    if isinstance(msg, msgspec.Struct):
        return {"type": type(msg).__name__, **{f: as_doc(getattr(msg, f)) for f in msg.__struct_fields__}}
    if isinstance(msg, list):
        return [as_doc(m) for m in msg]
    return msgspec.to_builtins(msg)
