"""Decoded Alpaca records of one frame -> wire messages grouped by topic, plus the L2 books.

One frame in, one batch per topic out (``{topic: [msgs]}``), so the service publishes once per topic
per frame. Order-book messages of a frame are collected per symbol and applied in ONE numba call
per symbol; a ``Book`` with the top levels is emitted after the frame's deltas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import topics, wire
from services.market_data import decode as d
from services.market_data.book import ASK, BID, L2Book

_Handler = Callable[[Any, int, "FrameResult", "dict[str, _BookBatch]"], None]
Batches = dict[bytes, list[wire.Message]]  # type: ignore[valid-type]


@dataclass(slots=True)
class FrameResult:
    batches: Batches = field(default_factory=dict)
    controls: list[d.SuccessRec | d.ErrorRec | d.SubscriptionRec] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # message type -> n (data messages)
    errors: list[str] = field(default_factory=list)  # one entry per malformed message


@dataclass(slots=True)
class _BookBatch:
    sides: list[int] = field(default_factory=list)
    prices: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    reset: bool = False
    exch_ns: int = 0


class Normalizer:
    """Stateful per feed: owns the L2 books of that feed's symbols."""

    def __init__(self, book_capacity: int, book_depth: int) -> None:
        self.book_capacity = book_capacity
        self.book_depth = book_depth
        self.books: dict[str, L2Book] = {}
        self._topic_cache: dict[tuple[bytes, str], bytes] = {}
        self._handlers: dict[type, tuple[_Handler, str]] = {
            d.QuoteRec: (self._quote, "quote"),
            d.TradeRec: (self._trade, "trade"),
            d.BarRec: (self._bar, "bar"),
            d.UpdatedBarRec: (self._bar, "bar"),
            d.BookRec: (self._book_delta, "orderbook"),
        }

    def frame(self, data: bytes, recv_ns: int) -> FrameResult:
        """Normalize one WS frame. Raises ``decode.FrameError`` if it is not an array at all."""
        records, errors = d.decode_frame(data)
        result = FrameResult(errors=errors)
        pending_books: dict[str, _BookBatch] = {}
        handlers = self._handlers
        counts = result.counts
        for rec in records:
            entry = handlers.get(type(rec))
            if entry is None:
                if isinstance(rec, d.SuccessRec | d.ErrorRec | d.SubscriptionRec):
                    result.controls.append(rec)
                else:
                    counts["ignored"] = counts.get("ignored", 0) + 1
                continue
            handler, kind = entry
            try:
                handler(rec, recv_ns, result, pending_books)
            except (ValueError, OverflowError, TypeError) as exc:
                result.errors.append(f"{type(rec).__name__}: {exc}"[:200])
                continue
            counts[kind] = counts.get(kind, 0) + 1
        for symbol, batch in pending_books.items():
            self._flush_book(symbol, batch, recv_ns, result)
        return result

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

    def _quote(self, r: d.QuoteRec, recv_ns: int, result: FrameResult, _: dict[str, _BookBatch]) -> None:
        q = wire.Quote(
            symbol=r.S,
            bid_px=_non_negative(d.to_nanos(r.bp), "bp"),
            bid_sz=_non_negative(d.to_nanos(r.bs), "bs"),
            ask_px=_non_negative(d.to_nanos(r.ap), "ap"),
            ask_sz=_non_negative(d.to_nanos(r.as_), "as"),
            exch_ns=d.ts_ns(r.t),
            recv_ns=recv_ns,
        )
        self._add(result, topics.MD_QUOTE, r.S, q)

    def _trade(self, r: d.TradeRec, recv_ns: int, result: FrameResult, _: dict[str, _BookBatch]) -> None:
        t = wire.Trade(
            symbol=r.S,
            px=_non_negative(d.to_nanos(r.p), "p"),
            sz=_non_negative(d.to_nanos(r.s), "s"),
            trade_id=r.i,
            exch_ns=d.ts_ns(r.t),
            recv_ns=recv_ns,
        )
        self._add(result, topics.MD_TRADE, r.S, t)

    def _bar(self, r: d.BarRec, recv_ns: int, result: FrameResult, _: dict[str, _BookBatch]) -> None:
        b = wire.Bar(
            symbol=r.S,
            open=d.to_nanos(r.o),
            high=d.to_nanos(r.h),
            low=d.to_nanos(r.l),
            close=d.to_nanos(r.c),
            volume=_non_negative(d.to_nanos(r.v), "v"),
            vwap=d.to_nanos(r.vw) if r.vw is not None else 0,
            trades=r.n or 0,
            start_ns=d.ts_ns(r.t),
            recv_ns=recv_ns,
        )
        self._add(result, topics.MD_BAR, r.S, b)

    def _book_delta(
        self, r: d.BookRec, recv_ns: int, result: FrameResult, pending: dict[str, _BookBatch]
    ) -> None:
        # Convert everything first: a bad level must not leave half a message applied.
        exch_ns = d.ts_ns(r.t)
        sides: list[int] = []
        prices: list[int] = []
        sizes: list[int] = []
        for side, levels in ((BID, r.b), (ASK, r.a)):
            for lv in levels:
                px = d.to_nanos(lv.p)
                sz = d.to_nanos(lv.s)
                if px <= 0 or sz < 0 or px >= _INT64_MAX or sz >= _INT64_MAX:
                    raise ValueError(f"bad book level p={lv.p!r} s={lv.s!r}")
                sides.append(side)
                prices.append(px)
                sizes.append(sz)
        batch = pending.get(r.S)
        if batch is None or r.r:
            # A snapshot wipes the book, so deltas earlier in this frame no longer matter.
            batch = pending[r.S] = _BookBatch(reset=r.r)
        batch.sides += sides
        batch.prices += prices
        batch.sizes += sizes
        batch.exch_ns = exch_ns

    def _flush_book(self, symbol: str, batch: _BookBatch, recv_ns: int, result: FrameResult) -> None:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = L2Book(symbol, self.book_capacity)
        book.apply(
            np.array(batch.sides, dtype=np.int8),
            np.array(batch.prices, dtype=np.int64),
            np.array(batch.sizes, dtype=np.int64),
            batch.reset,
        )
        bids, asks = book.top(self.book_depth)
        msg = wire.Book(symbol=symbol, bids=bids, asks=asks, exch_ns=batch.exch_ns, recv_ns=recv_ns)
        self._add(result, topics.MD_BOOK, symbol, msg)


_INT64_MAX = 2**63 - 1


def _non_negative(v: int, name: str) -> int:
    if v < 0 or v >= _INT64_MAX:
        raise ValueError(f"{name} out of range")
    return v
