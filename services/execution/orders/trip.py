"""The trip, as execution runs it: enforce the state risk sends, and for HALTED (or a flatten) empty
the venue — cancel every open order, close every position when asked, wait for POSTs already written
to be answered, read the venue back — and keep retrying in the background until the venue confirms.
A loosening (reset) is refused while the venue holds open orders zerotick did not place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from common import wire
from common.clock import mono_ns, wall_ns
from common.enums import TradingState
from common.log import kv
from common.metrics import TRIP_CONFIRM, TRIP_UNCONFIRMED
from services.execution.orders.gate import TradingGate
from services.execution.orders.placement import OrderPlacer
from services.execution.orders.tracker import OrderTracker
from services.execution.venue.rest_client import AlpacaRest, RestError
from services.execution.venue.venue_kill import KillOutcome, empty_venue

log = logging.getLogger(__name__)

TRIP_DEFAULT_S = 10.0  # a trip without a deadline waits this long for the venue before replying
TRIP_RETRY_LOG_S = 5.0

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class TripRunner:
    def __init__(
        self,
        rest: AlpacaRest,
        gate: TradingGate,
        tracker: OrderTracker,
        placer: OrderPlacer,
        client_order_id_prefix: str,
        spawn: Spawn,
    ) -> None:
        self._rest = rest
        self._gate = gate
        self._tracker = tracker
        self._placer = placer
        self._prefix = client_order_id_prefix
        self._spawn = spawn
        self.pending = False  # a trip has not been confirmed by the venue yet
        self.last: dict[str, Any] = {}
        self._trip_task: asyncio.Task[Any] | None = None

    async def run(self, trip: wire.Trip) -> wire.TripReport:
        arrived = mono_ns()
        if trip.deadline_ns and wall_ns() > trip.deadline_ns:
            return self._trip_report(trip, False, None, arrived, "deadline passed before the trip arrived")
        if self._gate.state is not None and trip.state.code < self._gate.state.code:
            return await self._loosen(trip, arrived)
        self._gate.adopt(trip.state, trip.seq, "risk_trip")
        if trip.state is not TradingState.HALTED and not trip.flatten:
            return self._trip_report(trip, True, None, arrived, f"enforcing {trip.state.value}")
        if self._trip_task is not None:
            self._trip_task.cancel()
        self.pending = True
        TRIP_UNCONFIRMED.set(1)
        wait_s = TRIP_DEFAULT_S if not trip.deadline_ns else max(0.0, (trip.deadline_ns - wall_ns()) / 1e9)
        outcome = await empty_venue(
            self._rest, trip.flatten, arrived + int(wait_s * 1e9), self._posts_settled
        )
        self._record_trip(trip, outcome, arrived)
        if not outcome.confirmed:
            self._trip_task = self._spawn(self._keep_emptying(trip, arrived))
        return self._trip_report(trip, outcome.confirmed, outcome, arrived, outcome.detail)

    async def _posts_settled(self) -> None:
        """Before reading the venue back: a POST written before the gate closed may still be on its
        way in; its answer tells us it landed (so the next round cancels it)."""
        for _ in range(200):
            if self._placer.posts_in_flight == 0:
                return
            await asyncio.sleep(0.005)

    async def _keep_emptying(self, trip: wire.Trip, arrived: int) -> None:
        """The venue did not confirm in time: keep at it, and keep saying so."""
        while self._gate.state in (TradingState.HALTED, trip.state):
            outcome = await empty_venue(
                self._rest, trip.flatten, mono_ns() + int(TRIP_RETRY_LOG_S * 1e9), self._posts_settled
            )
            self._record_trip(trip, outcome, arrived)
            if outcome.confirmed:
                return
            log.error("kill switch: venue still not empty, retrying", extra=kv(detail=outcome.detail))

    def _record_trip(self, trip: wire.Trip, outcome: KillOutcome, arrived: int) -> None:
        self.pending = not outcome.confirmed
        TRIP_UNCONFIRMED.set(0 if outcome.confirmed else 1)
        if outcome.confirmed:
            TRIP_CONFIRM.observe((outcome.confirm_ns - arrived) / 1e9)
        self.last = {"seq": trip.seq, "flatten": trip.flatten, **outcome.report()}
        log.warning(
            "kill switch: venue emptied" if outcome.confirmed else "kill switch: venue not empty yet",
            extra=kv(**self.last),
        )

    async def _loosen(self, trip: wire.Trip, arrived: int) -> wire.TripReport:
        """A reset (or HALTED -> REDUCE_ONLY): refused while the venue holds open orders zerotick did
        not place (not ours by client_order_id prefix, or not tracked), since nobody would manage them."""
        try:
            docs = await self._rest.list_orders("open", priority=True)
        except RestError as exc:
            return self._trip_report(
                trip, False, None, arrived, f"cannot list the venue's open orders: {exc}"
            )
        ours = f"{self._prefix}-"
        unknown = [
            coid
            for d in docs
            if not (
                (coid := str(d.get("client_order_id", ""))).startswith(ours) and self._tracker.is_known(coid)
            )
        ]
        if unknown:
            detail = (
                f"the venue holds {len(unknown)} open orders zerotick does not know "
                f"(client_order_id {', '.join(unknown[:5])}); cancel them or run `zerotick kill` first"
            )
            return self._trip_report(trip, False, None, arrived, detail)
        if self._trip_task is not None:
            self._trip_task.cancel()
            self._trip_task = None
        self.pending = False
        TRIP_UNCONFIRMED.set(0)
        self._gate.adopt(trip.state, trip.seq, "risk_reset")
        return self._trip_report(trip, True, None, arrived, f"{trip.state.value}: no unknown open orders")

    def _trip_report(
        self, trip: wire.Trip, ok: bool, outcome: KillOutcome | None, arrived: int, detail: str
    ) -> wire.TripReport:
        return wire.TripReport(
            state=trip.state,
            seq=trip.seq,
            ok=ok,
            open_orders=outcome.open_orders if outcome else -1,
            positions=outcome.positions if outcome else -1,
            canceled=outcome.canceled if outcome else 0,
            closed=outcome.closed if outcome else 0,
            confirm_us=(outcome.confirm_ns - arrived) // 1000 if outcome and outcome.confirmed else 0,
            detail=detail,
        )
