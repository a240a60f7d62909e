"""ZeroMQ on the event loop: PUB/SUB for events, ROUTER/DEALER request/reply with timeouts.

Sockets are plain (synchronous) pyzmq sockets driven by ``loop.add_reader`` on the socket's FD,
drained with NOBLOCK. That is ~15x faster than ``zmq.asyncio``'s await-per-message
(docs/architecture.md, "Measured baselines"). The ZeroMQ FD is edge-triggered: a drain reads at most ``DRAIN_BATCH``
messages, then yields to the loop and reschedules itself (``call_soon``) while more are waiting, so a
flooded socket never starves the rest of the loop; readiness is re-checked (``zmq_poll``, no wait)
after every send on a socket we also read from, because a send can consume the FD's edge. Everything
that queues is bounded (docs/architecture.md, "Bounded queues").

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
import random
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import zmq

from common import wire
from common.clock import mono_ns
from common.enums import ControlCmd
from common.metrics import (
    RPC_LATENCY,
    RPC_OUTCOMES,
    WIRE_ERRORS,
    ZMQ_CONFLATED,
    ZMQ_DROPS,
    ZMQ_GAPS,
    ZMQ_PUBLISHED,
    ZMQ_RECEIVED,
)
from common.private_files import ensure_private_dir

log = logging.getLogger(__name__)

BatchHandler = Callable[[bytes, list[Any]], None]
RequestHandler = Callable[[Any], "Any | Awaitable[Any]"]
SocketSetup = Callable[[zmq.Socket], None]  # e.g. security options, applied before bind/connect


# Messages one reader callback takes before it yields to the loop (measured: docs/architecture.md, "Bounded queues").
DRAIN_BATCH = 256
# A reply that meets its caller's full queue waits in that caller's outbox for at most this long
# (longer than any caller waits: zmq.request_timeout_ms <= 60 s) and behind at most OUTBOX_PER_PEER
# others; beyond either it is dropped and counted. Retries back off from MIN to MAX while no reply
# can go, so a caller that never reads costs one failed send per MAX, not a busy loop.
OUTBOX_MAX_AGE_NS = 60 * 1_000_000_000
OUTBOX_PER_PEER = 10_000  # as many as a client pipelines (RpcClient SNDHWM)
OUTBOX_RETRY_MIN_S = 0.001
OUTBOX_RETRY_MAX_S = 0.1
# Topics one subscriber numbers (gap counting); frames on further topics are still delivered.
MAX_TRACKED_TOPICS = 4_096
GAP_LOG_EVERY_NS = 5 * 1_000_000_000


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
        ensure_private_dir(Path(os.path.dirname(path) or "."))


def _bind_private(sock: zmq.Socket, endpoint: str) -> None:
    """Bind; an ipc socket file is made owner-only (its folder, the run folder, is too)."""
    _prepare_ipc(endpoint)
    sock.bind(endpoint)
    path = endpoint[len("ipc://") :] if endpoint.startswith("ipc://") else ""
    if path and os.path.exists(path):
        os.chmod(path, 0o600)


# A drain asks "is a message waiting?" with zmq_poll and reads each part's more-flag from its frame,
# and multipart sends pass int flags: pyzmq's getsockopt(EVENTS), recv_multipart (RCVMORE) and
# send_multipart (SNDMORE | flags) go through Python enums on every call, interpreter work on every
# hop, run with cold caches right after a wake-up
# (docs/architecture.md, "Room left").
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = _NOBLOCK | int(zmq.SNDMORE)
_zmq_poll = zmq.zmq_poll


def send_frames(sock: zmq.Socket, parts: list[bytes]) -> None:
    """One multipart message, NOBLOCK (pyzmq's send_multipart combines its flags as enums). As
    there, only the first part can meet a full queue (``zmq.Again``): the rest follow it."""
    send = sock.send
    for part in parts[:-1]:
        send(part, _NOBLOCK_MORE)
    send(parts[-1], _NOBLOCK)


def recv_frames(sock: zmq.Socket) -> list[bytes]:
    """One multipart message (NOBLOCK), each part's more-flag read from its frame."""
    frame = sock.recv(_NOBLOCK, copy=False)
    parts = [frame.bytes]
    while frame.more:
        frame = sock.recv(_NOBLOCK, copy=False)
        parts.append(frame.bytes)
    return parts


class _Reader:
    """Drains a socket from the loop's reader callback, ``batch`` messages per callback.

    ``paced_s``: no reader callback; the socket is drained every ``paced_s`` seconds instead (and
    whenever the owner calls ``drain``), so a busy stream costs one wake-up per period, not one per
    frame."""

    def __init__(
        self,
        sock: zmq.Socket,
        loop: asyncio.AbstractEventLoop,
        on_frames: Callable[[list[bytes]], None],
        on_pass_end: Callable[[], None] | None = None,
        batch: int = DRAIN_BATCH,
        paced_s: float | None = None,
    ):
        self.sock = sock
        self._poll_items = [(sock, _POLLIN)]
        self.loop = loop
        self._on_frames = on_frames
        self._on_pass_end = on_pass_end
        self._batch = batch
        self._kicked = False
        self._fd = sock.getsockopt(zmq.FD)
        self._paced_s = paced_s
        self._timer: asyncio.TimerHandle | None = None
        if paced_s is None:
            loop.add_reader(self._fd, self.drain)
        else:
            self._timer = loop.call_later(paced_s, self._paced_drain)
        self.kick()  # messages may already be waiting: the edge fired before us

    def _paced_drain(self) -> None:
        assert self._paced_s is not None
        self._timer = self.loop.call_later(self._paced_s, self._paced_drain)
        self.drain()

    def kick(self) -> None:
        """Drain soon (after a send, or when a pass stopped at its bound); at most one pending."""
        if not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._kicked_drain)

    def _kicked_drain(self) -> None:
        self._kicked = False
        self.drain()

    def drain(self) -> None:
        sock = self.sock
        on_frames = self._on_frames
        left = self._batch
        try:
            items = self._poll_items
            while left and not sock.closed and _zmq_poll(items, 0):
                left -= 1
                try:
                    frames = recv_frames(sock)
                except zmq.Again:
                    break
                try:
                    on_frames(frames)
                except Exception:
                    log.exception("handler failed")
        finally:
            if self._on_pass_end is not None:
                self._on_pass_end()
        if not left and not sock.closed:
            self.kick()  # more may be waiting, and the edge-triggered FD will not fire for them

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.loop.remove_reader(self._fd)
        except Exception:
            pass


