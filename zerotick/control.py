"""A synchronous control client for the CLI: one request over a DEALER, bounded by a timeout.

The command carries the control token and a deadline (now + timeout): a service that receives it
after the CLI gave up refuses it instead of acting on it later."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import zmq

from common import wire
from common.clock import wall_ns
from common.config import Settings

_ids = itertools.count(1)


class ControlError(Exception):
    pass


def send_control(
    settings: Settings, service: str, cmd: str, args: dict[str, str] | None = None, timeout_ms: int = 1000
) -> Any:
    """Send ``Control(cmd, args)`` to ``service``; return the decoded reply data (JSON) or detail."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    try:
        sock.connect(settings.zmq.endpoint(service, "rpc"))
        req_id = next(_ids).to_bytes(8, "little")
        if not sock.poll(timeout_ms, zmq.POLLOUT):
            raise ControlError("not running (no connection)")
        deadline_ns = wall_ns() + timeout_ms * 1_000_000
        msg = wire.Control(cmd=cmd, args=args or {}, token=settings.control_token(), deadline_ns=deadline_ns)
        sock.send_multipart([req_id, wire.encode(msg)])
        while (left_ms := (deadline_ns - wall_ns()) // 1_000_000) > 0 and sock.poll(left_ms, zmq.POLLIN):
            rid, body = sock.recv_multipart()
            if rid != req_id:
                continue
            reply = wire.decode(body)
            if not isinstance(reply, wire.Reply):
                raise ControlError(f"unexpected reply {type(reply).__name__}")
            if not reply.ok:
                raise ControlError(reply.detail)
            if reply.data:
                try:
                    return orjson.loads(reply.data)
                except orjson.JSONDecodeError:
                    return {"detail": reply.detail, "bytes": len(reply.data)}
            return {"detail": reply.detail}
        raise ControlError(f"no answer within {timeout_ms} ms (if it arrives later, it is not run)")
    finally:
        sock.close(0)
