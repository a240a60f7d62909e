"""Receiving execution's order events (OrderUpdate, Fill) without losing any: the ZeroMQ Guide's
Clone pattern, a snapshot that carries its seq, then every event after it.

Execution numbers every order event with a gap-free ``seq``, keeps them for replay and answers
``Control(positions)`` with its state as of a seq (``PositionsSnapshot``: the account's positions,
each strategy's, and the last update of every open order). PUB/SUB can drop (slow joiner,
high-water mark, a subscriber restart), so a receiver:
  * on start asks for that snapshot (retrying with backoff until a usable one comes), hands it to its
    owner (``on_snapshot``), then delivers the events after its seq: so a start costs what happened
    since the snapshot, not the whole history;
  * delivers events strictly in seq order, each exactly once; on a gap, or when a heartbeat announces
    a newer seq than it has, asks execution for ``Replay(after_seq)`` over request/reply;
  * tells a restart of execution from a reconnect by its heartbeat: ``incarnation`` names the
    sequence (the same across restarts: execution continues it from its journal), ``boot`` counts
    starts. A new incarnation (or a seq going backwards) means the sequence started over; so does a
    restart for a receiver made with ``reset_on_restart`` (risk: the pending quantity of orders the
    dead process accepted but never journaled must go). Either way it stops delivering, tells its
    owner (``on_reset``), and starts over from a new snapshot; until then ``anchored`` is False;
  * when execution no longer holds the events it missed (evicted from its bounded log), skips ahead
    and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from common import topics, wire
from common.backoff import Backoff
from common.bounds import MAX_NANOS, InboundFilter, message_error
from common.clock import wall_ns
from common.enums import ControlCmd
from common.ratelog import ConditionLog
from common.zmq_io import RpcClient, RpcError

log = logging.getLogger(__name__)

OrderEvent = wire.OrderUpdate | wire.Fill

# Execution answers a Replay with at most this many events; a full page means there may be more.
REPLAY_PAGE = 10_000
RETRY_S = 0.5
SNAPSHOT_RETRY_MIN_S = 0.05  # the first wait: at start-up execution is often a moment from ready
SNAPSHOT_RETRY_S = 1.0  # the longest

# Alpaca order statuses after which an order can no longer fill, plus execution's own "submit_failed".
TERMINAL_STATUSES = frozenset(
    {"filled", "canceled", "expired", "rejected", "replaced", "submit_failed", "venue_lost"}
)


class OrderEventReceiver:
    def __init__(
        self,
        service: Any,
        on_event: Callable[[OrderEvent], None],
        on_snapshot: Callable[[wire.PositionsSnapshot], None],
        *,
        on_reset: Callable[[], None] | None = None,
        reset_on_restart: bool = False,
        replay_timeout_ms: int = 2000,
        snapshot_timeout_ms: int = 2000,
    ):
        """``service`` is a common.service.Service; subscribes to execution's PUB itself."""
        self._on_event = on_event
        self._on_snapshot = on_snapshot
        self._on_reset = on_reset
        self._reset_on_restart = reset_on_restart
        self._peer_incarnation = ""
        self._peer_boot = 0
        self.restarts = 0  # execution restarts seen (boot changed)
        self._replay_log = ConditionLog(log)  # a replay retried every RETRY_S: logged on change
        self._snapshot_log = ConditionLog(log)
        self.resets = 0
        self._epoch = 0  # bumped on every reset: an answer from before it is of the old sequence
        self.anchored = False  # a snapshot is applied: events after its seq are delivered
        self.snapshot_seq = 0  # the seq the applied snapshot is as of
        self.snapshots = 0
        self.bad_replies = 0
        self.skipped = 0
        self.last_seq = 0
        self._buffer: dict[int, OrderEvent] = {}
        self._client: RpcClient = service.client("execution", timeout_ms=replay_timeout_ms)
        self._snapshot_client: RpcClient = service.client("execution", timeout_ms=snapshot_timeout_ms)
        self._replaying = False
        self._want_replay = False
        self._loop = service.loop
        self._tasks = service.tasks
        self._inbound: InboundFilter = service.inbound
        self.handler_errors = 0
        self.gaps_filled = 0
        service.subscribe("execution", [topics.EX, topics.heartbeat("execution")], self._on_batch)
        self._fetch_snapshot()

    def _on_batch(self, topic: bytes, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, wire.OrderUpdate | wire.Fill):
                self._accept(m)
            elif isinstance(m, wire.Heartbeat):
                self._on_heartbeat(m)
        if self._buffer:
            self._request_replay()

    def _on_heartbeat(self, hb: wire.Heartbeat) -> None:
        # incarnation = "<journal id>.<book epoch>": a new journal is a new sequence; a new epoch is
        # the same sequence with the positions book re-based on the venue (owners re-snapshot)
        old_seq_id, _, old_epoch = self._peer_incarnation.partition(".")
        seq_id, _, epoch = hb.incarnation.partition(".")
        new_sequence = bool(self._peer_incarnation) and seq_id != old_seq_id
        new_sequence = new_sequence or hb.last_event_seq < self.last_seq
        rebased = bool(self._peer_incarnation) and not new_sequence and epoch != old_epoch
        restarted = (bool(self._peer_boot) and hb.boot != self._peer_boot) or rebased
        self._peer_incarnation, self._peer_boot = hb.incarnation, hb.boot
        if restarted:
            self.restarts += 1
            log.warning(
                "execution restarted",
                extra={"fields": {"boot": hb.boot, "incarnation": hb.incarnation, "seq": hb.last_event_seq}},
            )
        if new_sequence or (restarted and self._reset_on_restart):
            log.warning(
                "order events start over from a new snapshot",
                extra={"fields": {"incarnation": hb.incarnation, "new_sequence": new_sequence}},
            )
            self.resets += 1
            self._epoch += 1
            self.anchored = False
            self.last_seq = 0
            self._buffer.clear()
            if self._on_reset is not None:
                self._on_reset()
            self._fetch_snapshot()
        elif hb.last_event_seq > self.last_seq and not self._buffer:
            self._request_replay()

    # ---- the snapshot -------------------------------------------------------------------------

    def _fetch_snapshot(self) -> None:
        self._tasks.run_once("order_state_snapshot", self._snapshot(self._epoch))

    async def _snapshot(self, epoch: int) -> None:
        """Ask until a usable snapshot of the current sequence comes; apply it, then replay after it."""
        backoff = Backoff(SNAPSHOT_RETRY_MIN_S, SNAPSHOT_RETRY_S)
        while epoch == self._epoch:
            try:
                reply = await self._snapshot_client.request(wire.Control(cmd=ControlCmd.POSITIONS))
            except RpcError as exc:
                self._snapshot_log.report(
                    "unreachable", "waiting for execution's snapshot", logging.INFO, error=str(exc)[:300]
                )
                await asyncio.sleep(backoff.next_delay())
                continue
            if epoch != self._epoch:
                return  # execution restarted while we waited: this snapshot is of the old process
            why = snapshot_error(reply)
            if why:
                # typically "not ready" (execution waits for the venue) and the same every second:
                # logged when the answer changes, then as a reminder with the count of repeats
                self._snapshot_log.report(why[:200], "execution's snapshot not usable", error=why[:300])
                await asyncio.sleep(backoff.next_delay())
                continue
            assert isinstance(reply, wire.PositionsSnapshot)
            try:
                self._on_snapshot(reply)
            except Exception as exc:
                self.handler_errors += 1
                log.exception("order state snapshot handler failed, will retry")
                self._snapshot_log.report("handler", "execution's snapshot not applied", error=str(exc)[:300])
                await asyncio.sleep(backoff.next_delay())
                continue
            self._snapshot_log.clear()
            self.snapshots += 1
            self.snapshot_seq = self.last_seq = reply.as_of_seq
            self._buffer = {k: v for k, v in self._buffer.items() if k > reply.as_of_seq}
            self.anchored = True
            self._request_replay()
            return

    def _accept(self, ev: OrderEvent) -> None:
        if not self.anchored:
            return  # before the snapshot: the replay after it brings this event
        if ev.seq <= self.last_seq:
            return  # duplicate (replay overlapping live delivery)
        if ev.seq == self.last_seq + 1:
            self.last_seq = ev.seq
            self._deliver(ev)
            while (nxt := self._buffer.pop(self.last_seq + 1, None)) is not None:
                self.last_seq = nxt.seq
                self._deliver(nxt)
        else:
            self._buffer[ev.seq] = ev

    def _deliver(self, ev: OrderEvent) -> None:
        """Hand one event on; an out-of-range one (it came by replay) is consumed, counted, not
        delivered, and an owner's exception is logged and counted: the sequence goes on either way."""
        reason = message_error(ev, wall_ns())
        if reason:
            self._inbound.reject(topics.EX, ev, reason)
            return
        try:
            self._on_event(ev)
        except Exception:
            self.handler_errors += 1
            self._inbound.reject(topics.EX, ev, "handler_error")
            log.exception("order event handler failed", extra={"fields": {"seq": ev.seq}})

    def _request_replay(self) -> None:
        if not self.anchored:
            return
        if self._replaying:
            self._want_replay = True
            return
        self._replaying = True
        self._tasks.run_once("order_event_replay", self._replay())

    async def _replay(self) -> None:
        try:
            while self.anchored:
                self._want_replay = False
                before, epoch = self.last_seq, self._epoch
                try:
                    reply = await self._client.request(wire.Replay(after_seq=self.last_seq))
                except RpcError as exc:
                    self._replay_log.report(
                        "rpc", "order event replay failed, will retry", error=str(exc)[:300]
                    )
                    await asyncio.sleep(RETRY_S)
                    self._want_replay = True
                    continue
                if epoch != self._epoch:
                    self._want_replay = True  # execution restarted meanwhile: ask the new one from 0
                    continue
                events = self._events_in(reply)
                if events is None:
                    await asyncio.sleep(RETRY_S)
                    self._want_replay = True
                    continue
                if events and events[0].seq > self.last_seq + 1:
                    log.error(
                        "order events lost: execution no longer holds them",
                        extra={"fields": {"from": self.last_seq + 1, "to": events[0].seq - 1}},
                    )
                    self.skipped += events[0].seq - 1 - self.last_seq
                    self.last_seq = events[0].seq - 1
                    self._buffer = {k: v for k, v in self._buffer.items() if k > self.last_seq}
                self._replay_log.clear("order event replay works again")
                for ev in events:
                    self._accept(ev)
                if self.last_seq > before:
                    self.gaps_filled += 1
                    if len(events) >= REPLAY_PAGE:
                        self._want_replay = True  # a full page: there may be more
                if not self._want_replay:
                    return
        finally:
            self._replaying = False

    def _events_in(self, reply: Any) -> list[OrderEvent] | None:
        """The events of a Replay answer in seq order, or None when it is not a usable answer."""
        detail = ""
        if isinstance(reply, wire.Reply) and reply.ok:
            try:
                events = [
                    e
                    for e in wire.decode_list(reply.data)
                    if isinstance(e, wire.OrderUpdate | wire.Fill) and 0 < e.seq <= MAX_NANOS
                ]
            except wire.WireError as exc:
                detail = str(exc)
            else:
                events.sort(key=lambda e: e.seq)
                return events
        else:
            detail = reply.detail if isinstance(reply, wire.Reply) else type(reply).__name__
        self.bad_replies += 1
        self._replay_log.report(
            f"bad:{detail[:80]}", "execution's replay answer not usable, will retry", error=detail[:300]
        )
        return None


def snapshot_error(reply: Any) -> str:
    """Why execution's ``Control(positions)`` answer cannot anchor a receiver ("" when it can).

    Without ``as_of_seq`` the snapshot cannot be lined up with the events: applying it would count
    fills twice or miss them, so it is refused like any malformed reply."""
    if isinstance(reply, wire.Reply):
        return f"execution refused: {reply.detail}"
    if not isinstance(reply, wire.PositionsSnapshot):
        return f"expected a PositionsSnapshot, got {type(reply).__name__}"
    if not 0 <= reply.as_of_seq <= MAX_NANOS:
        return f"not a sequenced snapshot (as_of_seq {reply.as_of_seq})"
    now = wall_ns()
    parts: list[Any] = [*reply.positions, *reply.open_orders]
    for book in reply.strategies:
        parts += book.positions
    for part in parts:
        reason = message_error(part, now)
        if reason:
            return f"{reason} out of range in {type(part).__name__} {part!r}"[:300]
    return ""