class _TopicOut:
    """One published topic: its next sequence number and its family's counter (looked up once)."""

    __slots__ = ("published", "seq")

    def __init__(self, service: str, topic: bytes) -> None:
        self.seq = 0
        self.published = ZMQ_PUBLISHED.labels(service, topic_family(topic))


class Publisher:
    """PUB. Every frame is numbered per topic (``wire.encode_seq_batch``) so subscribers count gaps,
    and counted per topic family (``zt_zmq_published_total``)."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        service: str,
        sndhwm: int = 100_000,
        setup: SocketSetup | None = None,
    ):
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        if setup is not None:
            setup(self.sock)
        _bind_private(self.sock, endpoint)
        self.endpoint = endpoint
        self.epoch = random.getrandbits(32)  # a restarted publisher numbers from 0 again
        self._service = service
        self._topics: dict[bytes, _TopicOut] = {}
        self._drops = ZMQ_DROPS.labels(service, "pub")

    def publish(self, topic: bytes, msgs: list[Any]) -> None:
        n = len(msgs)
        out = self._topics.get(topic)
        if out is None:
            out = self._topics[topic] = _TopicOut(self._service, topic)
        seq = out.seq
        out.seq = seq + n
        try:
            self.sock.send(wire.encode_seq_batch(topic, self.epoch, seq, msgs), _NOBLOCK)
        except zmq.Again:
            self._drops.inc(n)
            return
        out.published.inc(n)

    def close(self) -> None:
        self.sock.close(0)


def topic_family(topic: bytes) -> str:
    """The metric label of a topic: its first two parts (``md.q.AAPL`` -> ``md.q``)."""
    return ".".join(topic.decode(errors="replace").split(".")[:2])


class _TopicTrack:
    """One topic's sequence and what became of its messages in this subscriber."""

    __slots__ = (
        "cfl_metric",
        "conflate",
        "conflated",
        "epoch",
        "gap_metric",
        "gaps",
        "next_seq",
        "received",
        "recv_metric",
    )

    def __init__(self, service: str, topic: bytes, conflate: bool) -> None:
        self.epoch = -1
        self.next_seq = 0
        self.conflate = conflate
        self.received = 0
        self.gaps = 0
        self.conflated = 0
        family = topic_family(topic)
        self.gap_metric = ZMQ_GAPS.labels(service, family)
        self.cfl_metric = ZMQ_CONFLATED.labels(service, family)
        self.recv_metric = ZMQ_RECEIVED.labels(service, family)


