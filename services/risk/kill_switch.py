"""Risk's kill switch: the operator's ``SetTradingState`` command and the trips it (and the automatic
triggers) cause. Tightening takes effect at once through the owner of the trading state and execution
is told to enforce it; a HALTED trip cancels, flattens and confirms at the venue, and risk empties the
venue itself when execution does not answer. Loosening first asks execution whether the venue holds
orders zerotick did not place."""

from __future__ import annotations

import logging

import msgspec

from common import wire
from common.auth import ControlGuard
from common.clock import mono_ns, wall_ns
from common.config import Settings
from common.enums import TradingState, TripSource
from common.log import kv
from common.metrics import TRIPS
from common.zmq_io import RpcClient, RpcError
from services.risk.trading_state import StatePersistError, TradingStateOwner, stricter

log = logging.getLogger(__name__)

SET_TRADING_STATE = "set_trading_state"  # the typed command's name for the token policy and metrics
TRIP_WAIT_MS = 3_000  # a trip without a deadline: how long execution gets before risk acts itself


class KillSwitch:
    def __init__(self, owner: TradingStateOwner, guard: ControlGuard, settings: Settings) -> None:
        self._owner = owner
        self._guard = guard
        self._settings = settings
        self.execution: RpcClient | None = None  # execution's orders socket, set once connected

    async def command(self, cmd: wire.SetTradingState) -> wire.TripReport | wire.Reply:
        """The operator's command (CLI or any authenticated tool). Tightening takes effect here at
        once and execution is told to enforce it (a HALTED trip cancels, flattens and confirms at the
        venue before the reply); loosening first asks execution whether the venue holds open orders
        nobody knows, and is refused if it does."""
        arrived = mono_ns()
        refusal = self._guard.refusal_for(SET_TRADING_STATE, cmd.token, cmd.deadline_ns, wall_ns())
        if refusal is not None:
            return refusal
        source = TripSource.CONTROL if not cmd.who.startswith("cli") else TripSource.CLI
        who = cmd.who or "control"
        current = self._owner.state
        if cmd.state is current and cmd.state is TradingState.ACTIVE:
            return self._report(cmd.state, True, "already active")
        if stricter(current, cmd.state):  # loosening: reset or HALTED -> REDUCE_ONLY
            report = await self.tell_execution(self._owner.record.seq + 1, cmd.state, False, cmd.deadline_ns)
            if not report.ok:
                self._owner.audit_safely("reset_refused", None, reason=cmd.reason, detail=report.detail)
                return wire.Reply(ok=False, detail=f"refused: {report.detail}")
            try:
                self._owner.change(cmd.state, source, who, cmd.reason)
            except StatePersistError as exc:
                return wire.Reply(ok=False, detail=str(exc))
            return msgspec.structs.replace(report, seq=self._owner.record.seq)
        record = self._owner.change(cmd.state, source, who, cmd.reason, flatten=cmd.flatten)
        if cmd.state is TradingState.HALTED:
            TRIPS.labels(source.value).inc()
        report = await self.tell_execution(record.seq, cmd.state, cmd.flatten, cmd.deadline_ns)
        took_us = (mono_ns() - arrived) // 1000
        if report.ok and cmd.state is TradingState.HALTED:
            # measured from the command's arrival here, not from execution's
            report = msgspec.structs.replace(report, confirm_us=took_us)
        self._owner.audit_safely(
            "trip_result" if cmd.state is TradingState.HALTED else "enforced",
            None,
            seq=record.seq,
            ok=report.ok,
            canceled=report.canceled,
            closed=report.closed,
            open_orders=report.open_orders,
            positions=report.positions,
            venue_confirm_us=report.confirm_us,
            took_us=took_us,
            detail=report.detail,
        )
        return report

    async def tell_execution(
        self, seq: int, state: TradingState, flatten: bool, deadline_ns: int
    ) -> wire.TripReport:
        """Have execution enforce ``state``. When a trip (HALTED, or a flatten) finds execution dead or
        hung, risk empties the venue itself over REST, so no failure of execution leaves orders
        working; execution, when it comes back, reads the halt from the state file."""
        if self.execution is None:
            return self._report(state, False, "risk has not connected to execution yet")
        remaining_ms = TRIP_WAIT_MS if not deadline_ns else max(1, (deadline_ns - wall_ns()) // 1_000_000)
        trip = wire.Trip(state=state, seq=seq, flatten=flatten, deadline_ns=deadline_ns)
        try:
            reply = await self.execution.request(trip, timeout_ms=int(remaining_ms))
        except RpcError as exc:
            if state is TradingState.HALTED or flatten:
                return await self._empty_venue_without_execution(state, flatten, f"{exc}")
            return self._report(state, False, f"execution did not answer: {exc}")
        if isinstance(reply, wire.TripReport):
            return reply
        detail = reply.detail if isinstance(reply, wire.Reply) else type(reply).__name__
        return self._report(state, False, f"execution: {detail}")

    async def _empty_venue_without_execution(
        self, state: TradingState, flatten: bool, why: str
    ) -> wire.TripReport:
        from services.execution.venue.venue_kill import empty_venue_direct  # only on this rare path

        log.error("execution did not answer a trip: risk empties the venue itself", extra=kv(error=why[:200]))
        outcome = await empty_venue_direct(self._settings, flatten, TRIP_WAIT_MS / 1000)
        detail = f"execution did not answer ({why[:200]}); risk emptied the venue directly: {outcome.detail}"
        return wire.TripReport(
            state=state,
            seq=self._owner.record.seq,
            ok=outcome.confirmed,
            open_orders=outcome.open_orders,
            positions=outcome.positions,
            canceled=outcome.canceled,
            closed=outcome.closed,
            confirm_us=0,
            detail=detail,
        )

    def _report(self, state: TradingState, ok: bool, detail: str) -> wire.TripReport:
        return wire.TripReport(
            state=state,
            seq=self._owner.record.seq,
            ok=ok,
            open_orders=-1,
            positions=-1,
            canceled=0,
            closed=0,
            confirm_us=0,
            detail=detail,
        )
