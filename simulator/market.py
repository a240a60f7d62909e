"""The venue's market: seeded price processes, L2 books, and capture replay.

Everything is int nanos internally (``common.fixed``: price and size scaled by 1e9). The wire needs
JSON/msgpack numbers, so a message carries ``nanos / 1e9`` (int/int division is correctly rounded:
19012 cents become exactly the float nearest 190.12); the exchange gets exact ``Decimal``s.

``Market.step(n, now_ns)`` is a pure function of the seed and the sequence of calls, so two markets
with the same seed and the same calls produce identical events.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from common.capture import CaptureFrame, parse_rfc3339_ns, read_capture
from common.config import SimConfig
from common.fixed import SCALE, to_decimal, to_fixed

TICK = 10_000_000  # 0.01 in nanos: the price increment of every synthetic symbol
CRYPTO_LOT = 100_000  # 0.0001 in nanos: the crypto size increment
SHARE = SCALE
MAX_SPREAD_TICKS = 8

# Alpaca message type -> subscription channel
CHANNEL_OF_TYPE = {
    "t": "trades",
    "q": "quotes",
    "b": "bars",
    "d": "dailyBars",
    "u": "updatedBars",
    "o": "orderbooks",
    "s": "statuses",
    "l": "lulds",
    "c": "corrections",
    "x": "cancelErrors",
}


def feed_of(symbol: str) -> str:
    """Alpaca crypto symbols are pairs (``BTC/USD``); everything else is a stock."""
    return "crypto" if "/" in symbol else "stocks"


def wire_num(nanos: int) -> float:
    return nanos / SCALE


# A walk revisits the same few hundred prices and sizes: their Decimals are made once (immutable, so
# shared), the cache emptied whenever it outgrows its bound.
_EXACT: dict[int, Decimal] = {}
_EXACT_MAX = 65_536


def exact(nanos: int) -> Decimal:
    d = _EXACT.get(nanos)
    if d is None:
        if nanos % SCALE == 0:
            d = Decimal(nanos // SCALE)
        elif nanos % TICK == 0:
            d = Decimal(nanos // TICK).scaleb(-2)
        else:
            d = to_decimal(nanos)
        if len(_EXACT) >= _EXACT_MAX:
            _EXACT.clear()
        _EXACT[nanos] = d
    return d


def _below(rng: random.Random, k: int) -> int:
    """An int in [0, k), from one ``random()`` call: ``randrange`` costs ~10 times more, and the
    float's 53 bits leave no bias that matters for k this small."""
    return int(rng.random() * k)


class MdEvent:
    """One market-data message. ``msg`` is Alpaca-shaped with ``"t"`` as int ns.

    ``venue_quote`` / ``venue_trade`` are the exact values the exchange is told about; the encoders
    in md_stream cache each message's encoded bytes in ``packed`` / ``json``.
    """

    __slots__ = ("channel", "feed", "json", "msg", "packed", "symbol", "venue_quote", "venue_trade")

    def __init__(
        self,
        feed: str,
        channel: str,
        symbol: str,
        msg: dict[str, Any],
        venue_quote: tuple[Decimal, Decimal, Decimal, Decimal] | None = None,
        venue_trade: tuple[Decimal, Decimal] | None = None,
    ) -> None:
        self.feed = feed
        self.channel = channel
        self.symbol = symbol
        self.msg = msg
        self.venue_quote = venue_quote
        self.venue_trade = venue_trade
        self.packed: bytes | None = None
        self.json: bytes | None = None

    @property
    def ts_ns(self) -> int:
        return int(self.msg["t"])

    def key(self) -> tuple[str, str, str, dict[str, Any]]:
        return (self.feed, self.channel, self.symbol, self.msg)

    def __repr__(self) -> str:
        return f"MdEvent({self.feed}, {self.channel}, {self.symbol}, {self.msg})"


# ---- message builders -------------------------------------------------------------------------


