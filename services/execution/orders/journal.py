"""Execution's durable order journal: SQLite in WAL mode, ``<run_dir>/execution.journal.sqlite``.

Written on the hot path: ``record_submit`` — one ``write()`` of the order's request body to the
submit log ``execution.journal.sqlite-submits`` before its POST is written (a write-ahead: after a
crash every order that may have reached the venue is known, and resolved by lookup). An append to a
file is one short system call where an SQLite transaction walks far more code, which the first
order after an idle spell pays with cold caches. The records move into the ``submits`` table right
after (``flush_submits``, scheduled on the loop by ``record_submit``; also on every ``check``, on
close and before the readers); the log is then emptied. Opening the journal moves whatever a crash
left in the log into the table first. Written after: ``record_event`` for every sequenced OrderUpdate /
Fill, committed before it is published (a peer never sees a seq the journal does not hold, so a
restarted execution continues the same sequence). Also: the positions base (venue positions at a
seq), the ids of orders whose fills are already in that base, and meta (journal id, book epoch,
boots).

Start-up reads what changed since the last book snapshot, not the whole history
(``record_snapshot``, taken by execution when it is ready, every ``SNAPSHOT_EVERY`` events and when
it stops): the book at a seq ``S`` exactly (cost and realized P&L as rationals), the orders worth
keeping (open ones and the newest closed ones: each by the seq of its last update) and the submits'
rowid then; every other order's id joins ``retired``. ``load`` then reads the kept orders' last
updates, the events after ``S``, the submits after that rowid (and the kept orders'), and the
retired ids. Nothing is deleted: ``events_after`` still serves any seq to a peer that replays.

Durability: ``synchronous=NORMAL`` in WAL mode. A commit is in the OS page cache when it returns, so
a SIGKILL at any instant loses nothing committed (SQLite's WAL is atomic per transaction); the same
holds for a submit record once its ``write()`` returned (records carry their length and a CRC32, so a
torn tail after a power loss is recognised and skipped). fsync
happens at each WAL checkpoint, which execution runs every second after ``check``, in a worker
thread on a connection of its own (auto-checkpoints are off: they put a 6-18 ms fsync into a commit),
and on close: a power loss or kernel crash can lose
the transactions of the last second or so (never corrupts the file); reconciliation by
client_order_id then recovers the venue's side of those orders. Measured in bench/journal_write.py.

A write that fails (disk full, read-only, file gone) sets ``ok`` False with the error: execution
then refuses to send (its gate asks ``error``) and says so in status, metrics and its heartbeat.
Events that could not be written are kept in memory and written by ``check`` once the disk is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import struct
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Protocol

import msgspec
import orjson

from common import wire
from common.clock import wall_ns
from common.log import kv
from common.positions import ExactPosition
from services.execution.metrics import JOURNAL_OK, JOURNAL_WRITE, JOURNAL_WRITE_ERRORS
from services.execution.orders.event_log import OrderEvent

log = logging.getLogger(__name__)

JOURNAL_FILE = "execution.journal.sqlite"
SUBMIT_LOG_SUFFIX = "-submits"  # beside the database, as SQLite's own -wal and -shm
_RECORD_HEAD = struct.Struct("<II")  # payload length, CRC32 of the payload
MIN_FREE_BYTES = 4 * 1024 * 1024  # below this much free space the journal counts as failing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submits (coid TEXT NOT NULL, attempt INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
    body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, ev BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS base (id INTEGER PRIMARY KEY CHECK (id = 1), as_of_seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL, ts_ns INTEGER NOT NULL, positions BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS retired (coid TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), as_of_seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL, ts_ns INTEGER NOT NULL, submits_rowid INTEGER NOT NULL, book BLOB NOT NULL,
    strategies BLOB NOT NULL, kept BLOB NOT NULL);
"""
_SNAPSHOT_COLUMNS = ("id", "as_of_seq", "epoch", "ts_ns", "submits_rowid", "book", "strategies", "kept")
SNAPSHOT_EVERY = 10_000  # events between book snapshots: what a start reads beyond the kept orders
KEEP_CLOSED = 1_000  # closed orders a snapshot keeps for the next start (the newest)

