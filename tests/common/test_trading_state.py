"""The persisted trading state: missing means ACTIVE, unreadable means HALTED, writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path

from common.enums import TradingState, TripSource
from common.trading_state import AuditLog, StateRecord, StateStore


def _record(state: TradingState, seq: int) -> StateRecord:
    return StateRecord(state=state, seq=seq, source=TripSource.CLI, who="cli:t@h", reason="drill", ts_ns=1)


def test_missing_file_means_active_and_a_written_record_reads_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    first = store.load()
    assert (first.state, first.seq, first.source) == (TradingState.ACTIVE, 0, TripSource.STARTUP)
    store.save(_record(TradingState.HALTED, 3))
    assert StateStore(tmp_path).load() == _record(TradingState.HALTED, 3)
    assert os.stat(store.path).st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_corrupt_or_invalid_file_means_halted(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for content in (b"{not json", b'{"state": "sideways", "seq": 1}', b"", b"\xff\xfe"):
        store.path.write_bytes(content)
        record = store.load()
        assert record.state is TradingState.HALTED, content
        assert "corrupt" in record.reason


def test_changed_sees_a_write_by_somebody_else(tmp_path: Path) -> None:
    mine, theirs = StateStore(tmp_path), StateStore(tmp_path)
    assert not mine.changed()  # no file, none seen
    mine.save(_record(TradingState.ACTIVE, 1))
    assert not mine.changed()
    theirs.save(_record(TradingState.HALTED, 2))
    assert mine.changed()
    assert mine.load().seq == 2 and not mine.changed()


def test_audit_log_appends_json_lines(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path)
    audit.append("change", _record(TradingState.HALTED, 1), previous="active")
    audit.append("trip_result", None, canceled=20, ok=True)
    rows = audit.read()
    assert [r["event"] for r in rows] == ["change", "trip_result"]
    assert rows[0]["record"]["state"] == "halted" and rows[0]["previous"] == "active"
    assert rows[1]["canceled"] == 20
