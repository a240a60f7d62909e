"""Decoded Alpaca records of one frame -> wire messages grouped by topic, plus the L2 books.

One frame in, one batch per topic out (``{topic: [msgs]}``), so the service publishes once per topic
per frame. Order-book messages of a frame are collected per symbol and applied in ONE numba call
per symbol; a ``Book`` with the top levels is emitted after the frame's deltas.

Every number is range-checked here, the edge where it enters (``common.bounds``): prices and sizes
in [0, 2^62] nanos, timestamps in [2000-01-01, now + 1 day]. An out-of-range message is rejected
(``FrameResult.errors``, counted in ``zt_md_rejected_total{feed,reason}``), never the frame or the
feed, so nothing downstream (the wire encoder, strategies, numba) ever sees such a value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import bounds, topics, wire
from common.clock import wall_ns
from services.market_data import decode as d
from services.market_data.book import ASK, BID, L2Book
from services.market_data.metrics import BOOK_LEVELS_DROPPED, REJECTED

QuoteRec = d.QuoteRec
BookRec = d.BookRec
Quote = wire.Quote
NS = d.NS
MIN_TS = bounds.MIN_VENUE_TS_NS
_TS64 = struct.Struct(">HQ").unpack  # a msgpack timestamp-64: 0xD7 0xFF, then 30-bit ns | 34-bit seconds
_TS64_SECONDS = (1 << 34) - 1
# Below this many units a venue number converts as ``round(x * 1e9)`` with no further check: it is
# decode.to_nanos's exact range, and far inside common.bounds' limits.
_FAST = d.FLOAT_EXACT_LIMIT
_MIN_LEVEL_PX = 1e-9  # from here up a level's price is at least 1 nano; below, the checked path judges

_Handler = Callable[[Any, int, "FrameResult"], None]
Batches = dict[bytes, list[wire.Message]]  # type: ignore[valid-type]


@dataclass(slots=True)
class FrameResult:
    batches: Batches = field(default_factory=dict)
    controls: list[d.SuccessRec | d.ErrorRec | d.SubscriptionRec] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # message type -> n (data messages)
    errors: list[str] = field(default_factory=list)  # one entry per malformed message


@dataclass(slots=True)
class _BookBatch:
    deltas: list[int] = field(default_factory=list)  # side, price, size, side, price, size, ...
    reset: bool = False
    exch_ns: int = 0


class Normalizer:
    """Stateful per feed: owns the L2 books of that feed's symbols."""

    def __init__(self, book_capacity: int, book_depth: int, feed: str = "") -> None:
        self.feed = feed
        self.rejected: dict[str, int] = {}  # reason -> messages rejected for a value out of range
        self.book_levels_dropped = 0  # levels lost because a book side was at capacity
        self._now_ns = 0
        self.book_capacity = book_capacity
        self.book_depth = book_depth
        self.books: dict[str, L2Book] = {}
        self._topic_cache: dict[tuple[bytes, str], bytes] = {}
        self._quote_topics: dict[str, bytes] = {}
        self._handlers: dict[type, tuple[_Handler, str]] = {
            d.TradeRec: (self._trade, "trade"),
            d.BarRec: (self._bar, "bar"),
            d.UpdatedBarRec: (self._bar, "bar"),
        }

    def frame(self, data: bytes, recv_ns: int) -> FrameResult:
        """Normalize one WS frame. Raises ``decode.FrameError`` if it is not an array at all."""
        records, errors = d.decode_frame(data)
        result = FrameResult(errors=errors)
        pending_books: dict[str, _BookBatch] = {}
        handlers = self._handlers
        counts = result.counts
        batches = result.batches
        quote_topics = self._quote_topics
        self._now_ns = now_ns = wall_ns()
        max_ts = now_ns + bounds.MAX_AHEAD_NS
        quotes = book_msgs = 0
        for rec in records:
            cls = type(rec)
            try:
                if cls is QuoteRec or cls is BookRec:
                    # The hot paths, inlined: a timestamp-64 in range and numbers in [0, 4e6) units
                    # convert here; anything else takes the checked per-value path, which raises for
                    # what is out of range.
                    t = rec.t
                    exch_ns = 0
                    if len(t) == 10:
                        head, v = _TS64(t)
                        if head == 0xD7FF:
                            exch_ns = (v & _TS64_SECONDS) * NS + (v >> 34)
                    if not MIN_TS <= exch_ns <= max_ts:
                        exch_ns = self._ts(t)
                    sym = rec.S
                    if cls is BookRec:
                        # Its levels join the symbol's batch for this frame; a bad level raises and
                        # takes back what this message appended, so no half message applies. A
                        # snapshot (r: true) starts a batch that resets the book: deltas earlier in
                        # the frame no longer matter.
                        prev = pending_books.get(sym)
                        book = prev if prev is not None and not rec.r else _BookBatch(reset=rec.r)
                        pending_books[sym] = book
                        deltas = book.deltas
                        mark = len(deltas)
                        try:
                            for side, levels in ((BID, rec.b), (ASK, rec.a)):
                                for lv in levels:
                                    p, s = lv.p, lv.s
                                    if _MIN_LEVEL_PX <= p < _FAST and 0.0 <= s < _FAST:
                                        deltas += (side, round(p * 1e9), round(s * 1e9))
                                    else:
                                        deltas += (side, _level_px(p), _sz(s, "s"))
                        except BaseException:
                            if book is prev:
                                del deltas[mark:]
                            elif prev is None:
                                del pending_books[sym]
                            else:
                                pending_books[sym] = prev
                            raise
                        book.exch_ns = exch_ns
                        book_msgs += 1
                        continue
                    bp, bs, ap, az = rec.bp, rec.bs, rec.ap, rec.as_
                    if 0.0 <= bp < _FAST and 0.0 <= bs < _FAST and 0.0 <= ap < _FAST and 0.0 <= az < _FAST:
                        bp, bs, ap, az = round(bp * 1e9), round(bs * 1e9), round(ap * 1e9), round(az * 1e9)
                    else:
                        bp, bs, ap, az = _px(bp, "bp"), _sz(bs, "bs"), _px(ap, "ap"), _sz(az, "as")
                    q = Quote(
                        symbol=sym,
                        bid_px=bp,
                        bid_sz=bs,
                        ask_px=ap,
                        ask_sz=az,
                        exch_ns=exch_ns,
                        recv_ns=recv_ns,
                    )
                    topic = quote_topics.get(sym)
                    if topic is None:
                        topic = quote_topics[sym] = topics.sym(topics.MD_QUOTE, sym)
                    batch = batches.get(topic)
                    if batch is None:
                        batches[topic] = [q]
                    else:
                        batch.append(q)
                    quotes += 1
                    continue
                entry = handlers.get(cls)
                if entry is None:
                    if isinstance(rec, d.SuccessRec | d.ErrorRec | d.SubscriptionRec):
                        result.controls.append(rec)
                    else:
                        counts["ignored"] = counts.get("ignored", 0) + 1
                    continue
                handler, kind = entry
                handler(rec, recv_ns, result)
            except bounds.OutOfRange as exc:
                self._reject(exc.reason)
                result.errors.append(f"{cls.__name__}: {exc}"[:200])
                continue
            except (ValueError, OverflowError, TypeError) as exc:
                result.errors.append(f"{cls.__name__}: {exc}"[:200])
                continue
            counts[kind] = counts.get(kind, 0) + 1
        if quotes:
            counts["quote"] = counts.get("quote", 0) + quotes
        if book_msgs:
            counts["orderbook"] = counts.get("orderbook", 0) + book_msgs
        for symbol, batch in pending_books.items():
            self._flush_book(symbol, batch, recv_ns, result)
        return result

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        REJECTED.labels(self.feed, reason).inc()

    def _ts(self, raw: Any) -> int:
        if len(raw) == 10:  # a timestamp-64, what Alpaca sends: decode.ts_ns's first case, inlined
            head, v = _TS64(raw)
            if head == 0xD7FF:
                ns = (v & _TS64_SECONDS) * NS + (v >> 34)
                if MIN_TS <= ns <= self._now_ns + bounds.MAX_AHEAD_NS:
                    return ns
        return bounds.venue_ts(d.ts_ns(raw), "t", self._now_ns)

    def _topic(self, prefix: bytes, symbol: str) -> bytes:
        key = (prefix, symbol)
        t = self._topic_cache.get(key)
        if t is None:
            t = self._topic_cache[key] = topics.sym(prefix, symbol)
        return t

    def _add(self, result: FrameResult, prefix: bytes, symbol: str, msg: wire.Message) -> None:  # type: ignore[valid-type]
        topic = self._topic(prefix, symbol)
        batch = result.batches.get(topic)
        if batch is None:
            result.batches[topic] = [msg]
        else:
            batch.append(msg)

    def _trade(self, r: d.TradeRec, recv_ns: int, result: FrameResult) -> None:
        t = wire.Trade(
            symbol=r.S,
            px=_px(r.p, "p"),
            sz=_sz(r.s, "s"),
            trade_id=bounds.count(r.i, "i"),
            exch_ns=self._ts(r.t),
            recv_ns=recv_ns,
        )
        self._add(result, topics.MD_TRADE, r.S, t)

    def _bar(self, r: d.BarRec, recv_ns: int, result: FrameResult) -> None:
        b = wire.Bar(
            symbol=r.S,
            open=_px(r.o, "o"),
            high=_px(r.h, "h"),
            low=_px(r.l, "l"),
            close=_px(r.c, "c"),
            volume=_sz(r.v, "v"),
            vwap=_px(r.vw, "vw") if r.vw is not None else 0,
            trades=bounds.count(r.n or 0, "n"),
            start_ns=self._ts(r.t),
            recv_ns=recv_ns,
        )
        self._add(result, topics.MD_BAR, r.S, b)

    def _flush_book(self, symbol: str, batch: _BookBatch, recv_ns: int, result: FrameResult) -> None:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = L2Book(symbol, self.book_capacity)
        dropped, bids, asks = book.apply_packed_top(
            np.array(batch.deltas, dtype=np.int64), batch.reset, self.book_depth
        )
        if dropped:
            self.book_levels_dropped += dropped
            BOOK_LEVELS_DROPPED.labels(self.feed).inc(dropped)
        msg = wire.Book(symbol=symbol, bids=bids, asks=asks, exch_ns=batch.exch_ns, recv_ns=recv_ns)
        self._add(result, topics.MD_BOOK, symbol, msg)


# A venue float beyond this many units is out of range whatever it is: refused before it becomes nanos.
_MAX_UNITS = bounds.MAX_NANOS / 1e9


def _in_range(x: int | float, name: str, reason: str) -> int:
    if not -1.0 < x < _MAX_UNITS:  # also refuses NaN; -1 < x lets the exact check below judge x < 0
        raise bounds.OutOfRange(reason, name, x)
    return bounds.nanos(d.to_nanos(x), name, reason)


def _px(x: int | float, name: str) -> int:
    return _in_range(x, name, "price")


def _level_px(p: int | float) -> int:
    """A book level's price: in range and not zero (a level at price 0 is not a level)."""
    px = _px(p, "p")
    if px == 0:
        raise bounds.OutOfRange("price", "book level p", p)
    return px


def _sz(x: int | float, name: str) -> int:
    return _in_range(x, name, "size")
