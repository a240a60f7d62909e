"""The one owner of the trading state: every change goes through :meth:`TradingStateOwner.change`,
which persists it (atomically, fsync'd), has the pre-trade check enforce it,
publishes a ``TradingStateChanged`` and appends to the audit log.

Tightening (towards HALTED) always takes effect in memory, even when the disk refuses the write: a
kill must never fail for a full disk. Loosening is refused unless it is persisted, so a restart can
never come back looser than what the operator last saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from common import oplog, wire
from common.enums import TradingState, TripSource
from common.log import kv
from common.metrics import STATE_CHANGES, TRADING_STATE
from common.trading_state import AuditLog, StateRecord, StateStore, keep_aside

log = logging.getLogger(__name__)


class StatePersistError(RuntimeError):
    pass


def stricter(a: TradingState, b: TradingState) -> bool:
    """True when ``a`` lets fewer orders through than ``b``."""
    return a.code > b.code


class TradingStateOwner:
    def __init__(
        self,
        run_dir: Path,
        enforce: Callable[[TradingState], None],
        publish: Callable[[wire.TradingStateChanged], None],
        service: str = "risk",
    ) -> None:
        self.store = StateStore(run_dir)
        self.audit = AuditLog(run_dir)
        self._enforce = enforce
        self._publish = publish
        self._service = service
        self.record = self._load_at_start()
        self._apply()

    def _load_at_start(self) -> StateRecord:
        record = self.store.load()
        if record.source is TripSource.STARTUP:
            # missing (ACTIVE) or unreadable (HALTED): write it, so every reader sees the same record
            if record.state is TradingState.HALTED:
                log.error("trading state file unusable: starting HALTED", extra=kv(reason=record.reason))
                self._set_aside_corrupt()
            try:
                self.store.save(record)
            except OSError as exc:
                log.error("cannot write the trading state file", extra=kv(error=exc.strerror))
            self.audit_safely("start", record)
        else:
            log.info(
                "trading state restored",
                extra=kv(state=record.state, seq=record.seq, source=record.source, reason=record.reason),
            )
        return record

    def _set_aside_corrupt(self) -> None:
        keep = keep_aside(self.store.path)
        if keep is not None:
            log.error("corrupt trading state file kept for inspection", extra=kv(path=str(keep)))

    @property
    def state(self) -> TradingState:
        return self.record.state

    def event(self) -> wire.TradingStateChanged:
        r = self.record
        return wire.TradingStateChanged(
            state=r.state, seq=r.seq, source=r.source, who=r.who, reason=r.reason, ts_ns=r.ts_ns
        )

    def change(
        self, state: TradingState, source: TripSource, who: str, reason: str, flatten: bool = False
    ) -> StateRecord:
        """Persist, enforce, publish and audit one change. Raises StatePersistError when a loosening
        cannot be persisted (the state is then unchanged)."""
        record = StateRecord(
            state=state,
            seq=self.record.seq + 1,
            source=source,
            who=who[:100],
            reason=reason[:500],
            ts_ns=time.time_ns(),
            flatten=flatten,
        )
        try:
            self.store.save(record)
        except OSError as exc:
            if not stricter(state, self.record.state):
                raise StatePersistError(
                    f"trading state not changed: cannot persist it ({exc.strerror})"
                ) from None
            log.error("trading state tightened in memory only", extra=kv(state=state, error=exc.strerror))
        previous = self.record.state
        self.record = record
        self._apply()
        STATE_CHANGES.labels(self._service, state.value, source.value).inc()
        oplog.trip_line(
            state=state.value,
            previous=previous.value,
            source=source.value,
            who=who,
            reason=reason,
            seq=record.seq,
        )
        self.audit_safely("change", record, previous=previous.value)
        return record

    def adopt_external(self) -> bool:
        """Adopt a record somebody else wrote (``zerotick kill`` while risk was hung or dead)."""
        if not self.store.changed():
            return False
        record = self.store.load()
        if record.source is TripSource.STARTUP and record.state is TradingState.HALTED:
            # unreadable now: tighten, keep our seq counting
            record = StateRecord(**{**_fields(record), "seq": self.record.seq + 1})
        elif record.seq < self.record.seq or (
            record.seq == self.record.seq and not stricter(record.state, self.record.state)
        ):
            return False
        self.record = record
        self._apply()
        log.warning("trading state adopted from the state file", extra=kv(state=record.state, seq=record.seq))
        self.audit_safely("adopted", record)
        return True

    def _apply(self) -> None:
        self._enforce(self.record.state)
        TRADING_STATE.labels(self._service).state(self.record.state.value)
        self._publish(self.event())

    def audit_safely(self, event: str, record: StateRecord | None = None, **fields: object) -> None:
        try:
            self.audit.append(event, record, **fields)
        except OSError as exc:
            log.error("audit log write failed", extra=kv(audit_event=event, error=exc.strerror))


def _fields(record: StateRecord) -> dict[str, object]:
    return {f: getattr(record, f) for f in record.__struct_fields__}
