"""Clock and calendar of the simulated venue.

The simulator matches around the clock (like Alpaca's 24/7 test feed): its session is open unless
closed by hand (POST /sim/session/close, see simulator/exchange.py), and the clock reports that
state in ``is_open``. ``next_open`` / ``next_close`` are 13:30 / 20:00 UTC on weekdays (the regular
NYSE session in winter), chosen consistent with ``is_open`` as Alpaca's are: while open the next
close comes before the next open, while closed the next open comes first. The calendar lists every
weekday in the range with a 09:30-16:00 session (exchange-local times, as Alpaca sends them);
holidays are not modelled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulator.orders import rfc3339

_OPEN_UTC = (13, 30)
_CLOSE_UTC = (20, 0)
MAX_CALENDAR_DAYS = 3660


def _next_weekday_time(now: datetime, hour: int, minute: int) -> datetime:
    cand = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    while cand <= now or cand.weekday() >= 5:
        cand = (cand + timedelta(days=1)).replace(hour=hour, minute=minute)
    return cand


def clock_json(now_ns: int, is_open: bool = True) -> dict[str, Any]:
    now = datetime.fromtimestamp(now_ns // 1_000_000_000, UTC)
    if is_open:
        nxt_close = _next_weekday_time(now, *_CLOSE_UTC)
        nxt_open = _next_weekday_time(nxt_close, *_OPEN_UTC)
    else:
        nxt_open = _next_weekday_time(now, *_OPEN_UTC)
        nxt_close = _next_weekday_time(nxt_open, *_CLOSE_UTC)
    return {
        "timestamp": rfc3339(now_ns),
        "is_open": is_open,
        "next_open": nxt_open.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "next_close": nxt_close.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def calendar_json(start: date, end: date) -> list[dict[str, str]]:
    if end < start:
        return []
    days = min((end - start).days, MAX_CALENDAR_DAYS)
    out = []
    for i in range(days + 1):
        d = start + timedelta(days=i)
        if d.weekday() < 5:
            iso = d.isoformat()
            out.append(
                {
                    "date": iso,
                    "open": "09:30",
                    "close": "16:00",
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": (d + timedelta(days=1)).isoformat(),
                }
            )
    return out