def quote_event(symbol: str, bid_px: int, bid_sz: int, ask_px: int, ask_sz: int, ts_ns: int) -> MdEvent:
    """A quote from nanos. Stock sizes are whole shares on the wire."""
    feed = feed_of(symbol)
    venue = (exact(bid_px), exact(bid_sz), exact(ask_px), exact(ask_sz))
    if feed == "stocks":
        msg = {
            "T": "q", "S": symbol, "bx": "V", "bp": wire_num(bid_px), "bs": bid_sz // SHARE,
            "ax": "V", "ap": wire_num(ask_px), "as": ask_sz // SHARE, "c": ["R"], "z": "C", "t": ts_ns,
        }  # fmt: skip
    else:
        msg = {
            "T": "q", "S": symbol, "bp": wire_num(bid_px), "bs": wire_num(bid_sz),
            "ap": wire_num(ask_px), "as": wire_num(ask_sz), "t": ts_ns,
        }  # fmt: skip
    return MdEvent(feed, "quotes", symbol, msg, venue_quote=venue)


def trade_event(symbol: str, px: int, sz: int, trade_id: int, ts_ns: int, taker: str = "B") -> MdEvent:
    feed = feed_of(symbol)
    if feed == "stocks":
        msg = {
            "T": "t", "S": symbol, "i": trade_id, "x": "V", "p": wire_num(px), "s": sz // SHARE,
            "c": ["@"], "z": "C", "t": ts_ns,
        }  # fmt: skip
    else:
        msg = {
            "T": "t",
            "S": symbol,
            "p": wire_num(px),
            "s": wire_num(sz),
            "t": ts_ns,
            "i": trade_id,
            "tks": taker,
        }
    return MdEvent(feed, "trades", symbol, msg, venue_trade=(exact(px), exact(sz)))


def book_event(
    symbol: str, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], ts_ns: int, reset: bool
) -> MdEvent:
    msg: dict[str, Any] = {
        "T": "o",
        "S": symbol,
        "t": ts_ns,
        "b": [{"p": wire_num(p), "s": wire_num(s)} for p, s in bids],
        "a": [{"p": wire_num(p), "s": wire_num(s)} for p, s in asks],
    }
    if reset:
        msg["r"] = True
    return MdEvent(feed_of(symbol), "orderbooks", symbol, msg)


# ---- L2 book ----------------------------------------------------------------------------------