# a frame read in a drain pass: (track, topic, frame, body offset, message count)
_PassEntry = tuple[_TopicTrack, bytes, bytes, int, int]


class Subscriber:
    """Connects to one or more PUB endpoints; calls ``handler(topic, messages)`` per frame.

    Gaps: the publisher numbers each topic's messages; a jump is counted (``zt_zmq_gaps_total``, a
    rate-limited warning). Losses before the first frame seen on a topic (a late joiner) and across
    a publisher restart (new epoch) are not gaps. Conflation: on topics starting with a prefix in
    ``conflate`` (quotes, books: each message supersedes the previous one), a frame is skipped
    undecoded when a newer frame of the same topic waits in the same drain pass, i.e. only when this
    subscriber is behind; skipped messages are counted (``zt_zmq_conflated_total``)."""

    def __init__(
        self,
        ctx: zmq.Context,
        loop: asyncio.AbstractEventLoop,
        endpoints: list[str],
        topics: list[bytes],
        handler: BatchHandler,
        service: str,
        rcvhwm: int = 100_000,
        conflate: tuple[bytes, ...] = (),
        batch: int = DRAIN_BATCH,
        setup: SocketSetup | None = None,
        paced_s: float | None = None,
    ):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        if setup is not None:  # before connect: e.g. the publisher's CURVE key (one publisher per setup)
            setup(self.sock)
        for ep in endpoints:
            self.sock.connect(ep)
        self._handler = handler
        self._service = service
        self._conflate = conflate
        self._errors = WIRE_ERRORS.labels(service, "sub")
        self.topics: dict[bytes, _TopicTrack] = {}
        self.untracked = 0  # frames on topics beyond MAX_TRACKED_TOPICS
        self._untracked = _TopicTrack(service, b"untracked", False)
        # this pass's frames, in arrival order; None = superseded (or already handed over)
        self._pass: list[_PassEntry | None] = []
        self._latest: dict[bytes, int] = {}  # conflated topic -> its index in _pass
        self._next_gap_log_ns = 0
        self._gaps_unlogged = 0
        self._loop = loop
        self._holding = False  # a drain_for pass: the pass end hands nothing over
        self._rest_scheduled = False
        self._reader = _Reader(self.sock, loop, self._on_frames, self._deliver, batch, paced_s)

    def drain(self) -> None:
        """Take what is waiting now (a paced subscriber's owner does, right before it needs the data)."""
        self._reader.drain()

    def drain_for(self, topic: bytes) -> None:
        """Take what is waiting now; ``topic``'s frames are handed over before this returns, every
        other topic's right after the caller's callback (``call_soon``), in arrival order. For an
        owner that needs one topic's newest data at once and the rest only soon: it pays for
        decoding and handling that topic alone. Each topic's frames keep their order; frames of
        different topics may be handed over out of their arrival order."""
        self._holding = True
        try:
            self._reader.drain()
        finally:
            self._holding = False
        pending = self._pass
        for i, entry in enumerate(pending):
            if entry is not None and entry[1] == topic:
                pending[i] = None
                self._hand_over(entry)
        if pending and not self._rest_scheduled:
            self._rest_scheduled = True
            self._loop.call_soon(self._deliver_rest)

    def _deliver_rest(self) -> None:
        self._rest_scheduled = False
        self._deliver()

    def _on_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            try:
                topic, epoch, seq, count, offset = wire.frame_header(frame)
            except wire.WireError as exc:
                self._malformed(exc)
                continue
            track = self.topics.get(topic)
            if track is None:
                track = self._track(topic)
            if seq >= 0:
                if epoch == track.epoch and seq >= track.next_seq:
                    if seq > track.next_seq:
                        self._gap(topic, track, seq - track.next_seq)
                else:
                    track.epoch = epoch  # first frame, or the publisher restarted: a new baseline
                track.next_seq = seq + count
            if track.conflate:
                prev = self._latest.get(topic)
                if prev is not None:
                    old = self._pass[prev]
                    if old is not None:
                        self._pass[prev] = None
                        skipped = old[4] if old[4] >= 0 else 1
                        track.conflated += skipped
                        track.cfl_metric.inc(skipped)
                self._latest[topic] = len(self._pass)
            self._pass.append((track, topic, frame, offset, count))

    def _deliver(self) -> None:
        """End of a drain pass: decode and hand over what was not superseded, in arrival order."""
        if not self._pass or self._holding:
            return
        pending, self._pass = self._pass, []
        self._latest.clear()
        for entry in pending:
            if entry is not None:
                self._hand_over(entry)

    def _hand_over(self, entry: _PassEntry) -> None:
        track, topic, frame, offset, _ = entry
        try:
            msgs = wire.decode_body(frame, topic, offset)
        except wire.WireError as exc:
            self._malformed(exc)
            return
        track.received += len(msgs)
        try:
            self._handler(topic, msgs)
        except Exception:
            log.exception("handler failed", extra={"fields": {"topic": topic.decode(errors="replace")}})
        track.recv_metric.inc(len(msgs))  # after the handler: its sends come first

    def _track(self, topic: bytes) -> _TopicTrack:
        if len(self.topics) >= MAX_TRACKED_TOPICS:
            self.untracked += 1
            return self._untracked
        track = self.topics[topic] = _TopicTrack(self._service, topic, topic.startswith(self._conflate))
        return track

    def _gap(self, topic: bytes, track: _TopicTrack, missed: int) -> None:
        track.gaps += missed
        track.gap_metric.inc(missed)
        self._gaps_unlogged += missed
        now = mono_ns()
        if now >= self._next_gap_log_ns:
            self._next_gap_log_ns = now + GAP_LOG_EVERY_NS
            log.warning(
                "messages lost before reaching this subscriber",
                extra={"fields": {"topic": topic.decode(errors="replace"), "missed": self._gaps_unlogged}},
            )
            self._gaps_unlogged = 0

    def _malformed(self, exc: Exception) -> None:
        self._errors.inc()
        log.warning("dropped malformed frame", extra={"fields": {"error": str(exc)[:200]}})

    def stats(self) -> dict[str, dict[str, int]]:
        """Per topic: messages handed to the handler, lost before arrival (gaps), skipped (conflated)."""
        return {
            t.decode(errors="replace"): {"received": k.received, "gaps": k.gaps, "conflated": k.conflated}
            for t, k in self.topics.items()
        }

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
        hwm: int = 100_000,
        setup: SocketSetup | None = None,
    ):
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        if setup is not None:
            setup(self.sock)
        _bind_private(self.sock, endpoint)
        self.loop = loop
        self._handler = handler
        self._errors = WIRE_ERRORS.labels(service, "rpc")
        self._unsent = ZMQ_DROPS.labels(service, "rpc")
        self._tasks: set[asyncio.Task[Any]] = set()
        # per caller whose queue was full: (queued mono ns, frames), oldest first
        self._outbox: dict[bytes, deque[tuple[int, list[bytes]]]] = {}
        self._retry_s = OUTBOX_RETRY_MIN_S
        self._flush_timer: asyncio.TimerHandle | None = None
        self._drop_logs = 0
        self._next_drop_log_ns = 0
        self._reader = _Reader(self.sock, loop, self._on_frames)

    def _on_frames(self, frames: list[bytes]) -> None:
        if len(frames) != 3:
            # [identity, request-id, body] is the only shape; answer what can be answered
            self._errors.inc()
            if len(frames) >= 2:
                req_id = frames[1] if len(frames) > 2 else b""
                detail = f"bad request: expected 2 frames [request-id, body], got {len(frames) - 1}"
                self._send(frames[0], req_id, wire.Reply(ok=False, detail=detail))
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
        else:
            self._send(ident, req_id, result)

    async def _finish(self, ident: bytes, req_id: bytes, aw: Awaitable[Any]) -> None:
        try:
            reply = await aw
        except Exception as exc:
            log.exception("request handler failed")
            reply = wire.Reply(ok=False, detail=f"error: {type(exc).__name__}: {exc}"[:500])
        self._send(ident, req_id, reply)

    def _send(self, ident: bytes, req_id: bytes, reply: Any) -> None:
        """Answer every request, so a caller never waits for its timeout because of us."""
        if self.sock.closed:
            return
        try:
            if not isinstance(reply, wire.ALL_TYPES):
                raise TypeError(f"{type(reply).__name__} is not a wire message")
            body = wire.encode(reply)
        except Exception as exc:  # None, not a wire message, or an int beyond 64 bits
            log.error(
                "request handler returned an unsendable reply", extra={"fields": {"reply": repr(reply)[:200]}}
            )
            body = wire.encode(
                wire.Reply(ok=False, detail=f"error: reply not encodable: {type(exc).__name__}: {exc}"[:500])
            )
        frames = [ident, req_id, body]
        waiting = self._outbox.get(ident)
        if waiting is None:
            if self._try_send(frames):
                return
            # The caller's queue is full (a burst of pipelined requests): dropping the reply would
            # turn a decision that was made (an order sent on) into a timeout on the caller's side.
            waiting = self._outbox[ident] = deque()
        elif len(waiting) >= OUTBOX_PER_PEER:
            waiting.popleft()  # the oldest: its caller has most likely given up on it
            self._dropped("caller's outbox full")
        waiting.append((mono_ns(), frames))
        self._schedule_flush()

    def _try_send(self, frames: list[bytes]) -> bool:
        """False when the caller's queue is full (retry later); True when sent or undeliverable."""
        try:
            send_frames(self.sock, frames)
        except zmq.Again:
            return False
        except zmq.ZMQError:
            self._unsent.inc()  # EHOSTUNREACH (ROUTER_MANDATORY): the caller is gone
        finally:
            self._reader.kick()
        return True

    def _dropped(self, why: str, n: int = 1) -> None:
        self._unsent.inc(n)
        self._drop_logs += n
        now = mono_ns()
        if now >= self._next_drop_log_ns:
            self._next_drop_log_ns = now + GAP_LOG_EVERY_NS
            log.warning("replies dropped", extra={"fields": {"why": why, "count": self._drop_logs}})
            self._drop_logs = 0

    def _schedule_flush(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = self.loop.call_later(self._retry_s, self._flush)

    def _flush(self) -> None:
        """Send what each waiting caller's queue takes now, stopping at that caller's first refusal;
        back off while nobody takes anything."""
        self._flush_timer = None
        if self.sock.closed:
            return
        oldest_ok = mono_ns() - OUTBOX_MAX_AGE_NS
        progressed = False
        for ident in list(self._outbox):
            waiting = self._outbox[ident]
            while waiting:
                queued, frames = waiting[0]
                if queued < oldest_ok:
                    waiting.popleft()
                    self._dropped("caller did not read its replies for 60 s")
                elif self._try_send(frames):
                    waiting.popleft()
                    progressed = True
                else:
                    break
            if not waiting:
                del self._outbox[ident]
        if not self._outbox:
            self._retry_s = OUTBOX_RETRY_MIN_S
            return
        self._retry_s = OUTBOX_RETRY_MIN_S if progressed else min(self._retry_s * 2, OUTBOX_RETRY_MAX_S)
        self._schedule_flush()

    @property
    def outbox_len(self) -> int:
        return sum(len(q) for q in self._outbox.values())

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._outbox.clear()
        for task in list(self._tasks):
            task.cancel()  # answers still being computed go nowhere now
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
        rcvhwm: int = 100_000,
        setup: SocketSetup | None = None,
    ):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)  # beyond this a request fails at once (RpcUnavailable)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        if setup is not None:
            setup(self.sock)
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
        try:
            body = wire.encode(msg)
        except Exception as exc:  # a caller's bug (e.g. a float or a 65-bit int) fails its own request only
            self._errors.inc()
            fut.set_exception(RpcError(f"request not encodable: {type(exc).__name__}: {exc}"[:500]))
            return fut
        if self.sock.closed:
            self._unavail.inc()
            fut.set_exception(RpcUnavailable(f"client for {self.peer} is closed"))
            return fut
        req_id = next(self._ids).to_bytes(8, "little")
        try:
            send_frames(self.sock, [req_id, body])
        except zmq.ZMQError as exc:
            self._unavail.inc()
            why = "is not connected or its queue is full" if isinstance(exc, zmq.Again) else str(exc)
            fut.set_exception(RpcUnavailable(f"{self.peer} {why}"))
            return fut
        finally:
            self._reader.kick()
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
        ping = wire.Control(cmd=ControlCmd.PING)
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
