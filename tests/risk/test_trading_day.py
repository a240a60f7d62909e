"""The trading day the daily loss limit counts: its start, its roll, and resuming after a restart."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from common.fixed import to_fixed
from services.risk.trading_day import DAY_FILE, TradingDay

NY = "America/New_York"


def ns(text: str) -> int:
    """Wall ns of an ISO time with its offset."""
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000_000


def usd(x: str) -> int:
    return to_fixed(x)


def save(day: TradingDay, wall_ns: int, realized: int) -> None:
    data = day.record(wall_ns, realized)
    assert data is not None
    day.save(data)


@pytest.mark.parametrize(
    ("wall", "starts_at", "expected"),
    [
        ("2026-11-30T23:59:59-05:00", time(0, 0), date(2026, 11, 30)),
        ("2026-12-01T00:00:00-05:00", time(0, 0), date(2026, 12, 1)),
        ("2026-12-01T03:59:59-05:00", time(4, 0), date(2026, 11, 30)),  # before 04:00: the day before
        ("2026-12-01T04:00:00-05:00", time(4, 0), date(2026, 12, 1)),
        ("2026-07-01T03:30:00+00:00", time(0, 0), date(2026, 6, 30)),  # 23:30 EDT
    ],
)
def test_the_day_a_time_belongs_to(tmp_path: Path, wall: str, starts_at: time, expected: date) -> None:
    assert TradingDay(NY, starts_at, tmp_path).day_of(ns(wall)) == expected


def test_a_day_starts_at_its_local_time_across_daylight_saving(tmp_path: Path) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path)
    assert day.start_ns(date(2026, 3, 8)) == ns("2026-03-08T00:00:00-05:00")  # EST
    assert day.start_ns(date(2026, 3, 9)) == ns("2026-03-09T00:00:00-04:00")  # EDT: 23 hours later
    assert day.start_ns(date(2026, 3, 9)) - day.start_ns(date(2026, 3, 8)) == 23 * 3600 * 10**9


def test_the_first_start_counts_the_day_from_then_and_a_new_day_from_zero(tmp_path: Path) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path)
    t0 = ns("2026-11-30T10:00:00-05:00")
    day.begin(t0, usd("-700"), usd("-500"))  # lifetime P&L when risk starts: the day counts from here
    assert day.pnl(usd("-750")) == usd("-50") and "started during the day" in day.note
    assert not day.roll_if_due(ns("2026-11-30T23:59:59-05:00"), usd("-900"), usd("-500"))
    assert day.roll_if_due(ns("2026-12-01T00:00:01-05:00"), usd("-900"), usd("-500"))
    assert day.day == date(2026, 12, 1) and day.pnl(usd("-900")) == 0 and day.note == ""
    assert day.pnl(usd("-1000")) == usd("-100")


def test_a_clock_stepping_back_across_the_start_keeps_the_day(tmp_path: Path) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path)
    day.begin(ns("2026-11-30T10:00:00-05:00"), 0, 0)
    assert day.roll_if_due(ns("2026-12-01T00:00:01-05:00"), usd("5"), 0)
    assert not day.roll_if_due(ns("2026-12-01T00:00:02-05:00"), usd("9"), 0)
    day.next_start_ns = 0  # as if the clock went back: a time of the previous day is seen
    assert not day.roll_if_due(ns("2026-11-30T23:59:59-05:00"), usd("9"), 0)
    assert day.day == date(2026, 12, 1) and day.pnl(usd("9")) == usd("4")


def test_a_restart_the_same_day_resumes_the_day_s_p_and_l_even_if_the_total_started_over(
    tmp_path: Path,
) -> None:
    first = TradingDay(NY, time(0, 0), tmp_path)
    first.begin(ns("2026-11-30T09:00:00-05:00"), usd("1000"), usd("1000"))  # 1000 realized before today
    save(first, ns("2026-11-30T11:00:00-05:00"), usd("-200"))  # 1200 lost realized today
    # every service restarted: execution's realized P&L starts over at 0; a position is 30 down
    again = TradingDay(NY, time(0, 0), tmp_path)
    again.begin(ns("2026-11-30T11:05:00-05:00"), usd("-30"), usd("0"))
    assert again.pnl(usd("-30")) == usd("-1230")
    assert again.pnl(usd("-80")) == usd("-1280")


def test_a_restart_on_the_same_book_counts_the_fills_while_risk_was_down(tmp_path: Path) -> None:
    first = TradingDay(NY, time(0, 0), tmp_path)
    first.begin(ns("2026-11-30T09:00:00-05:00"), usd("1000"), usd("1000"), book="j1.0")
    save(first, ns("2026-11-30T11:00:00-05:00"), usd("800"))  # 200 lost today
    # risk is down; execution realizes another 300 loss on the same book
    again = TradingDay(NY, time(0, 0), tmp_path)
    again.begin(ns("2026-11-30T11:05:00-05:00"), usd("500"), usd("500"), book="j1.0")
    assert again.pnl(usd("500")) == usd("-500")
    # on another book the figure in between cannot be told from the new book's start
    other = TradingDay(NY, time(0, 0), tmp_path)
    other.begin(ns("2026-11-30T11:05:00-05:00"), usd("40"), usd("40"), book="j2.0")
    assert other.pnl(usd("40")) == usd("-200") and "book changed" in other.note


def test_a_snapshot_of_the_same_book_moves_the_day_by_its_fills(tmp_path: Path) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path)
    day.begin(ns("2026-11-30T09:00:00-05:00"), 0, 0, book="j1.0")
    day.rebase(usd("-800"), usd("-900"), book="j1.0")  # a fill risk had not applied: a trade
    assert day.pnl(usd("-900")) == usd("-900")
    day.rebase(usd("-900"), usd("0"), book="j1.1")  # re-based on the venue: no trade
    assert day.pnl(usd("0")) == usd("-900")


def test_unrealized_p_and_l_is_counted_once_across_a_restart(tmp_path: Path) -> None:
    """Positions are valued at their entry until the next quote marks them: the record keeps the
    unrealized P&L the day started from, not a figure that already holds the marks."""
    first = TradingDay(NY, time(0, 0), tmp_path)
    first.begin(ns("2026-11-30T09:00:00-05:00"), usd("0"), usd("0"))  # flat marks at the start
    save(first, ns("2026-11-30T11:00:00-05:00"), usd("0"))  # no realized P&L; marks now -600
    again = TradingDay(NY, time(0, 0), tmp_path)
    again.begin(ns("2026-11-30T11:05:00-05:00"), usd("0"), usd("0"))  # no quote yet: valued at entry
    assert again.pnl(usd("0")) == 0
    assert again.pnl(usd("-600")) == usd("-600")  # the first quote marks it: counted once


def test_a_record_of_another_day_starts_today_at_zero(tmp_path: Path) -> None:
    first = TradingDay(NY, time(0, 0), tmp_path)
    first.begin(ns("2026-11-30T09:00:00-05:00"), 0, 0)
    save(first, ns("2026-11-30T15:00:00-05:00"), usd("-5000"))
    again = TradingDay(NY, time(0, 0), tmp_path)
    again.begin(ns("2026-12-01T09:00:00-05:00"), usd("-5000"), usd("-5000"))
    assert again.day == date(2026, 12, 1) and again.pnl(usd("-5000")) == 0


def test_a_positions_snapshot_jump_is_not_p_and_l(tmp_path: Path) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path)
    day.begin(ns("2026-11-30T09:00:00-05:00"), 0, 0)
    before = usd("-800")  # the day lost 800 so far
    day.rebase(before, usd("0"))  # execution restarted: its realized P&L is 0 again
    assert day.pnl(usd("0")) == usd("-800")


def test_the_record_is_written_only_when_the_day_s_p_and_l_changed(tmp_path: Path) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path)
    t = ns("2026-11-30T09:00:00-05:00")
    assert day.record(t, 0) is None  # not begun
    day.begin(t, 0, 0)
    assert day.record(t, usd("1")) is not None
    assert day.record(t + 1, usd("1")) is None
    assert day.record(t + 2, usd("2")) is not None


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"day": "2026-11-30", "realized": 1e400, "unrealized_at_start": 0, "ts_ns": 1}',
        b'{"day": "2026-11-30", "realized": -9223372036854775808, "unrealized_at_start": 0, "ts_ns": 1}',
        b'{"day": "2026-11-30", "realized": 0, "unrealized_at_start": 4611686018427387904, "ts_ns": 1}',
        b'{"day": "yesterday", "realized": 0, "unrealized_at_start": 0, "ts_ns": 1}',
        b'{"day": "2026-11-30", "realized": 0, "ts_ns": 1}',
        b"",
    ],
)
def test_a_corrupt_record_is_set_aside_and_the_day_resumes_from_zero_saying_why(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DAY_FILE).write_bytes(content)
    day = TradingDay(NY, time(0, 0), tmp_path)
    day.begin(ns("2026-11-30T09:00:00-05:00"), usd("-100"), usd("-100"))
    assert day.pnl(usd("-100")) == 0 and "corrupt" in day.note
    assert not (tmp_path / DAY_FILE).exists()
    assert [p.read_bytes() for p in tmp_path.glob(f"{DAY_FILE}.corrupt-*")] == [content]
    assert "corrupt trading day file" in caplog.text
    save(day, ns("2026-11-30T09:01:00-05:00"), usd("-100"))  # and the next record is written anew
    assert b'"2026-11-30"' in (tmp_path / DAY_FILE).read_bytes()


def test_an_unwritable_record_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = TradingDay(NY, time(0, 0), tmp_path / "gone")
    day.begin(ns("2026-11-30T09:00:00-05:00"), 0, 0)
    data = day.record(ns("2026-11-30T09:01:00-05:00"), usd("1"))
    assert data is not None
    day.save(data)  # the folder does not exist
    again = day.record(ns("2026-11-30T09:02:00-05:00"), usd("1"))
    assert again is not None  # not marked as saved: tried again
    day.save(again)
    assert caplog.text.count("cannot write the trading day file") == 1  # logged once while failing
    (tmp_path / "gone").mkdir()
    day.save(again)
    assert "trading day file written again" in caplog.text and (tmp_path / "gone" / DAY_FILE).exists()


def test_status_says_the_day_its_start_and_its_p_and_l(tmp_path: Path) -> None:
    day = TradingDay(NY, time(4, 0), tmp_path)
    assert day.status(0)["day"] is None
    day.begin(int(datetime(2026, 11, 30, 15, tzinfo=UTC).timestamp()) * 10**9, usd("10"), usd("4"))
    assert day.status(usd("7.5")) == {
        "day": "2026-11-30",
        "starts": "04:00 America/New_York",
        "day_pnl": "-2.5",
        "note": "risk started during the day: counted from then",
    }
