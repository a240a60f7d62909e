"""The venue's own control plane under /sim (no Alpaca auth): inject market events, steer the feed,
inject stream faults, read back what was sent.

Injections bypass the rate pacing: the frame is queued to subscribers at once and the reply carries
``sent_ns``, the wall-clock ns at which it was written to the socket(s) (the latest, if several;
null when nobody is subscribed), so a benchmark can time quote -> order.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter

from common.clock import wall_ns
from common.fixed import SCALE, to_fixed
from simulator.feed import FeedDriver
from simulator.market import L2Book, Market, MdEvent, book_event, feed_of, quote_event, trade_event
from simulator.md_stream import MdHub

INJECTIONS = Counter("zt_sim_injections_total", "Market events injected through /sim/inject", ["kind"])
SENT_WAIT_S = 2.0

DropHook = Callable[[], Awaitable[Any] | Any]


@dataclass
class Control:
    hub: MdHub
    feed: FeedDriver
    books: dict[str, L2Book]
    market: Market | None
    drop_trade_streams: DropHook | None = None


CONTROL: web.AppKey[Control] = web.AppKey("sim_control", Control)


class BadRequest(ValueError):
    pass


def _bad(text: str) -> web.Response:
    return web.json_response(
        {"code": 40010000, "message": text}, status=400, dumps=lambda o: orjson.dumps(o).decode()
    )


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    return doc


def _symbol(doc: dict[str, Any]) -> str:
    sym = doc.get("symbol")
    if not isinstance(sym, str) or not sym or sym != sym.strip():
        raise BadRequest("'symbol' must be a non-empty string")
    return sym


def _nanos(doc: dict[str, Any], field: str, positive: bool = True) -> int:
    value = doc.get(field)
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise BadRequest(f"'{field}' must be a number or numeric string")
    try:
        n = to_fixed(value)
    except ValueError:
        raise BadRequest(f"'{field}' is not a number: {value!r}") from None
    if n < 0 or (positive and n == 0):
        raise BadRequest(f"'{field}' must be {'> 0' if positive else '>= 0'}")
    return n


def _size(doc: dict[str, Any], field: str, symbol: str, positive: bool = True) -> int:
    n = _nanos(doc, field, positive)
    if feed_of(symbol) == "stocks" and n % SCALE:
        raise BadRequest(f"'{field}' must be whole shares for a stock")
    return n


def _levels(doc: dict[str, Any], field: str) -> list[tuple[int, int]]:
    raw = doc.get(field, [])
    if not isinstance(raw, list):
        raise BadRequest(f"'{field}' must be a list of [price, size]")
    out = []
    for i, lv in enumerate(raw):
        if not isinstance(lv, list | tuple) or len(lv) != 2:
            raise BadRequest(f"'{field}[{i}]' must be [price, size]")
        out.append((_nanos({"p": lv[0]}, "p"), _nanos({"s": lv[1]}, "s", positive=False)))
    return out


async def _send(ctl: Control, events: list[MdEvent], kind: str) -> web.Response:
    INJECTIONS.labels(kind).inc()
    futures = ctl.feed.deliver(events, track=True)
    sent: list[int] = []
    if futures:
        done, _ = await asyncio.wait(futures, timeout=SENT_WAIT_S)
        sent = [f.result() for f in done if not f.cancelled()]
    return web.json_response({"sent_ns": max(sent) if sent else None, "frames": len(sent)})


def _guarded(handler: Callable[[web.Request, Control], Awaitable[web.Response]]) -> Any:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request, request.app[CONTROL])
        except BadRequest as exc:
            return _bad(str(exc))

    return wrapped


# ---- injections ---------------------------------------------------------------------------------


async def inject_quote(request: web.Request, ctl: Control) -> web.Response:
    doc = await _body(request)
    sym = _symbol(doc)
    bid_px, ask_px = _nanos(doc, "bid_px"), _nanos(doc, "ask_px")
    bid_sz, ask_sz = _size(doc, "bid_sz", sym, False), _size(doc, "ask_sz", sym, False)
    if bid_px >= ask_px:
        raise BadRequest("'bid_px' must be below 'ask_px'")
    if ctl.market is not None:
        ctl.market.note_quote(sym, bid_px, bid_sz, ask_px, ask_sz)
    return await _send(ctl, [quote_event(sym, bid_px, bid_sz, ask_px, ask_sz, wall_ns())], "quote")


async def inject_trade(request: web.Request, ctl: Control) -> web.Response:
    doc = await _body(request)
    sym = _symbol(doc)
    px, sz = _nanos(doc, "price"), _size(doc, "size", sym)
    trade_id = ctl.market.next_trade_id() if ctl.market is not None else wall_ns()
    return await _send(ctl, [trade_event(sym, px, sz, trade_id, wall_ns())], "trade")


async def inject_book(request: web.Request, ctl: Control) -> web.Response:
    doc = await _body(request)
    sym = _symbol(doc)
    if feed_of(sym) != "crypto":
        raise BadRequest("order books exist for crypto symbols (BASE/QUOTE) only")
    bids, asks = _levels(doc, "bids"), _levels(doc, "asks")
    reset = doc.get("reset", False)
    if not isinstance(reset, bool):
        raise BadRequest("'reset' must be a boolean")
    book = ctl.books.setdefault(sym, L2Book())
    before = book.top()
    book.apply(bids, asks, reset)
    now = wall_ns()
    if reset:
        events = [book_event(sym, book.sorted_bids(), book.sorted_asks(), now, reset=True)]
    else:
        events = [book_event(sym, bids, asks, now, reset=False)]
    after = book.top()
    if after is not None and after != before:
        events.append(quote_event(sym, *after, now))
    return await _send(ctl, events, "book")


# ---- feed and faults ------------------------------------------------------------------------------


async def feed_pause(request: web.Request, ctl: Control) -> web.Response:
    ctl.feed.pause()
    return web.json_response({"paused": True, "rate": ctl.feed.rate})


async def feed_resume(request: web.Request, ctl: Control) -> web.Response:
    ctl.feed.resume()
    return web.json_response({"paused": False, "rate": ctl.feed.rate})


async def feed_rate(request: web.Request, ctl: Control) -> web.Response:
    doc = await _body(request)
    rate = doc.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1_000_000:
        raise BadRequest("'rate' must be a number of messages per second in [0, 1000000]")
    ctl.feed.set_rate(float(rate))
    return web.json_response({"paused": ctl.feed.paused, "rate": ctl.feed.rate})


async def md_log(request: web.Request, ctl: Control) -> web.Response:
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        raise BadRequest("'limit' must be an integer") from None
    frames = ctl.hub.recent_frames(max(0, limit))
    return web.Response(body=orjson.dumps({"frames": frames}), content_type="application/json")


async def streams_drop(request: web.Request, ctl: Control) -> web.Response:
    dropped = await ctl.hub.drop_all()
    trade = None
    if ctl.drop_trade_streams is not None:
        trade = ctl.drop_trade_streams()
        if inspect.isawaitable(trade):
            trade = await trade
    return web.json_response(
        {"md_dropped": dropped, "trade_dropped": trade if isinstance(trade, int) else None}
    )


async def streams_mute(request: web.Request, ctl: Control) -> web.Response:
    doc = await _body(request)
    seconds = doc.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise BadRequest("'seconds' must be a positive number")
    ctl.hub.mute(float(seconds))
    return web.json_response({"muted": True, "seconds": seconds})


async def streams_unmute(request: web.Request, ctl: Control) -> web.Response:
    ctl.hub.unmute()
    return web.json_response({"muted": False})


async def health(request: web.Request, ctl: Control) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "md_connections": ctl.hub.connections,
            "feed_paused": ctl.feed.paused,
            "rate": ctl.feed.rate,
            "muted": ctl.hub.muted,
            "mode": "replay" if ctl.feed.replay is not None else "synthetic",
            "replay_done": ctl.feed.replay_done,
            "messages_generated": ctl.feed.generated,
        }
    )


def add_control_routes(app: web.Application, ctl: Control) -> None:
    app[CONTROL] = ctl
    r = app.router
    r.add_post("/sim/inject/quote", _guarded(inject_quote))
    r.add_post("/sim/inject/trade", _guarded(inject_trade))
    r.add_post("/sim/inject/book", _guarded(inject_book))
    r.add_post("/sim/feed/pause", _guarded(feed_pause))
    r.add_post("/sim/feed/resume", _guarded(feed_resume))
    r.add_post("/sim/feed/rate", _guarded(feed_rate))
    r.add_get("/sim/md/log", _guarded(md_log))
    r.add_post("/sim/faults/streams/drop", _guarded(streams_drop))
    r.add_post("/sim/faults/streams/mute", _guarded(streams_mute))
    r.add_post("/sim/faults/streams/unmute", _guarded(streams_unmute))
    r.add_get("/sim/health", _guarded(health))
