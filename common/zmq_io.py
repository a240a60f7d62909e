"""ZeroMQ on the event loop: PUB/SUB for events, ROUTER/DEALER request/reply with timeouts.

Sockets are plain (synchronous) pyzmq sockets driven by ``loop.add_reader`` on the socket's FD,
drained with NOBLOCK until EAGAIN. That is ~15x faster than ``zmq.asyncio``'s await-per-message
(reference/perf-baseline.md). The ZeroMQ FD is edge-triggered: always drain fully, and re-check
``zmq.EVENTS`` after every send on a socket we also read from.

Request/reply never uses a lockstep REQ socket: a DEALER pipelines requests, each with an id, a
timeout (the caller gets :class:`RpcTimeout`, never a hang) and, in the message, a deadline after
which the server must not act on it. ``ZMQ_IMMEDIATE`` makes a send to a peer that is not connected
fail at once (:class:`RpcUnavailable`) instead of queueing a stale request for later delivery.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import zmq

from common import wire
from common.clock import mono_ns
from common.metrics import RPC_LATENCY, RPC_OUTCOMES, WIRE_ERRORS, ZMQ_DROPS

log = logging.getLogger(__name__)

BatchHandler = Callable[[bytes, list[Any]], None]
RequestHandler = Callable[[Any], "Any | Awaitable[Any]"]


class RpcError(Exception):
    pass


class RpcTimeout(RpcError):
    pass


class RpcUnavailable(RpcError):
    pass


def new_context() -> zmq.Context:
    return zmq.Context.instance()


def _prepare_ipc(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://") :]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)


class _Reader:
    """Drains a socket from the loop's reader callback."""

    def __init__(
        self, sock: zmq.Socket, loop: asyncio.AbstractEventLoop, on_frames: Callable[[list[bytes]], None]
    ):
        self.sock = sock
        self.loop = loop
        self._on_frames = on_frames
        self._fd = sock.getsockopt(zmq.FD)
        loop.add_reader(self._fd, self.drain)
        loop.call_soon(self.drain)  # messages may already be waiting: the edge fired before us

    def drain(self) -> None:
        sock = self.sock
        if sock.closed:
            return
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            try:
                self._on_frames(frames)
            except Exception:
                log.exception("handler failed")

    def close(self) -> None:
        try:
            self.loop.remove_reader(self._fd)
        except Exception:
            pass


class Publisher:
    def __init__(self, ctx: zmq.Context, endpoint: str, service: str, sndhwm: int = 100_000):
        _prepare_ipc(endpoint)
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.endpoint = endpoint
        self._drops = ZMQ_DROPS.labels(service, "pub")

    def publish(self, topic: bytes, msgs: list[Any]) -> None:
        try:
            self.sock.send(wire.encode_batch(topic, msgs), zmq.NOBLOCK)
        except zmq.Again:
            self._drops.inc(len(msgs))

    def close(self) -> None:
        self.sock.close(0)