KeptOrder = tuple[str, int]  # client_order_id, seq of its last update (0: none yet)


@dataclass(slots=True)
class BookSnapshot:
    """What a start needs from before ``as_of_seq`` (built by the tracker, see ``record_snapshot``)."""

    as_of_seq: int
    book: list[ExactPosition]  # the account's positions
    strategies: dict[str, list[ExactPosition]]  # each strategy's positions
    kept: list[KeptOrder]  # the orders the next start rebuilds
    retired: set[str]  # every other id ever tracked (not read back: the retired table holds them)
    epoch: int = -1  # read back: the book epoch it was taken in
    submits_rowid: int = 0  # read back: the submits' last rowid then


class JournalError(RuntimeError):
    """The journal could not be written: nothing may be sent."""


class OrderJournal(Protocol):
    def record_submit(self, client_order_id: str, attempt: int, body: dict[str, Any]) -> None:
        """Called before an order POST is written (write-ahead); raises JournalError when not written."""

    def record_event(self, event: OrderEvent) -> None:
        """Called for every sequenced order event, before it is published."""


@dataclass(slots=True)
class Submit:
    client_order_id: str
    attempt: int
    ts_ns: int
    body: dict[str, Any]


@dataclass(slots=True)
class Recovered:
    """What a previous run left: everything execution rebuilds its state from."""

    # the kept orders' last updates up to the snapshot, then every event after it, in seq order
    events: list[OrderEvent] = field(default_factory=list)
    submits: dict[str, Submit] = field(default_factory=dict)  # the newest attempt per client_order_id
    base_seq: int = -1  # -1: no positions base yet (a first start)
    base_ts_ns: int = 0
    base_positions: list[wire.Position] = field(default_factory=list)
    retired: set[str] = field(default_factory=set)
    last_seq: int = 0  # the sequence's last seq
    tail_after: int = -1  # the events after this seq are all in ``events`` (the contiguous tail)
    book_seq: int = -1  # ``book`` is the positions at this seq (-1: no usable snapshot: use the base)
    book: list[ExactPosition] = field(default_factory=list)
    # each strategy's positions at the snapshot's seq (tail_after); without one, built from every fill
    strategy_books: dict[str, list[ExactPosition]] = field(default_factory=dict)


SubmitRecord = tuple[str, int, int, dict[str, Any]]  # client_order_id, attempt, ts_ns, body


def _kept(blob: bytes) -> list[KeptOrder]:
    out: list[KeptOrder] = []
    for coid, seq in orjson.loads(blob):
        if not isinstance(coid, str) or not isinstance(seq, int):
            raise ValueError(f"not a kept order: {coid!r}, {seq!r}"[:200])
        out.append((coid, seq))
    return out


def _strategies(blob: bytes) -> dict[str, list[ExactPosition]]:
    doc = orjson.loads(blob)
    if not isinstance(doc, dict):
        raise ValueError("strategy books: not an object")
    return {str(name): [_exact(p) for p in positions] for name, positions in doc.items()}


def _exact(p: Any) -> ExactPosition:
    symbol, qty, cost, realized = p
    if not (
        isinstance(symbol, str)
        and isinstance(qty, int)
        and isinstance(cost, str)
        and isinstance(realized, str)
    ):
        raise ValueError(f"not an exact position: {p!r}"[:200])
    return (symbol, qty, cost, realized)


def _decode_events(rows: Iterable[tuple[bytes]]) -> list[OrderEvent]:
    out: list[OrderEvent] = []
    for (blob,) in rows:
        ev = wire.decode(blob)
        if isinstance(ev, wire.OrderUpdate | wire.Fill):
            out.append(ev)
    return out


