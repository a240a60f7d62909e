"""Market-data capture files: written by the market_data service, replayed by the simulator.

Format: UTF-8 JSON lines, one received WebSocket frame per line, in receive order::

    {"recv_ns": 1732233600123456789, "feed": "stocks", "msgs": [{"T": "q", "S": "AAPL", ...}, ...]}

- ``recv_ns``: int, local wall-clock nanoseconds when the frame was received.
- ``feed``: ``"stocks"`` or ``"crypto"``.
- ``msgs``: the frame's Alpaca-shaped messages exactly as the venue sent them (a frame is always a
  list), except that every ``"t"`` is an RFC 3339 string with nanoseconds
  (``"2024-11-21T14:30:00.123456789Z"``), whatever the wire encoding was. Prices and sizes stay as
  the venue's JSON numbers.

Lines are buffered (no fsync per frame); ``flush()`` pushes them to the OS. A malformed line makes
``read_capture`` raise ``CaptureFormatError`` naming the file and line number.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import msgpack
import orjson

FEEDS = ("stocks", "crypto")
Feed = Literal["stocks", "crypto"]

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d{2}:\d{2})"
)


class CaptureFormatError(ValueError):
    """A capture line that is not a valid frame; the message names the file and line."""


class CaptureFrame:
    __slots__ = ("feed", "msgs", "recv_ns")

    def __init__(self, recv_ns: int, feed: Feed, msgs: list[dict[str, Any]]) -> None:
        self.recv_ns = recv_ns
        self.feed = feed
        self.msgs = msgs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CaptureFrame):
            return NotImplemented
        return (self.recv_ns, self.feed, self.msgs) == (other.recv_ns, other.feed, other.msgs)

    def __repr__(self) -> str:
        return f"CaptureFrame(recv_ns={self.recv_ns}, feed={self.feed!r}, msgs={len(self.msgs)})"


# ---- RFC 3339 with nanoseconds ------------------------------------------------------------------

_prefix_cache: tuple[int, str] = (-1, "")


def format_rfc3339_ns(ns: int) -> str:
    """``1732233600123456789`` -> ``"2024-11-22T00:00:00.123456789Z"`` (UTC, always 9 digits)."""
    global _prefix_cache
    sec, frac = divmod(ns, 1_000_000_000)
    cached_sec, prefix = _prefix_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _prefix_cache = (sec, prefix)
    return f"{prefix}.{frac:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """RFC 3339 (``Z`` or offset, 0-9 fractional digits; more are truncated) -> int ns since epoch."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    date, hh, mm, ss, frac, zone = m.groups()
    y, mo, d = (int(p) for p in date.split("-"))
    sec = calendar.timegm((y, mo, d, int(hh), int(mm), int(ss), 0, 0, 0))
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        sec -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return sec * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def _timestamp_to_text(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):
        return format_rfc3339_ns(value.to_unix_nano())
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        delta = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return format_rfc3339_ns((delta // dt.timedelta(microseconds=1)) * 1000)
    return value


# ---- writing ------------------------------------------------------------------------------------


class CaptureWriter:
    """Appends frames to ``path`` (created with its parent directory). Not thread-safe."""

    def __init__(self, path: str | Path, buffer_bytes: int = 1 << 20) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(self.path, "ab", buffering=buffer_bytes)
        self.frames_written = 0

    def write_frame(self, feed: str, recv_ns: int, msgs: list[dict[str, Any]]) -> None:
        if self._file is None:
            raise ValueError(f"capture file {self.path} is closed")
        if feed not in FEEDS:
            raise ValueError(f"feed must be one of {FEEDS}, got {feed!r}")
        out = []
        for msg in msgs:
            t = msg.get("t")
            if t is not None and not isinstance(t, str):
                msg = {**msg, "t": _timestamp_to_text(t)}
            out.append(msg)
        line = orjson.dumps({"recv_ns": int(recv_ns), "feed": feed, "msgs": out}, default=_timestamp_to_text)
        self._file.write(line + b"\n")
        self.frames_written += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- reading ------------------------------------------------------------------------------------


def _parse_line(raw: bytes, where: str) -> CaptureFrame:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CaptureFormatError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CaptureFormatError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    recv_ns, feed, msgs = doc.get("recv_ns"), doc.get("feed"), doc.get("msgs")
    if not isinstance(recv_ns, int) or isinstance(recv_ns, bool):
        raise CaptureFormatError(f"{where}: 'recv_ns' must be an integer")
    if feed not in FEEDS:
        raise CaptureFormatError(f"{where}: 'feed' must be one of {FEEDS}, got {feed!r}")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
        raise CaptureFormatError(f"{where}: 'msgs' must be a list of objects")
    for m in msgs:
        t = m.get("t")
        if t is not None and not isinstance(t, str):
            raise CaptureFormatError(f"{where}: 't' must be an RFC 3339 string, got {t!r}")
    return CaptureFrame(recv_ns, feed, msgs)


def read_capture(path: str | Path) -> Iterator[CaptureFrame]:
    """Yield the frames of a capture file in order; blank lines are skipped."""
    p = Path(path)
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if raw.strip():
                yield _parse_line(raw, f"{p}:{lineno}")
