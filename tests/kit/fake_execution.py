"""An in-process stand-in for execution on real sockets: a sequenced event log answered by Replay,
a positions snapshot with ``as_of_seq`` and its book, order acks that refuse a reused client_order_id, trips
kept and answered as confirmed, and heartbeats whose pid a test can change to play a restart. Any answer
can be held back on a gate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import uvloop

from common import topics, wire
from common.bounds import message_error
from common.clock import wall_ns
from common.config import Settings
from common.order_events import TERMINAL_STATUSES
from common.positions import PositionBook
from common.service import Service
from tests.kit.waiting import until

if TYPE_CHECKING:
    from services.risk.service import RiskService


class FakeExecution(Service):
    name = "execution"
    CONTROL_READ_ONLY = frozenset({"positions"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.log: list[wire.OrderUpdate | wire.Fill] = []
        self.positions: list[wire.Position] = []
        self.as_of: int | None = None  # None: len(log); a test may set any value, or a bad reply
        self.bad_positions_reply: wire.Reply | None = None
        self.pid = 1000
        self.book = ""  # the incarnation its heartbeats and positions snapshots name
        self.boot = 0
        self.orders: dict[str, wire.OrderRequest] = {}
        self.refused: list[str] = []
        self.trips: list[wire.Trip] = []
        self.positions_requests = 0
        # a test sets a gate (an unset Event) to hold that kind of answer back until it is set
        self.replay_gate: asyncio.Event | None = None
        self.positions_gates: list[asyncio.Event | None] = []

    def record(self, ev: wire.OrderUpdate | wire.Fill, publish: bool = True) -> None:
        ev = msgspec.structs.replace(ev, seq=len(self.log) + 1)
        self.log.append(ev)
        if publish:
            prefix = topics.EX_FILL if isinstance(ev, wire.Fill) else topics.EX_UPDATE
            self.pub.publish(topics.sym(prefix, ev.symbol), [ev])

    def last_event_seq(self) -> int:
        return len(self.log)

    async def _heartbeats(self) -> None:
        seq = 0
        while True:
            seq += 1
            hb = wire.Heartbeat(
                service=self.name, pid=self.pid, seq=seq, state="ok",
                last_event_seq=self.last_event_seq(), ts_ns=wall_ns(), incarnation=self.book, boot=self.boot,
            )  # fmt: skip
            self.pub.publish(topics.heartbeat(self.name), [hb])
            await asyncio.sleep(self.settings.zmq.heartbeat_interval_ms / 1000)

    def handle(self, msg: Any) -> Any:
        if isinstance(msg, wire.Replay):
            return self._gated(self.replay_gate, lambda: self._replay(msg.after_seq))
        if isinstance(msg, wire.OrderRequest):
            coid = msg.client_order_id
            if coid in self.orders:
                self.refused.append(coid)
                return wire.OrderAck(
                    client_order_id=coid, accepted=False, detail="duplicate client_order_id", ts_ns=wall_ns()
                )
            self.orders[coid] = msg
            return wire.OrderAck(client_order_id=coid, accepted=True, detail="queued", ts_ns=wall_ns())
        if isinstance(msg, wire.Trip):
            self.trips.append(msg)
            return wire.TripReport(
                state=msg.state, seq=msg.seq, ok=True, open_orders=0, positions=0, canceled=0, closed=0,
                confirm_us=1, detail="confirmed",
            )  # fmt: skip
        return super().handle(msg)

    def control(self, cmd: wire.Control) -> Any:
        if cmd.cmd != "positions":
            return None
        n = self.positions_requests
        gate = self.positions_gates[n] if n < len(self.positions_gates) else None
        self.positions_requests += 1
        # the snapshot is taken when the request arrives, as execution does
        as_of = self.as_of if self.as_of is not None else len(self.log)
        reply = self.bad_positions_reply or self.snapshot(as_of)
        return self._gated(gate, lambda: reply)

    def snapshot(self, as_of: int) -> wire.PositionsSnapshot:
        """Its state as of ``as_of`` as execution gives it: the account's positions as set, each
        strategy's from its fills, and the last update of every open order."""
        last: dict[str, wire.OrderUpdate] = {}
        books: dict[str, PositionBook] = {}
        now = wall_ns()
        for ev in self.log[:as_of]:
            if message_error(ev, now):  # an out-of-range event a test logged: execution never books one
                continue
            if isinstance(ev, wire.OrderUpdate):
                last[ev.client_order_id] = ev
            else:
                book = books.setdefault(ev.strategy, PositionBook())
                try:
                    book.apply_fill(ev.symbol, ev.side, ev.qty, ev.px)
                except ValueError:  # in range, yet no fill a book takes (a zero quantity)
                    continue
        return wire.PositionsSnapshot(
            as_of_seq=as_of, positions=list(self.positions), book=self.book,
            strategies=[wire.StrategyPositions(strategy=s, positions=[p.to_wire(1) for p in b.all()])
                        for s, b in books.items()],
            open_orders=[u for u in last.values() if u.status not in TERMINAL_STATUSES],
        )  # fmt: skip

    def _replay(self, after_seq: int) -> wire.Reply:
        return wire.Reply(ok=True, detail="", data=wire.encode_list(self.log[after_seq:]))

    @staticmethod
    def _gated(gate: asyncio.Event | None, answer: Any) -> Any:
        if gate is None:
            return answer()

        async def later() -> Any:
            await gate.wait()
            return answer()

        return later()


def run_risk(
    settings: Settings,
    body: Callable[[FakeExecution, RiskService], Awaitable[None]],
    *,
    prepare: Callable[[FakeExecution], None] | None = None,
    until_positions: bool = True,
) -> None:
    """A risk life beside an execution stand-in (set up by ``prepare`` before either starts): the
    real risk service on real sockets and uvloop, ``body`` run once risk has loaded execution's
    positions (or, ``until_positions=False``, once it serves)."""
    from services.risk.service import RiskService  # numba: only for the tests that run risk

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ex = FakeExecution(settings)
        if prepare is not None:
            prepare(ex)
        ex_task = loop.create_task(ex.run_forever())
        svc = RiskService(settings)
        running = loop.create_task(svc.run_forever())
        try:
            if until_positions:
                await until(lambda: svc.positions_loaded, "positions loaded")
            else:
                await svc.ready.wait()
            await body(ex, svc)
        finally:
            for s in (svc, ex):
                s.request_stop()
            await asyncio.gather(running, ex_task)

    uvloop.run(scenario())