class L2Book:
    """Price nanos -> size nanos per side. A size of 0 in an update deletes the level."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply(
        self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], reset: bool = False
    ) -> None:
        if reset:
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for px, sz in levels:
                if sz:
                    side[px] = sz
                else:
                    side.pop(px, None)

    def top(self) -> tuple[int, int, int, int] | None:
        """(bid_px, bid_sz, ask_px, ask_sz), or None while a side is empty."""
        if not self.bids or not self.asks:
            return None
        b = max(self.bids)
        a = min(self.asks)
        return b, self.bids[b], a, self.asks[a]

    def sorted_bids(self) -> list[tuple[int, int]]:
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> list[tuple[int, int]]:
        return sorted(self.asks.items())

    def snapshot(self, symbol: str, ts_ns: int) -> MdEvent:
        return book_event(symbol, self.sorted_bids(), self.sorted_asks(), ts_ns, reset=True)


def book_levels_from_wire(levels: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(to_fixed(lv["p"]), to_fixed(lv["s"])) for lv in levels]


# ---- bars ---------------------------------------------------------------------------------------


class _BarAcc:
    __slots__ = ("close", "high", "low", "n", "open", "pv", "volume")

    def __init__(self) -> None:
        self.n = 0
        self.open = self.high = self.low = self.close = 0
        self.volume = 0
        self.pv = 0  # sum of price nanos * size nanos, exact

    def add(self, px: int, sz: int) -> None:
        if self.n == 0:
            self.open = self.high = self.low = px
        elif px > self.high:
            self.high = px
        elif px < self.low:
            self.low = px
        self.close = px
        self.volume += sz
        self.pv += px * sz
        self.n += 1

    def message(self, kind: str, symbol: str, start_ns: int) -> dict[str, Any]:
        vwap = round(self.pv / self.volume / SCALE, 6) if self.volume else None
        volume: float | int = self.volume // SHARE if feed_of(symbol) == "stocks" else wire_num(self.volume)
        return {
            "T": kind, "S": symbol, "o": wire_num(self.open), "h": wire_num(self.high), "l": wire_num(self.low),
            "c": wire_num(self.close), "v": volume, "n": self.n, "vw": vwap, "t": start_ns,
        }  # fmt: skip


# ---- synthetic processes -------------------------------------------------------------------------


class _StockProcess:
    """A random walk of bid and ask in ticks (spread 1..MAX_SPREAD_TICKS), trades at the touch."""

    def __init__(self, symbol: str, rng: random.Random) -> None:
        self.symbol = symbol
        self.bid = rng.randint(2_000, 40_000) * TICK
        self.ask = self.bid + rng.randint(1, 3) * TICK
        self.bid_sz = rng.randint(1, 10) * 100 * SHARE
        self.ask_sz = rng.randint(1, 10) * 100 * SHARE

    def step(self, rng: random.Random, ts_ns: int, out: list[MdEvent], market: Market) -> None:
        if rng.random() < 0.75:
            move = _below(rng, 4)
            if move == 0 and self.bid + TICK < self.ask:
                self.bid += TICK
            elif move == 1 and self.bid > TICK and self.ask - self.bid < MAX_SPREAD_TICKS * TICK:
                self.bid -= TICK
            elif move == 2 and self.ask - TICK > self.bid:
                self.ask -= TICK
            elif move == 3 and self.ask - self.bid < MAX_SPREAD_TICKS * TICK:
                self.ask += TICK
            self.bid_sz = (_below(rng, 10) + 1) * 100 * SHARE
            self.ask_sz = (_below(rng, 10) + 1) * 100 * SHARE
            out.append(quote_event(self.symbol, self.bid, self.bid_sz, self.ask, self.ask_sz, ts_ns))
        else:
            px = self.ask if rng.random() < 0.5 else self.bid
            sz = (_below(rng, 300) + 1) * SHARE
            out.append(trade_event(self.symbol, px, sz, market.next_trade_id(), ts_ns))
            market.record_trade(self.symbol, px, sz)

    def set_quote(self, bid_px: int, bid_sz: int, ask_px: int, ask_sz: int) -> None:
        """Continue the walk from an injected quote, if it is on the tick grid."""
        if bid_px % TICK == 0 and ask_px % TICK == 0 and 0 < bid_px < ask_px and bid_sz % SHARE == 0:
            self.bid, self.ask = bid_px, ask_px
            self.bid_sz, self.ask_sz = bid_sz, ask_sz


_CRYPTO_START = {"BTC/USD": 60_000, "ETH/USD": 3_000, "SOL/USD": 150}


class _CryptoProcess:
    """An L2 book of ``depth`` levels a side; each step resizes a level, moves a touch or trades."""

    def __init__(self, symbol: str, rng: random.Random, depth: int, book: L2Book) -> None:
        self.symbol = symbol
        self.depth = depth
        self.book = book
        start = _CRYPTO_START.get(symbol, rng.randint(10, 5_000)) * 100 * TICK
        spread = rng.randint(1, 4) * TICK
        for i in range(depth):
            book.bids[start - i * TICK] = self._size(rng)
            book.asks[start + spread + i * TICK] = self._size(rng)

    @staticmethod
    def _size(rng: random.Random) -> int:
        return (_below(rng, 50_000) + 1) * CRYPTO_LOT

    def _refill(self, rng: random.Random, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Keep ``depth`` levels a side (after a touch moved or a level was eaten)."""
        book = self.book
        if not book.bids and not book.asks:
            return
        if not book.bids:
            px = min(book.asks) - TICK
            book.bids[px] = self._size(rng)
            bids.append((px, book.bids[px]))
        if not book.asks:
            px = max(book.bids) + TICK
            book.asks[px] = self._size(rng)
            asks.append((px, book.asks[px]))
        while len(book.bids) > self.depth:
            px = min(book.bids)
            del book.bids[px]
            bids.append((px, 0))
        while len(book.asks) > self.depth:
            px = max(book.asks)
            del book.asks[px]
            asks.append((px, 0))
        while len(book.bids) < self.depth and min(book.bids) > TICK:
            px = min(book.bids) - TICK
            book.bids[px] = self._size(rng)
            bids.append((px, book.bids[px]))
        while len(book.asks) < self.depth:
            px = max(book.asks) + TICK
            book.asks[px] = self._size(rng)
            asks.append((px, book.asks[px]))

    def step(self, rng: random.Random, ts_ns: int, out: list[MdEvent], market: Market) -> None:
        book = self.book
        before = book.top()
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        self._refill(rng, bids, asks)
        top = book.top() if bids or asks else before  # the refill changed nothing: the same top
        if top is None:
            return
        b, b_sz, a, a_sz = top
        r = rng.random()
        if r < 0.15:
            buy = rng.random() < 0.5
            px, avail = (a, a_sz) if buy else (b, b_sz)
            sz = min(avail, (_below(rng, 20_000) + 1) * CRYPTO_LOT)
            side, changes = (book.asks, asks) if buy else (book.bids, bids)
            left = avail - sz
            if left:
                side[px] = left
            else:
                del side[px]
            changes.append((px, left))
            out.append(trade_event(self.symbol, px, sz, market.next_trade_id(), ts_ns, "B" if buy else "S"))
            market.record_trade(self.symbol, px, sz)
        elif r < 0.45:
            move = _below(rng, 4)
            if move == 0 and b + TICK < a:  # bid improves
                book.bids[b + TICK] = self._size(rng)
                bids.append((b + TICK, book.bids[b + TICK]))
            elif move == 1 and a - TICK > b:  # ask improves
                book.asks[a - TICK] = self._size(rng)
                asks.append((a - TICK, book.asks[a - TICK]))
            elif move == 2 and a - b < MAX_SPREAD_TICKS * TICK and len(book.bids) > 1:  # bid retreats
                del book.bids[b]
                bids.append((b, 0))
            elif move == 3 and a - b < MAX_SPREAD_TICKS * TICK and len(book.asks) > 1:  # ask retreats
                del book.asks[a]
                asks.append((a, 0))
        else:
            side, changes = (book.bids, bids) if rng.random() < 0.5 else (book.asks, asks)
            levels = sorted(side)
            px = levels[_below(rng, len(levels))]
            side[px] = self._size(rng)
            changes.append((px, side[px]))
        self._refill(rng, bids, asks)
        if not bids and not asks:
            return
        out.append(book_event(self.symbol, _dedupe(bids), _dedupe(asks), ts_ns, reset=False))
        after = book.top()
        if after is not None and after != before:
            out.append(quote_event(self.symbol, *after, ts_ns))


