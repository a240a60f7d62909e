"""Risk's periodic evaluation of the automatic triggers, and what a firing does: the state changes
through the owner (persisted, enforced, published, audited), the firing is counted and audited with
its numbers, and execution is told to enforce it (cancel, and flatten when configured).

Telling execution runs as its own task, so evaluation never waits on it, and is retried until
execution confirms or the state changes again: a trip fired because execution was unreachable lands
as soon as execution is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from common import wire
from common.enums import TradingState, TripSource
from common.metrics import TRIPS
from common.ratelog import ConditionLog
from services.risk.metrics import TRIGGER_FIRED
from services.risk.trading_state import TradingStateOwner
from services.risk.triggers import Exposure, Firing, Triggers

log = logging.getLogger(__name__)

RETRY_S = 1.0

TellExecution = Callable[[int, TradingState, bool, int], Awaitable[wire.TripReport]]
Spawn = Callable[[Coroutine[Any, Any, Any]], None]


class TriggerRunner:
    def __init__(
        self,
        triggers: Triggers,
        owner: TradingStateOwner,
        exposure: Callable[[], Exposure],
        tell_execution: TellExecution,
        spawn: Spawn,
        interval_s: float,
    ) -> None:
        self.triggers = triggers
        self.owner = owner
        self._exposure = exposure
        self._tell = tell_execution
        self._spawn = spawn
        self.interval_s = interval_s
        self._seen_state = owner.state

    async def run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a bug here must not end the kill switch's watch
                log.exception("trigger evaluation failed")
            await asyncio.sleep(self.interval_s)

    def tick(self) -> list[Firing]:
        if self.owner.store.changed():
            return []  # `zerotick kill` wrote the state file: risk's beacon adopts it first
        self._follow_state()
        firings = self.triggers.evaluate(self._exposure(), self.owner.state)
        for f in firings:
            self._fire(f)
        return firings

    def _follow_state(self) -> None:
        """A reset to ACTIVE (by anyone) re-arms every trigger."""
        state = self.owner.state
        if state is TradingState.ACTIVE and self._seen_state is not TradingState.ACTIVE:
            self.triggers.rearm()
            log.info("kill-switch triggers re-armed")
        self._seen_state = state

    def _fire(self, f: Firing) -> None:
        name = f.trigger.value
        record = self.owner.change(f.action, TripSource.TRIGGER, name, f.reading.detail, flatten=f.flatten)
        self._seen_state = record.state
        TRIGGER_FIRED.labels(name).inc()
        if f.action is TradingState.HALTED:
            TRIPS.labels(name).inc()
        self.owner.audit_safely(
            "trigger",
            record,
            trigger=name,
            action=f.action.value,
            flatten=f.flatten,
            value=f.reading.value,
            limit=f.reading.limit,
            detail=f.reading.detail,
        )
        self._spawn(self._enforce(record.seq, f))

    async def _enforce(self, seq: int, f: Firing) -> None:
        attempts = 0
        retry_log = ConditionLog(log, reminder_s=30.0)  # retried every second: logged on change
        while self.owner.record.seq == seq:
            attempts += 1
            report = await self._tell(seq, f.action, f.flatten, 0)
            if report.ok or self.owner.record.seq != seq:
                self.owner.audit_safely(
                    "trip_result" if f.action is TradingState.HALTED else "enforced",
                    None,
                    seq=seq,
                    trigger=f.trigger.value,
                    ok=report.ok,
                    attempts=attempts,
                    canceled=report.canceled,
                    closed=report.closed,
                    open_orders=report.open_orders,
                    positions=report.positions,
                    venue_confirm_us=report.confirm_us,
                    detail=report.detail,
                )
                return
            retry_log.report(
                report.detail[:120],
                "trigger's trip not confirmed by execution yet, retrying",
                trigger=f.trigger.value,
                seq=seq,
                attempts=attempts,
                detail=report.detail[:300],
            )
            await asyncio.sleep(RETRY_S)
