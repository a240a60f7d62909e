"""Risk's trading state owner: persisted on every change, enforced in the check's limits, published,
audited; restarts come back in the persisted state; a corrupt file starts HALTED."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common import wire
from common.enums import TradingState, TripSource
from common.trading_state import AuditLog, StateStore
from services.risk.trading_state import StatePersistError, TradingStateOwner

SLOT = 0


def _owner(run_dir: Path) -> tuple[TradingStateOwner, np.ndarray, list[wire.TradingStateChanged]]:
    """The owner with the state it has the check enforce kept in ``limits[SLOT]`` as its code."""
    limits = np.full(1, -1, dtype=np.int64)
    events: list[wire.TradingStateChanged] = []

    def enforce(state: TradingState) -> None:
        limits[SLOT] = state.code

    return TradingStateOwner(run_dir, enforce, events.append), limits, events


def test_first_start_is_active_and_writes_the_file(tmp_path: Path) -> None:
    owner, limits, events = _owner(tmp_path)
    assert owner.state is TradingState.ACTIVE and limits[SLOT] == 0
    assert StateStore(tmp_path).load().state is TradingState.ACTIVE
    assert events[-1].state is TradingState.ACTIVE


def test_change_is_persisted_enforced_published_and_survives_a_restart(tmp_path: Path) -> None:
    owner, limits, events = _owner(tmp_path)
    owner.change(TradingState.HALTED, TripSource.CLI, "cli:u@h", "drill", flatten=True)
    assert limits[SLOT] == TradingState.HALTED.code
    assert (events[-1].state, events[-1].seq, events[-1].reason) == (TradingState.HALTED, 1, "drill")
    again, limits2, _ = _owner(tmp_path)  # a restart
    assert again.state is TradingState.HALTED and limits2[SLOT] == TradingState.HALTED.code
    assert again.record.flatten and again.record.who == "cli:u@h"
    assert [r["event"] for r in AuditLog(tmp_path).read()] == ["start", "change"]


def test_corrupt_state_file_starts_halted_and_is_kept_aside(tmp_path: Path) -> None:
    (tmp_path / "trading_state.json").write_text('{"state": "act')
    owner, limits, _ = _owner(tmp_path)
    assert owner.state is TradingState.HALTED and limits[SLOT] == TradingState.HALTED.code
    assert list(tmp_path.glob("trading_state.json.corrupt-*"))
    assert StateStore(tmp_path).load().state is TradingState.HALTED  # readable again, still HALTED


def test_a_kill_written_by_the_cli_is_adopted(tmp_path: Path) -> None:
    owner, limits, events = _owner(tmp_path)
    store = StateStore(tmp_path)
    record = store.load()
    store.save(wire_record := type(record)(
        state=TradingState.HALTED, seq=record.seq + 1, source=TripSource.CLI_OUT_OF_BAND, who="cli", reason="oob",
        ts_ns=1,
    ))  # fmt: skip
    assert owner.adopt_external()
    assert owner.record == wire_record and limits[SLOT] == TradingState.HALTED.code
    assert events[-1].state is TradingState.HALTED
    assert not owner.adopt_external()  # nothing new


def test_loosening_that_cannot_be_persisted_is_refused_tightening_is_not(tmp_path: Path) -> None:
    owner, limits, _ = _owner(tmp_path)
    owner.change(TradingState.REDUCE_ONLY, TripSource.CLI, "cli", "drill")
    path = tmp_path / "trading_state.json"
    path.unlink()
    path.mkdir()  # the write now fails (for root too)
    with pytest.raises(StatePersistError):
        owner.change(TradingState.ACTIVE, TripSource.CLI, "cli", "reset")
    assert owner.state is TradingState.REDUCE_ONLY
    owner.change(TradingState.HALTED, TripSource.TRIGGER, "daily_loss", "loss")  # a kill never fails
    assert owner.state is TradingState.HALTED and limits[SLOT] == TradingState.HALTED.code
