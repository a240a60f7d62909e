"""The persisted trading state and the audit log of its changes.

The state file (``<run_dir>/trading_state.json``) is written by risk, its owner, on every change, and
by ``zerotick kill`` when risk cannot be reached (a kill may always tighten the state; only risk may
loosen it). Each write is atomic (temporary file, fsync, rename, fsync of the folder), so a reader
sees the old record or the new one, never half of one. ``seq`` counts changes: a reader adopts a
record only when its seq is newer than the one it holds.

Reading: a missing file on first start means ACTIVE; a file that cannot be read or parsed means
HALTED (nobody can tell what the last decision was, so the safe one is taken).

This module is on ``zerotick kill``'s out-of-band path: standard library and msgspec only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

from common.enums import TradingState, TripSource

STATE_FILE = "trading_state.json"
AUDIT_FILE = "audit.jsonl"


class StateRecord(msgspec.Struct, frozen=True, kw_only=True):
    state: TradingState
    seq: int  # changes so far; a newer record has a larger seq
    source: TripSource
    who: str  # the trigger name, the CLI user@host, or the control peer
    reason: str
    ts_ns: int  # wall clock when it was decided
    flatten: bool = False  # the trip asked to close every position


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(StateRecord)


def initial_record(state: TradingState, reason: str) -> StateRecord:
    return StateRecord(
        state=state, seq=0, source=TripSource.STARTUP, who="startup", reason=reason, ts_ns=time.time_ns()
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: after return, a power loss keeps the new content."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def keep_aside(path: Path) -> Path | None:
    """Move an unusable state file out of the way for inspection (``<name>.corrupt-<ns>``); the new
    path, or None when there was nothing to move or it could not be moved."""
    keep = path.with_name(f"{path.name}.corrupt-{time.time_ns()}")
    try:
        os.replace(path, keep)
    except OSError:
        return None
    return keep


class StateStore:
    """Reads and writes one state file; tells when somebody else changed it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / STATE_FILE
        self._stat_path = os.fspath(self.path)  # stat'ed before every order POST: no Path conversion there
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) last read or written

    def load(self) -> StateRecord:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._seen = None
            return initial_record(TradingState.ACTIVE, "no state file: first start")
        except OSError as exc:
            return initial_record(TradingState.HALTED, f"state file unreadable: {exc.strerror}")
        self._remember()
        try:
            return _dec.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return initial_record(TradingState.HALTED, f"state file corrupt: {str(exc)[:200]}")

    def save(self, record: StateRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, _enc.encode(record) + b"\n")
        self._remember()

    def changed(self) -> bool:
        """Whether the file differs from what this store last read or wrote (one stat call)."""
        try:
            st = os.stat(self._stat_path)
        except FileNotFoundError:
            return self._seen is not None
        except OSError:
            return True
        return (st.st_ino, st.st_size, st.st_mtime_ns) != self._seen

    def _remember(self) -> None:
        try:
            st = os.stat(self.path)
            self._seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            self._seen = None


class AuditLog:
    """Append-only JSON lines: every trip, change and reset, with who, when, why and the outcome."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / AUDIT_FILE

    def append(self, event: str, record: StateRecord | None = None, **fields: Any) -> None:
        doc: dict[str, Any] = {"event": event, "ts_ns": time.time_ns()}
        if record is not None:
            doc["record"] = record
        doc.update(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, _enc.encode(doc) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return [msgspec.json.decode(line) for line in lines if line.strip()]