class Subscriber:
    """Connects to one or more PUB endpoints; calls ``handler(topic, messages)`` per frame."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        endpoints: list[str],
        topics: list[bytes],
        handler: BatchHandler,
        service: str,
        rcvhwm: int = 100_000,
    ):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        for ep in endpoints:
            self.sock.connect(ep)
        self._handler = handler
        self._errors = WIRE_ERRORS.labels(service, "sub")
        self._reader = _Reader(self.sock, loop, self._on_frames)

    def _on_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            try:
                topic, msgs = wire.decode_batch(frame)
            except wire.WireError as exc:
                self._errors.inc()
                log.warning("dropped malformed frame", extra={"fields": {"error": str(exc)[:200]}})
                continue
            self._handler(topic, msgs)

    def close(self) -> None:
        self._reader.close()
        self.sock.close(0)


class RpcServer:
    """ROUTER. ``handler(msg)`` returns a reply message, or an awaitable of one."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        endpoint: str,
        handler: RequestHandler,
        service: str,
    ):
        _prepare_ipc(endpoint)
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.bind(endpoint)
        self.loop = loop
        self._handler = handler
        self._errors = WIRE_ERRORS.labels(service, "rpc")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader = _Reader(self.sock, loop, self._on_frames)

    def _on_frames(self, frames: list[bytes]) -> None:
        if len(frames) != 3:
            self._errors.inc()
            return
        ident, req_id, body = frames
        try:
            msg = wire.decode(body)
        except wire.WireError as exc:
            self._errors.inc()
            self._send(ident, req_id, wire.Reply(ok=False, detail=f"bad request: {exc}"[:500]))
            return
        try:
            result = self._handler(msg)
        except Exception as exc:
            log.exception("request handler failed")
            self._send(
                ident, req_id, wire.Reply(ok=False, detail=f"error: {type(exc).__name__}: {exc}"[:500])
            )
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish(ident, req_id, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif result is not None:
            self._send(ident, req_id, result)

    async def _finish(self, ident: bytes, req_id: bytes, aw: Awaitable[Any]) -> None:
        try:
            reply = await aw
        except Exception as exc:
            log.exception("request handler failed")
            reply = wire.Reply(ok=False, detail=f"error: {type(exc).__name__}: {exc}"[:500])
        if reply is not None:
            self._send(ident, req_id, reply)

    def _send(self, ident: bytes, req_id: bytes, reply: Any) -> None:
        try:
            self.sock.send_multipart([ident, req_id, wire.encode(reply)], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            pass  # the caller went away or is flooded; it times out on its side
        self.loop.call_soon(self._reader.drain)

    def close(self) -> None:
        self._reader.close()
        self.sock.close(0)


class RpcClient:
    """DEALER with pipelined requests, per-request timeouts and a liveness heartbeat."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        endpoint: str,
        service: str,
        peer: str,
        timeout_ms: int = 250,
        heartbeat_ms: int = 500,
        dead_after_ms: int = 2000,
    ):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)
        self.sock.connect(endpoint)
        self.loop = loop
        self.peer = peer
        self.timeout_ms = timeout_ms
        self._ids = itertools.count(1)
        self._pending: dict[bytes, tuple[asyncio.Future[Any], asyncio.TimerHandle, int]] = {}
        self._last_reply_ns = 0
        self._dead_after_ns = dead_after_ms * 1_000_000
        self._lat = RPC_LATENCY.labels(service, peer)
        self._ok = RPC_OUTCOMES.labels(service, peer, "ok")
        self._timeouts = RPC_OUTCOMES.labels(service, peer, "timeout")
        self._unavail = RPC_OUTCOMES.labels(service, peer, "unavailable")
        self._late = RPC_OUTCOMES.labels(service, peer, "late_reply")
        self._errors = WIRE_ERRORS.labels(service, f"rpc-{peer}")
        self._reader = _Reader(self.sock, loop, self._on_frames)
        self._hb_task = loop.create_task(self._heartbeat(heartbeat_ms / 1000)) if heartbeat_ms else None

    @property
    def alive(self) -> bool:
        return self._last_reply_ns > 0 and mono_ns() - self._last_reply_ns < self._dead_after_ns

    def request(self, msg: Any, timeout_ms: int | None = None) -> asyncio.Future[Any]:
        """Send now; the future resolves to the reply or fails with RpcTimeout/RpcUnavailable."""
        fut: asyncio.Future[Any] = self.loop.create_future()
        req_id = next(self._ids).to_bytes(8, "little")
        try:
            self.sock.send_multipart([req_id, wire.encode(msg)], zmq.NOBLOCK)
        except zmq.Again:
            self._unavail.inc()
            fut.set_exception(RpcUnavailable(f"{self.peer} is not connected"))
            return fut
        finally:
            self.loop.call_soon(self._reader.drain)
        t = (timeout_ms if timeout_ms is not None else self.timeout_ms) / 1000
        timer = self.loop.call_later(t, self._expire, req_id)
        self._pending[req_id] = (fut, timer, mono_ns())
        return fut

    def _expire(self, req_id: bytes) -> None:
        entry = self._pending.pop(req_id, None)
        if entry and not entry[0].done():
            self._timeouts.inc()
            entry[0].set_exception(RpcTimeout(f"{self.peer} did not answer in time"))

    def _on_frames(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self._errors.inc()
            return
        req_id, body = frames
        self._last_reply_ns = now = mono_ns()
        entry = self._pending.pop(req_id, None)
        if entry is None:
            self._late.inc()
            return
        fut, timer, sent = entry
        timer.cancel()
        self._lat.observe((now - sent) / 1e9)
        if fut.done():
            return
        try:
            fut.set_result(wire.decode(body))
            self._ok.inc()
        except wire.WireError as exc:
            self._errors.inc()
            fut.set_exception(RpcError(str(exc)))

    async def _heartbeat(self, interval: float) -> None:
        ping = wire.Control(cmd="ping")
        while True:
            fut = self.request(ping, timeout_ms=int(interval * 1000 * 2))
            try:
                await fut
            except RpcError:
                pass
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._hb_task:
            self._hb_task.cancel()
        for fut, timer, _ in self._pending.values():
            timer.cancel()
            if not fut.done():
                fut.set_exception(RpcUnavailable("client closed"))
        self._pending.clear()
        self._reader.close()
        self.sock.close(0)
