"""Execution's copy of the trading state: the last gate before the venue.

Risk owns the state; execution enforces it again, right before each order POST is written (after
the order waited for its rate-limit token), so nothing queued before a halt leaves after it. The
gate learns the state three ways, and the newest record (``seq``) wins, the stricter one on a tie:
risk's ``TradingStateChanged`` events, risk's ``Trip`` commands, and the persisted state file (one
stat per POST: ``zerotick kill`` writes it even when every service is hung, so an execution that
wakes up after a SIGSTOP sees the halt before it sends anything).

Until it knows a state, the gate is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.enums import RejectReason, TradingState
from common.log import kv
from common.metrics import GATE_BLOCKED, TRADING_STATE
from common.trading_state import StateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenExposure:
    """What an order on one symbol adds to: the position and the open quantity per side."""

    position: int  # signed
    open_buy: int
    open_sell: int


def reduces(exposure: OpenExposure, side: str, qty: int) -> bool:
    """True when the order shrinks the position and, with every open order on its side filled too,
    never flips it."""
    pos = exposure.position
    if side == "buy":
        return pos < 0 and pos + exposure.open_buy + qty <= 0
    return pos > 0 and pos - exposure.open_sell - qty >= 0


class TradingGate:
    def __init__(self, run_dir: Path | None, service: str = "execution") -> None:
        self._store = StateStore(run_dir) if run_dir is not None else None
        self._service = service
        self.state: TradingState | None = None  # None: not known yet (closed)
        self.seq = -1
        self.refresh()

    def adopt(self, state: TradingState, seq: int, origin: str) -> bool:
        newer = seq > self.seq
        tie_stricter = seq == self.seq and self.state is not None and state.code > self.state.code
        if not (newer or tie_stricter) or (state is self.state and seq == self.seq):
            return False
        previous = self.state
        self.state, self.seq = state, seq
        TRADING_STATE.labels(self._service).state(state.value)
        if previous is not state:
            log.warning(
                "execution trading gate changed",
                extra=kv(state=state, previous=previous, seq=seq, origin=origin),
            )
        return True

    def refresh(self) -> None:
        """Adopt the state file when it changed since the last look (one stat call)."""
        if self._store is None or not self._store.changed():
            return
        record = self._store.load()
        if not self._store.path.exists():
            return  # nobody wrote one yet: wait for risk
        self.adopt(record.state, record.seq, "state_file")

    def blocks(
        self, side: str, qty: int, exposure: Callable[[], OpenExposure], *, read_file: bool = True
    ) -> RejectReason | None:
        """Why this order may not go out now (None: it may). ``exposure`` is asked only in
        REDUCE_ONLY (it scans the open orders: not on the ACTIVE hot path). ``read_file=False`` for
        an early answer that a later call before the write repeats with the file; the file is read
        all the same while no state is known."""
        if read_file or self.state is None:
            self.refresh()
        state = self.state
        if state is TradingState.ACTIVE:
            return None
        if state is TradingState.REDUCE_ONLY and reduces(exposure(), side, qty):
            return None
        reason = RejectReason.HALTED if state is not TradingState.REDUCE_ONLY else RejectReason.REDUCE_ONLY
        GATE_BLOCKED.labels(state.value if state else "unknown").inc()
        return reason