def _dedupe(changes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Last change per price wins, in first-seen order."""
    if len(changes) < 2:
        return changes
    last: dict[int, int] = {}
    for px, sz in changes:
        last[px] = sz
    return list(last.items())


class Market:
    """Seeded synthetic market for ``stocks`` and ``crypto`` symbols."""

    def __init__(
        self,
        stocks: list[str],
        crypto: list[str],
        seed: int,
        book_depth: int = 10,
        bar_interval_s: float = 60.0,
    ) -> None:
        self._rng = random.Random(seed)
        self.books: dict[str, L2Book] = {}
        self._stocks = {s: _StockProcess(s, self._rng) for s in stocks}
        self._crypto: dict[str, _CryptoProcess] = {}
        for s in crypto:
            self.books[s] = L2Book()
            self._crypto[s] = _CryptoProcess(s, self._rng, book_depth, self.books[s])
        self._order: list[_StockProcess | _CryptoProcess] = [*self._stocks.values(), *self._crypto.values()]
        self._trade_id = 0
        self._bar_ns = max(1, round(bar_interval_s * 1e9))
        self._bar_start: int | None = None
        self._bars: dict[str, _BarAcc] = {}
        self._daily: dict[str, _BarAcc] = {}
        self._day_start = 0

    @classmethod
    def from_config(cls, cfg: SimConfig) -> Market:
        return cls(cfg.stocks, cfg.crypto, cfg.seed, cfg.book_depth, cfg.bar_interval_s)

    @property
    def symbols(self) -> list[str]:
        return [p.symbol for p in self._order]

    def next_trade_id(self) -> int:
        self._trade_id += 1
        return self._trade_id

    def record_trade(self, symbol: str, px: int, sz: int) -> None:
        self._bars.setdefault(symbol, _BarAcc()).add(px, sz)
        self._daily.setdefault(symbol, _BarAcc()).add(px, sz)

    def _close_bars(self, now_ns: int, out: list[MdEvent]) -> None:
        start = now_ns - now_ns % self._bar_ns
        if self._bar_start is None:
            self._bar_start = start
            self._day_start = now_ns - now_ns % (86_400 * SCALE)
            return
        if start <= self._bar_start:
            return
        for symbol, acc in self._bars.items():
            feed = feed_of(symbol)
            out.append(MdEvent(feed, "bars", symbol, acc.message("b", symbol, self._bar_start)))
            daily = self._daily[symbol]
            out.append(MdEvent(feed, "dailyBars", symbol, daily.message("d", symbol, self._day_start)))
        self._bars = {}
        self._bar_start = start

    def step(self, n: int, now_ns: int) -> list[MdEvent]:
        """At least ``n`` messages (plus any minute/daily bars now due), all stamped ``now_ns``."""
        out: list[MdEvent] = []
        self._close_bars(now_ns, out)
        if not self._order:
            return out
        goal = len(out) + n
        rng = self._rng
        order = self._order
        k = len(order)
        while len(out) < goal:
            order[_below(rng, k)].step(rng, now_ns, out, self)
        return out

    def opening_quotes(self, now_ns: int) -> list[MdEvent]:
        """The touch every symbol starts from: the venue can price orders before the first step."""
        out = [quote_event(p.symbol, p.bid, p.bid_sz, p.ask, p.ask_sz, now_ns) for p in self._stocks.values()]
        for symbol, book in self.books.items():
            top = book.top()
            if top is not None:
                out.append(quote_event(symbol, *top, now_ns))
        return out

    def note_quote(self, symbol: str, bid_px: int, bid_sz: int, ask_px: int, ask_sz: int) -> None:
        """An injected stock quote becomes the walk's new state."""
        proc = self._stocks.get(symbol)
        if proc is not None:
            proc.set_quote(bid_px, bid_sz, ask_px, ask_sz)


# ---- replay ---------------------------------------------------------------------------------------


class ReplaySource:
    """Frames of a capture file turned back into events; keeps the books for snapshots."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"replay file not found: {self.path}")
        self.frame_count = sum(1 for _ in read_capture(self.path))  # fail at start on a bad line
        self.books: dict[str, L2Book] = {}

    def frames(self) -> Iterator[CaptureFrame]:
        return read_capture(self.path)

    def events(self, frame: CaptureFrame) -> list[MdEvent]:
        out: list[MdEvent] = []
        for raw in frame.msgs:
            channel = CHANNEL_OF_TYPE.get(raw.get("T", ""))
            symbol = raw.get("S")
            if channel is None or not isinstance(symbol, str):
                continue
            msg = dict(raw)
            if isinstance(msg.get("t"), str):
                msg["t"] = parse_rfc3339_ns(msg["t"])
            ev = MdEvent(frame.feed, channel, symbol, msg)
            if channel == "quotes":
                ev.venue_quote = tuple(Decimal(str(msg[k])) for k in ("bp", "bs", "ap", "as"))  # type: ignore[assignment]
            elif channel == "trades":
                ev.venue_trade = (Decimal(str(msg["p"])), Decimal(str(msg["s"])))
            elif channel == "orderbooks":
                book = self.books.setdefault(symbol, L2Book())
                book.apply(
                    book_levels_from_wire(msg["b"]), book_levels_from_wire(msg["a"]), bool(msg.get("r"))
                )
            out.append(ev)
        return out