def encode_submit(client_order_id: str, attempt: int, ts_ns: int, body: dict[str, Any]) -> bytes:
    payload = orjson.dumps([client_order_id, attempt, ts_ns, body])
    return _RECORD_HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def read_submit_log(data: bytes) -> tuple[list[SubmitRecord], int]:
    """The submit records in a log's bytes, and how many bytes they span: reading stops at the first
    record that is short or fails its CRC (a write torn by a power loss)."""
    out: list[SubmitRecord] = []
    pos = 0
    while pos + _RECORD_HEAD.size <= len(data):
        size, crc = _RECORD_HEAD.unpack_from(data, pos)
        payload = data[pos + _RECORD_HEAD.size : pos + _RECORD_HEAD.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            break
        try:
            coid, attempt, ts_ns, body = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            break
        out.append((str(coid), int(attempt), int(ts_ns), body))
        pos += _RECORD_HEAD.size + size
    return out, pos


class SqliteJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.ok = False
        self.error = ""
        self.write_errors = 0
        self.journal_id = ""
        self.book_epoch = 0
        self.boots = 0
        self._backlog: list[OrderEvent] = []
        self._ino = 0
        self._db: sqlite3.Connection | None = None
        self._ckpt_db: sqlite3.Connection | None = None  # checkpoint()'s own, used from a worker thread
        self.submit_log_path = Path(f"{path}{SUBMIT_LOG_SUFFIX}")
        self._log_fd = -1
        self._unflushed: list[SubmitRecord] = []  # in the log, not yet in the submits table
        self._submit_write_ns: list[int] = []  # how long each logged submit's write took, not yet observed
        self._flush_scheduled = False
        self.snapshot_seq = -1  # as_of_seq of the last book snapshot (-1: none)
        self._snapshot_rowid = 0  # the submits' rowid then
        self._orphans: list[str] = []  # submitted ids the last snapshot kept though nobody tracked them
        self._retired_written: set[str] = set()  # ids in the retired table (read by load)
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc, "open")

    # ---- opening ------------------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoint() runs them (the fsyncs), in a worker thread
        db.executescript(_SCHEMA)
        columns = tuple(r[1] for r in db.execute("PRAGMA table_info(snapshot)"))
        if columns != _SNAPSHOT_COLUMNS:  # another version's: a snapshot is only a shortcut, drop it
            log.warning("book snapshot of another layout dropped", extra=kv(columns=",".join(columns)))
            db.execute("DROP TABLE snapshot")
            db.executescript(_SCHEMA)
        meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
        self.journal_id = meta.get("journal_id") or uuid.uuid4().hex[:16]
        self.book_epoch = int(meta.get("book_epoch", "0"))
        self.boots = int(meta.get("boots", "0")) + 1
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                [
                    ("journal_id", self.journal_id),
                    ("book_epoch", str(self.book_epoch)),
                    ("boots", str(self.boots)),
                ],
            )
        self._take_submit_log(db)
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                os.chmod(p, 0o600)
        self._ino = os.stat(self.path).st_ino
        self._db = db
        self.ok = True
        JOURNAL_OK.set(1)

    def _take_submit_log(self, db: sqlite3.Connection) -> None:
        """Move what a previous run left in the submit log into the table, then open the log empty."""
        self._close_log()
        try:
            data = self.submit_log_path.read_bytes()
        except FileNotFoundError:
            data = b""
        records, used = read_submit_log(data)
        if used < len(data):
            log.warning(
                "submit log: torn tail skipped", extra=kv(bytes=len(data) - used, records=len(records))
            )
        if records:
            have = set(db.execute("SELECT coid, attempt FROM submits"))
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO submits (coid, attempt, ts_ns, body) VALUES (?, ?, ?, ?)",
                    [(c, a, t, orjson.dumps(b)) for c, a, t, b in records if (c, a) not in have],
                )
            log.info("submit log: moved into the journal", extra=kv(records=len(records)))
        self._log_fd = os.open(self.submit_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.ftruncate(self._log_fd, 0)

    @property
    def incarnation(self) -> str:
        """Names execution's sequence of order events: the same across restarts (seq continues),
        new when the journal is new or the positions book was re-based on the venue."""
        return f"{self.journal_id}.{self.book_epoch}"

    # ---- failure --------------------------------------------------------------------------------

    def _failed(self, exc: BaseException, what: str) -> None:
        self.write_errors += 1
        JOURNAL_WRITE_ERRORS.inc()
        message = f"{what}: {type(exc).__name__}: {exc}"[:300]
        if self.ok or message != self.error:
            log.error("order journal cannot be written: trading halted", extra=kv(error=message))
        self.ok, self.error = False, message
        JOURNAL_OK.set(0)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalError(self.error or "journal not open")
        return self._db

    # ---- the hot path -------------------------------------------------------------------------------

    def record_submit(self, client_order_id: str, attempt: int, body: dict[str, Any]) -> None:
        if not self.ok:
            raise JournalError(self.error)
        try:
            t0 = perf_counter_ns()
            ts_ns = wall_ns()
            record = encode_submit(client_order_id, attempt, ts_ns, body)
            if os.write(self._log_fd, record) != len(record):
                raise OSError("short write to the submit log")
            self._submit_write_ns.append(perf_counter_ns() - t0)  # observed by flush_submits, after the POST
        except (OSError, TypeError, orjson.JSONEncodeError) as exc:
            self._failed(exc, "submit")
            raise JournalError(self.error) from exc
        self._unflushed.append((client_order_id, attempt, ts_ns, body))
        if not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush_submits)
                self._flush_scheduled = True
            except RuntimeError:
                pass  # no loop (tools, tests): check(), close() and the readers flush

    def flush_submits(self) -> bool:
        """Move the logged submits into the table and empty the log (once their POSTs are written).
        On failure they stay in the log, which the next open reads, the journal counts as failing,
        and this returns False."""
        self._flush_scheduled = False
        for took_ns in self._submit_write_ns:
            JOURNAL_WRITE.observe(took_ns / 1e9)
        self._submit_write_ns.clear()
        if not self._unflushed or self._db is None:
            return True
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO submits (coid, attempt, ts_ns, body) VALUES (?, ?, ?, ?)",
                    [(c, a, t, orjson.dumps(b)) for c, a, t, b in self._unflushed],
                )
            os.ftruncate(self._log_fd, 0)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc, "submit")
            return False
        self._unflushed.clear()
        return True

    def record_event(self, event: OrderEvent) -> None:
        if self._backlog or not self.ok:
            self._backlog.append(event)  # keep the order: written by check() once the disk is back
            return
        try:
            t0 = perf_counter_ns()
            self._conn().execute(
                "INSERT OR REPLACE INTO events (seq, ev) VALUES (?, ?)", (event.seq, wire.encode(event))
            )
            JOURNAL_WRITE.observe((perf_counter_ns() - t0) / 1e9)
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._backlog.append(event)
            self._failed(exc, "event")

    # ---- after the POST ------------------------------------------------------------------------

    def record_base(self, as_of_seq: int, positions: list[wire.Position], new_epoch: bool) -> None:
        """The positions book's base: venue positions that every fill with seq > as_of_seq moves."""
        epoch = self.book_epoch + 1 if new_epoch else self.book_epoch
        blob = msgspec.msgpack.encode(positions)
        try:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.execute(
                    "INSERT OR REPLACE INTO base (id, as_of_seq, epoch, ts_ns, positions) VALUES (1, ?, ?, ?, ?)",
                    (as_of_seq, epoch, wall_ns(), blob),
                )
                db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('book_epoch', ?)", (str(epoch),))
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._failed(exc, "base")
            raise JournalError(self.error) from exc
        self.book_epoch = epoch

    def record_retired(self, coids: Iterable[str]) -> None:
        rows = [(c,) for c in coids]
        if not rows:
            return
        try:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO retired (coid) VALUES (?)", rows)
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._failed(exc, "retired")
            return
        self._retired_written.update(c for (c,) in rows)

    def record_snapshot(self, snap: BookSnapshot) -> None:
        """The books at ``as_of_seq`` and the orders the next start rebuilds; ``retired``: every other
        order's id (those already written are skipped). A journaled submit of an id in neither is
        kept too: a submit is forgotten only once its order is known closed. One transaction."""
        as_of_seq, kept, retired = snap.as_of_seq, snap.kept, snap.retired
        self.flush_submits()
        new_retired = [(c,) for c in retired - self._retired_written]
        try:
            db = self._conn()
            (rowid,) = db.execute("SELECT coalesce(max(rowid), 0) FROM submits").fetchone()
            known = retired | {coid for coid, _ in kept}
            since = db.execute(
                "SELECT DISTINCT coid FROM submits WHERE rowid > ? AND rowid <= ?",
                (self._snapshot_rowid, rowid),
            )
            orphans = [c for c in dict.fromkeys([*self._orphans, *(c for (c,) in since)]) if c not in known]
            kept = [*kept, *((c, 0) for c in orphans)]
            books = orjson.dumps(snap.book), orjson.dumps(snap.strategies)
            row = (as_of_seq, self.book_epoch, wall_ns(), rowid, *books, orjson.dumps(kept))
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO retired (coid) VALUES (?)", new_retired)
                db.execute(
                    f"INSERT OR REPLACE INTO snapshot (id, {', '.join(_SNAPSHOT_COLUMNS[1:])})"
                    " VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._failed(exc, "snapshot")
            return
        self._retired_written.update(c for (c,) in new_retired)
        self.snapshot_seq, self._snapshot_rowid, self._orphans = as_of_seq, rowid, orphans

    def set_meta(self, key: str, value: str) -> None:
        try:
            self._conn().execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._failed(exc, "meta")

    def get_meta(self, key: str) -> str:
        if self._db is None:
            return ""
        row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return str(row[0]) if row else ""

    # ---- reading back ---------------------------------------------------------------------------

    def events_after(self, after_seq: int, limit: int) -> list[OrderEvent]:
        if self._db is None:
            return []
        rows = self._db.execute(
            "SELECT ev FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return _decode_events(rows)

    @property
    def submits(self) -> list[tuple[str, int, dict[str, Any]]]:
        """Every journaled submit, oldest first: (client_order_id, attempt, body)."""
        self.flush_submits()
        if self._db is None:
            return []
        rows = self._db.execute("SELECT coid, attempt, body FROM submits ORDER BY rowid").fetchall()
        return [(c, a, orjson.loads(b)) for c, a, b in rows]

    def load(self) -> Recovered:
        rec = Recovered()
        self.flush_submits()
        if self._db is None:
            return rec
        db = self._db
        row = db.execute("SELECT as_of_seq, epoch, ts_ns, positions FROM base WHERE id = 1").fetchone()
        base_epoch = -1
        if row is not None:
            rec.base_seq, base_epoch, rec.base_ts_ns = int(row[0]), int(row[1]), int(row[2])
            rec.base_positions = msgspec.msgpack.decode(row[3], type=list[wire.Position])
        snap = self._stored_snapshot()
        current = snap is not None and snap.epoch == base_epoch and snap.as_of_seq >= rec.base_seq
        if snap is not None and not current and rec.base_seq < snap.as_of_seq:
            # a base of another epoch older than the snapshot: its fills before it were not read
            log.error("book snapshot after a base of another epoch: reading the whole journal")
            snap = None
        if snap is None:
            rec.events = self.events_after(-1, 1 << 62)
            submits = db.execute("SELECT coid, attempt, ts_ns, body FROM submits ORDER BY rowid")
        else:
            seqs = orjson.dumps([seq for _, seq in snap.kept if seq])
            rows = db.execute(
                "SELECT ev FROM events WHERE seq > ? OR seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
                (snap.as_of_seq, seqs),
            ).fetchall()
            rec.events = _decode_events(rows)
            rec.tail_after = self.snapshot_seq = snap.as_of_seq
            rec.strategy_books = snap.strategies
            self._snapshot_rowid = snap.submits_rowid
            self._orphans = [coid for coid, seq in snap.kept if not seq]
            if current:  # not re-based since: the book is the positions at its seq
                rec.book_seq, rec.book = snap.as_of_seq, snap.book
            submits = db.execute(
                "SELECT coid, attempt, ts_ns, body FROM submits"
                " WHERE rowid > ? OR coid IN (SELECT value FROM json_each(?)) ORDER BY rowid",
                (snap.submits_rowid, orjson.dumps([coid for coid, _ in snap.kept])),
            )
        for coid, attempt, ts_ns, body in submits:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                log.error("unreadable journaled submit skipped", extra=kv(coid=coid))
                continue
            rec.submits[coid] = Submit(coid, attempt, ts_ns, doc)
        (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        rec.last_seq = max(int(last), rec.tail_after, 0)
        rec.retired = {c for (c,) in db.execute("SELECT coid FROM retired")}
        self._retired_written = set(rec.retired)
        return rec

    def _stored_snapshot(self) -> BookSnapshot | None:
        """The last book snapshot as written, None when there is none or it cannot be read (then
        the whole journal is read: logged as an error)."""
        assert self._db is not None
        row = self._db.execute(
            "SELECT as_of_seq, epoch, submits_rowid, book, strategies, kept FROM snapshot WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        try:
            return BookSnapshot(
                as_of_seq=int(row[0]),
                book=[_exact(p) for p in orjson.loads(row[3])],
                strategies=_strategies(row[4]),
                kept=_kept(row[5]),
                retired=set(),
                epoch=int(row[1]),
                submits_rowid=int(row[2]),
            )
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            log.error("book snapshot unreadable: reading the whole journal", extra=kv(error=str(exc)[:200]))
            return None

    # ---- health ----------------------------------------------------------------------------------

    def check(self) -> bool:
        """Is the journal writable? Free space, the file still being the one we opened, a probe write;
        writes the events kept in memory once it works again. Called every second or so."""
        try:
            if self._db is None:
                self._open()
            st = os.stat(self.path)
            if st.st_ino != self._ino:
                raise JournalError("the journal file was replaced or removed")
            try:
                replaced = os.stat(self.submit_log_path).st_ino != os.fstat(self._log_fd).st_ino
            except FileNotFoundError:
                replaced = True
            if replaced:
                raise JournalError("the submit log was replaced or removed")
            vfs = os.statvfs(self.path.parent)
            free = vfs.f_bavail * vfs.f_frsize
            if free < MIN_FREE_BYTES:
                raise JournalError(f"disk almost full: {free} bytes free")
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('alive_ns', ?)", (str(wall_ns()),))
                db.executemany(
                    "INSERT OR REPLACE INTO events (seq, ev) VALUES (?, ?)",
                    [(e.seq, wire.encode(e)) for e in self._backlog],
                )
            if not self.flush_submits():
                raise JournalError(self.error)
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._failed(exc, "check")
            return False
        if not self.ok:
            log.warning("order journal writable again", extra=kv(written_late=len(self._backlog)))
        self._backlog.clear()
        self.ok, self.error = True, ""
        JOURNAL_OK.set(1)
        return True

    def checkpoint(self) -> str:
        """Copy the WAL into the database and fsync both: what makes the last second's commits
        survive a power loss. Runs in a worker thread (``asyncio.to_thread``) on a connection of its
        own, so the fsyncs (~1 ms here) never stall the loop; a PASSIVE checkpoint takes no lock a
        writer waits on. Returns the error, "" when it worked; the loop hands it to ``checkpoint_done``."""
        try:
            if self._ckpt_db is None:
                self._ckpt_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._ckpt_db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, OSError) as exc:
            self._close_checkpointer()
            return f"{type(exc).__name__}: {exc}"
        return ""

    def checkpoint_done(self, error: str) -> None:
        """On the loop: a failed checkpoint fails the journal until the next check finds it well."""
        if error:
            self._failed(JournalError(error), "checkpoint")

    def _close_checkpointer(self) -> None:
        if self._ckpt_db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._ckpt_db.close()
            self._ckpt_db = None

    def _close_log(self) -> None:
        if self._log_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._log_fd)
            self._log_fd = -1

    def close(self) -> None:
        self.flush_submits()
        self._close_log()
        self._close_checkpointer()  # first: the last connection to close checkpoints the WAL
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error as exc:
                log.warning("order journal close failed", extra=kv(error=str(exc)))
            self._db = None
