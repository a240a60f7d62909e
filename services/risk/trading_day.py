"""The trading day the daily loss limit counts: when each day starts, and the P&L it counts from.

Risk's total P&L (realized plus unrealized at the marks) runs over the positions it was given. Its
realized part is execution's positions book's: the same running figure across restarts of either
service while the book is the same (``PositionsSnapshot.book``: execution's journal and book epoch),
starting over with a new book (a new journal, or positions re-based on the venue). The day's P&L is
that total less a baseline, kept in two parts: the realized P&L and the unrealized P&L when the day
began.

* A new day (``risk.day_starts_at`` in ``risk.day_timezone``, default midnight in New York) takes
  both from the P&L then: the day starts at 0.
* A new positions snapshot while risk runs (execution restarted): from the same book the total's
  change is fills risk had not applied yet, which count; from a new book the total jumps without
  trading, and the realized part of the baseline moves by the jump (``rebase``): the day's P&L stays.
* Risk starting: the record of the same day gives the realized P&L so far and the unrealized at the
  day's start, so positions marked again by the next quotes are counted once. When the record is
  of the same book, it also holds the book's realized P&L when it was written, so fills while risk
  was down count in the day; of another book they cannot be told from the new book's start, and the
  note says they are not counted. With no record of today, the day starts then (positions without a
  quote yet count from their entry).

The record is written to ``<run_dir>/risk.trading_day.json`` atomically whenever it changed, at
most once per risk heartbeat. A record that cannot be read is logged as an error and set aside; the
day then starts over (status shows why).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec

from common.fixed import to_str
from common.log import kv
from common.trading_state import keep_aside, write_atomic

log = logging.getLogger(__name__)

DAY_FILE = "risk.trading_day.json"
_NS = 1_000_000_000
_LIMIT = (1 << 62) - 1  # the check's money range (checks.LIMIT_CAP)
_MONEY = msgspec.Meta(ge=-_LIMIT, le=_LIMIT)  # money nanos


class DayRecord(msgspec.Struct, frozen=True, kw_only=True):
    day: date  # the trading day: the local date at its start
    realized: Annotated[int, _MONEY]  # the day's realized P&L when recorded
    unrealized_at_start: Annotated[int, _MONEY]  # the unrealized P&L the day started from
    ts_ns: int  # wall ns it was recorded
    note: str = ""  # why the day does not count from its true start, when it does not
    book: str = ""  # execution's positions book the realized figures are of ("": not known)
    book_realized: Annotated[int, _MONEY] = 0  # that book's realized P&L when recorded


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(DayRecord)


class TradingDay:
    """Owns which trading day it is and the baseline the day's P&L is counted from."""

    def __init__(self, timezone: str, starts_at: time, run_dir: Path) -> None:
        self.tz = ZoneInfo(timezone)
        self.starts_at = starts_at
        self.path = Path(run_dir) / DAY_FILE
        self.day: date | None = None  # None until begin()
        self.base_realized = 0  # money nanos: day P&L = total - base_realized - base_unrealized
        self.base_unrealized = 0
        self.note = ""
        self.next_start_ns = 0  # wall ns the next day starts
        self.book = ""  # execution's positions book the realized P&L is of ("": not known)
        self._saved: tuple[date, int, int, str, int] | None = None  # the figures last written
        self._write_failing = False

    @property
    def baseline(self) -> int:
        """The total P&L the day's P&L is counted from."""
        return self.base_realized + self.base_unrealized

    def day_of(self, wall_ns: int) -> date:
        """The trading day ``wall_ns`` belongs to: its local date, or the one before when earlier
        than the day's start time."""
        local = datetime.fromtimestamp(wall_ns / _NS, self.tz)
        return local.date() if local.time() >= self.starts_at else local.date() - timedelta(days=1)

    def start_ns(self, day: date) -> int:
        """Wall ns at which trading day ``day`` starts (its local start time, DST included)."""
        return int(datetime.combine(day, self.starts_at, self.tz).timestamp() * 1_000_000) * 1000

    def begin(self, wall_ns: int, total: int, realized: int, book: str = "") -> None:
        """At risk's start, once the P&L is known: the day resumes from the record when it is
        today's, else starts now. ``book``: the positions book ``realized`` is of."""
        today = self.day_of(wall_ns)
        record, note = self._load()
        self.book = book
        if record is not None and record.day == today:
            if book and record.book == book:
                # the same running figure: the fills since the record count in the day
                self._enter(
                    today, record.book_realized - record.realized, record.unrealized_at_start, record.note
                )
                missed = realized - record.book_realized
            else:
                self._enter(today, realized - record.realized, record.unrealized_at_start, record.note)
                missed = 0
                if record.book and book != record.book:
                    self.note = "positions book changed while risk was down: its fills then are not counted"
            log.info(
                "trading day resumed",
                extra=kv(day=str(today), realized_nanos=record.realized, realized_since_record_nanos=missed),
            )
        else:
            note = note or "risk started during the day: counted from then"
            self._enter(today, realized, total - realized, note)
            log.info("trading day started", extra=kv(day=str(today), note=self.note))

    def roll_if_due(self, wall_ns: int, total: int, realized: int) -> bool:
        """Start the next day when ``wall_ns`` has reached it; whether it did."""
        if self.day is None or wall_ns < self.next_start_ns:
            return False
        day = self.day_of(wall_ns)
        if day <= self.day:  # the clock went back across a day start: the day goes on
            return False
        self._enter(day, realized, total - realized, "")
        log.info("trading day rolled", extra=kv(day=str(day)))
        return True

    def rebase(self, total_before: int, total_after: int, book: str = "") -> None:
        """A new positions snapshot while the day runs. From the same book the change is fills not
        applied yet: trades. From another book the total jumped without trading: the day's P&L stays."""
        if book and book == self.book:
            return
        self.book = book
        self.base_realized += total_after - total_before

    def pnl(self, total: int) -> int:
        return total - self.baseline

    def record(self, wall_ns: int, realized: int) -> bytes | None:
        """The file's new content when it changed since the last write, else None."""
        if self.day is None:
            return None
        now = (self.day, realized - self.base_realized, self.base_unrealized, self.book, realized)
        if self._saved == now:
            return None
        self._saved = now
        doc = DayRecord(
            day=now[0], realized=now[1], unrealized_at_start=now[2], ts_ns=wall_ns, note=self.note,
            book=self.book, book_realized=realized,
        )  # fmt: skip
        return _enc.encode(doc) + b"\n"

    def save(self, data: bytes) -> None:
        """Write a ``record()`` (from a worker thread: it fsyncs). A failure is logged once until a
        write succeeds again, and retried at the next record."""
        try:
            write_atomic(self.path, data)
        except OSError as exc:
            self._saved = None
            if not self._write_failing:
                log.error(
                    "cannot write the trading day file", extra=kv(path=str(self.path), error=exc.strerror)
                )
            self._write_failing = True
            return
        if self._write_failing:
            log.warning("trading day file written again", extra=kv(path=str(self.path)))
        self._write_failing = False

    def status(self, total: int) -> dict[str, object]:
        return {
            "day": str(self.day) if self.day else None,
            "starts": f"{self.starts_at.isoformat('minutes')} {self.tz.key}",
            "day_pnl": to_str(self.pnl(total)) if self.day else None,
            "note": self.note,
        }

    def _enter(self, day: date, base_realized: int, base_unrealized: int, note: str) -> None:
        self.day = day
        self.base_realized = base_realized
        self.base_unrealized = base_unrealized
        self.note = note
        self.next_start_ns = self.start_ns(day + timedelta(days=1))

    def _load(self) -> tuple[DayRecord | None, str]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None, ""
        except OSError as exc:
            log.error("trading day file unreadable", extra=kv(path=str(self.path), error=exc.strerror))
            return None, f"trading day file unreadable ({exc.strerror}): the day started over"
        try:
            return _dec.decode(raw), ""
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            keep = keep_aside(self.path) or self.path
            log.error(
                "corrupt trading day file kept for inspection", extra=kv(path=str(keep), error=str(exc)[:200])
            )
            return None, "trading day file corrupt: the day started over"
