"""Alpaca market-data WebSockets: stocks at /v2/{iex,sip,test}, crypto at /v1beta3/crypto/us.

Protocol (Alpaca's, as alpaca-py 0.44 speaks it; docs/architecture.md, "The venue"): greeting, auth by message or upgrade
headers, additive subscribe/unsubscribe acked with the full set, batched data frames. msgpack
binary frames (``t`` as msgpack Timestamp) unless the upgrade's Content-Type is
``application/json`` (text frames, ``t`` as an RFC 3339 ns string).

Each message is encoded once per encoding and cached on the event; a frame is an array header plus
the concatenated encoded messages, built once per distinct (encoding, message subset) and shared
by every connection that wants that subset. Each connection has its own bounded outbox drained by
its own writer task, so a slow client only ever stalls itself; past the bound it gets 407 and is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import msgpack
import orjson
from aiohttp import WSMsgType, web
from prometheus_client import Counter, Gauge

from common.capture import format_rfc3339_ns
from common.clock import wall_ns
from common.config import SimConfig
from common.log import kv
from simulator.market import L2Book, MdEvent

log = logging.getLogger("simulator.md")

STOCK_PATHS = {"/v2/iex": "iex", "/v2/sip": "sip", "/v2/test": "test"}
CRYPTO_PATHS = {"/v1beta3/crypto/us": "crypto"}

# Channels a client may subscribe to, in ack order; corrections/cancelErrors follow trades.
STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
CRYPTO_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
STOCK_ACK_KEYS = (*STOCK_CHANNELS, "corrections", "cancelErrors")
FOLLOW_TRADES = ("corrections", "cancelErrors")

MD_MESSAGES = Counter("zt_sim_md_messages_total", "Market-data messages written to clients", ["feed"])
MD_FRAMES = Counter("zt_sim_md_frames_total", "Market-data frames written to clients", ["feed"])
MD_CONNECTIONS = Gauge("zt_sim_md_connections", "Open market-data connections", ["feed"])
MD_DISCONNECTS = Counter("zt_sim_md_disconnects_total", "Connections closed by the venue", ["reason"])

_conn_ids = itertools.count(1)
_packer = msgpack.Packer()


# ---- encoding ---------------------------------------------------------------------------------


def _packed(ev: MdEvent) -> bytes:
    data = ev.packed
    if data is None:
        msg = dict(ev.msg)
        msg["t"] = msgpack.Timestamp.from_unix_nano(msg["t"])
        data = ev.packed = _packer.pack(msg)
    return data


def _json(ev: MdEvent) -> bytes:
    data = ev.json
    if data is None:
        msg = dict(ev.msg)
        msg["t"] = format_rfc3339_ns(msg["t"])
        data = ev.json = orjson.dumps(msg)
    return data


def _msgpack_array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def encode_frame(events: list[MdEvent], use_json: bool) -> bytes:
    if use_json:
        return b"[" + b",".join([_json(ev) for ev in events]) + b"]"
    return _msgpack_array_header(len(events)) + b"".join([_packed(ev) for ev in events])


def encode_control(msgs: list[dict[str, Any]], use_json: bool) -> bytes:
    return orjson.dumps(msgs) if use_json else msgpack.packb(msgs)


def error_msg(code: int, text: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": text}


# ---- one connection -----------------------------------------------------------------------------


class MdConnection:
    """State and outbox of one market-data WebSocket."""

    def __init__(
        self,
        hub: MdHub,
        ws: web.WebSocketResponse,
        request: web.Request,
        path: str,
        feed: str,
        use_json: bool,
    ) -> None:
        self.id = next(_conn_ids)
        self.hub = hub
        self.ws = ws
        self.request = request
        self.path = path
        self.feed = feed
        self.use_json = use_json
        self.authenticated = False
        self.key_id: str | None = None
        channels = STOCK_CHANNELS if feed == "stocks" else CRYPTO_CHANNELS
        self.subs: dict[str, dict[str, None]] = {ch: {} for ch in channels}  # dicts as ordered sets
        if feed == "stocks":
            for ch in FOLLOW_TRADES:
                self.subs[ch] = self.subs["trades"]
        self.closing = False
        self._queue: deque[tuple[bytes, list[MdEvent] | None, asyncio.Future[int] | None]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while the outbox is empty
        self._writer = asyncio.get_running_loop().create_task(self._drain())

    # -- outbound

    def enqueue(
        self, data: bytes, events: list[MdEvent] | None = None, fut: asyncio.Future[int] | None = None
    ) -> None:
        if self.closing:
            if fut is not None and not fut.done():
                fut.cancel()
            return
        if len(self._queue) >= self.hub.queue_max:
            self._slow_client()
            if fut is not None:
                fut.cancel()
            return
        self._queue.append((data, events, fut))
        self._idle.clear()
        self._wake.set()

    def send_control(self, *msgs: dict[str, Any]) -> None:
        self.enqueue(encode_control(list(msgs), self.use_json))

    async def _drain(self) -> None:
        queue = self._queue
        opcode = WSMsgType.TEXT if self.use_json else WSMsgType.BINARY
        feed = self.feed
        frames, messages, ring = MD_FRAMES.labels(feed), MD_MESSAGES.labels(feed), self.hub.md_log
        try:
            while True:
                if not queue:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                data, events, fut = queue.popleft()
                sent_ns = wall_ns()
                await self.ws.send_frame(data, opcode)
                if events is not None:
                    frames.inc()
                    messages.inc(len(events))
                    ring.append((sent_ns, feed, self.id, events))
                if fut is not None and not fut.done():
                    fut.set_result(sent_ns)
        except (ConnectionError, RuntimeError):
            self.closing = True
        finally:
            self._idle.set()
            for _, _, fut in queue:
                if fut is not None and not fut.done():
                    fut.cancel()
            queue.clear()

    def _slow_client(self) -> None:
        log.warning("slow client, closing", extra=kv(conn=self.id, path=self.path, queued=len(self._queue)))
        MD_DISCONNECTS.labels("slow_client").inc()
        self.closing = True
        self._writer.cancel()
        self._queue.clear()
        self.hub.spawn(self._close_now(error_msg(407, "slow client"), 1008))

    async def close(self, code: int = 1000, error: dict[str, Any] | None = None) -> None:
        """Flush what is queued (plus ``error``), then close the socket."""
        if self.closing:
            return
        if error is not None:
            self.send_control(error)
        self.closing = True  # no more frames are queued; the writer drains what is there
        with contextlib.suppress(TimeoutError):
            # The writer pops and writes in one step, so an empty outbox means all was written.
            await asyncio.wait_for(self._idle.wait(), 1.0)
        self._writer.cancel()
        await self._close_now(None, code)

    async def _close_now(self, error: dict[str, Any] | None, code: int) -> None:
        ws = self.ws
        try:
            if error is not None and not ws.closed:
                opcode = WSMsgType.TEXT if self.use_json else WSMsgType.BINARY
                await asyncio.wait_for(ws.send_frame(encode_control([error], self.use_json), opcode), 1.0)
            await asyncio.wait_for(ws.close(code=code), 2.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    async def shutdown(self) -> None:
        self.closing = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    # -- inbound

    def on_auth_timeout(self) -> None:
        if not self.authenticated and not self.closing:
            MD_DISCONNECTS.labels("auth_timeout").inc()
            self.hub.spawn(self.close(1008, error_msg(404, "auth timeout")))

    def authenticate(self, key: Any, secret: Any) -> None:
        if self.authenticated:
            self.send_control(error_msg(403, "already authenticated"))
            return
        if not self.hub.check_keys(key, secret):
            self.send_control(error_msg(402, "auth failed"))
            return
        if not self.hub.claim_slot(self, key):
            MD_DISCONNECTS.labels("connection_limit").inc()
            self.hub.spawn(self.close(1008, error_msg(406, "connection limit exceeded")))
            return
        self.authenticated = True
        self.key_id = key
        self.hub.activate(self)
        self.send_control({"T": "success", "msg": "authenticated"})

    def on_message(self, data: str | bytes) -> None:
        try:
            msg = orjson.loads(data) if isinstance(data, str) else _decode_binary(data)
        except ValueError:
            self.send_control(error_msg(400, "invalid syntax"))
            return
        if not isinstance(msg, dict):
            self.send_control(error_msg(400, "invalid syntax"))
            return
        action = msg.get("action")
        if action == "auth":
            self.authenticate(msg.get("key"), msg.get("secret"))
        elif action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                self.send_control(error_msg(401, "not authenticated"))
            else:
                self._change_subscription(msg, action == "subscribe")
        else:
            self.send_control(error_msg(400, "invalid syntax"))

    def _change_subscription(self, msg: dict[str, Any], add: bool) -> None:
        own = STOCK_CHANNELS if self.feed == "stocks" else CRYPTO_CHANNELS
        other = CRYPTO_CHANNELS if self.feed == "stocks" else STOCK_CHANNELS
        changes: dict[str, list[str]] = {}
        for key, value in msg.items():
            if key == "action":
                continue
            if key not in own:
                if key in other:
                    self.send_control(error_msg(410, "invalid subscribe action for this feed"))
                    return
                continue
            if not isinstance(value, list) or not all(
                isinstance(s, str) and s and s == s.strip() for s in value
            ):
                self.send_control(error_msg(400, "invalid syntax"))
                return
            changes[key] = value
        new_books: list[str] = []
        for channel, symbols in changes.items():
            current = self.subs[channel]
            for s in symbols:
                if add:
                    if channel == "orderbooks" and s not in current and "*" not in current:
                        new_books.append(s)
                    current[s] = None
                else:
                    current.pop(s, None)
        self.send_control(self._ack())
        if new_books:
            self._send_book_snapshots(new_books)

    def _ack(self) -> dict[str, Any]:
        keys = STOCK_ACK_KEYS if self.feed == "stocks" else CRYPTO_CHANNELS
        ack: dict[str, Any] = {"T": "subscription"}
        for k in keys:
            ack[k] = list(self.subs[k])
        return ack

    def _send_book_snapshots(self, symbols: list[str]) -> None:
        books = self.hub.books
        wanted = list(books) if "*" in symbols else symbols
        now = wall_ns()
        snaps = [books[s].snapshot(s, now) for s in dict.fromkeys(wanted) if s in books and books[s].top()]
        bm = self.hub.batch_max
        for i in range(0, len(snaps), bm):
            chunk = snaps[i : i + bm]
            self.enqueue(encode_frame(chunk, self.use_json), chunk)


def _decode_binary(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return orjson.loads(data)


# ---- the hub ------------------------------------------------------------------------------------


class MdHub:
    """Every market-data connection, fan-out of published events, fault switches."""

    def __init__(self, cfg: SimConfig, books: dict[str, L2Book]) -> None:
        self.cfg = cfg
        self.books = books
        self.batch_max = cfg.batch_max
        self.queue_max = cfg.md_send_queue_max
        self.md_log: deque[tuple[int, str, int, list[MdEvent]]] = deque(maxlen=cfg.md_log_size)
        self._all: set[MdConnection] = set()
        self._live: dict[str, list[MdConnection]] = {"stocks": [], "crypto": []}
        self._slots: dict[tuple[str, str], MdConnection] = {}
        self._muted_until = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- auth and registry

    def check_keys(self, key: Any, secret: Any) -> bool:
        if not isinstance(key, str) or not isinstance(secret, str):
            return False
        ok_key = hmac.compare_digest(key.encode(), self.cfg.key_id.encode())
        ok_secret = hmac.compare_digest(secret.encode(), self.cfg.secret_key.get_secret_value().encode())
        return ok_key and ok_secret

    def claim_slot(self, conn: MdConnection, key: str) -> bool:
        if not self.cfg.one_connection_per_key:
            return True
        slot = (conn.path, key)
        holder = self._slots.get(slot)
        if holder is not None and holder is not conn:
            return False
        self._slots[slot] = conn
        return True

    def add(self, conn: MdConnection) -> None:
        self._all.add(conn)
        MD_CONNECTIONS.labels(conn.feed).inc()

    def activate(self, conn: MdConnection) -> None:
        self._live[conn.feed].append(conn)

    def remove(self, conn: MdConnection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            MD_CONNECTIONS.labels(conn.feed).dec()
        live = self._live[conn.feed]
        if conn in live:
            live.remove(conn)
        if conn.key_id is not None and self._slots.get((conn.path, conn.key_id)) is conn:
            del self._slots[(conn.path, conn.key_id)]

    @property
    def connections(self) -> int:
        return len(self._all)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- fan-out

    def publish(self, feed: str, events: list[MdEvent], track: bool = False) -> list[asyncio.Future[int]]:
        """Queue ``events`` to every connection subscribed to them; with ``track``, one future per
        frame that resolves to the wall ns it was written at."""
        conns = self._live[feed]
        if not conns or not events or time.monotonic() < self._muted_until:
            return []
        loop = asyncio.get_running_loop() if track else None
        futures: list[asyncio.Future[int]] = []
        cache: dict[tuple[bool, tuple[int, ...]], bytes] = {}
        bm = self.batch_max
        for conn in conns:
            if conn.closing:
                continue
            subs = conn.subs
            wanted = [
                i
                for i, ev in enumerate(events)
                if (s := subs.get(ev.channel)) is not None and (ev.symbol in s or "*" in s)
            ]
            for j in range(0, len(wanted), bm):
                chunk = tuple(wanted[j : j + bm])
                picked = [events[i] for i in chunk]
                key = (conn.use_json, chunk)
                data = cache.get(key)
                if data is None:
                    data = cache[key] = encode_frame(picked, conn.use_json)
                fut = loop.create_future() if loop is not None else None
                if fut is not None:
                    futures.append(fut)
                conn.enqueue(data, picked, fut)
        return futures

    # -- faults

    def mute(self, seconds: float) -> None:
        self._muted_until = time.monotonic() + seconds

    def unmute(self) -> None:
        self._muted_until = 0.0

    @property
    def muted(self) -> bool:
        return time.monotonic() < self._muted_until

    async def drop_all(self) -> int:
        conns = list(self._all)
        MD_DISCONNECTS.labels("dropped").inc(len(conns))
        await asyncio.gather(*(c._close_now(None, 1012) for c in conns), return_exceptions=True)
        return len(conns)

    async def close_all(self) -> None:
        await asyncio.gather(*(c._close_now(None, 1001) for c in list(self._all)), return_exceptions=True)

    def recent_frames(self, limit: int) -> list[dict[str, Any]]:
        out = []
        for sent_ns, feed, conn_id, events in list(self.md_log)[-limit:]:
            msgs = []
            for ev in events:
                m = ev.msg
                entry: dict[str, Any] = {"T": m["T"], "S": ev.symbol, "t": m["t"]}
                for k in ("ap", "bp", "p"):
                    if k in m:
                        entry[k] = m[k]
                msgs.append(entry)
            out.append({"sent_ns": sent_ns, "feed": feed, "conn": conn_id, "msgs": msgs})
        return out


# ---- aiohttp handlers ---------------------------------------------------------------------------

MD_HUB: web.AppKey[MdHub] = web.AppKey("md_hub", MdHub)


def _wants_json(request: web.Request) -> bool:
    ctype = request.headers.get("Content-Type", "")
    return ctype.split(";", 1)[0].strip().lower() == "application/json"


async def _handle(request: web.Request, feed: str) -> web.StreamResponse:
    hub = request.app[MD_HUB]
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    conn = MdConnection(hub, ws, request, request.path, feed, _wants_json(request))
    hub.add(conn)
    timer = asyncio.get_running_loop().call_later(hub.cfg.auth_timeout_s, conn.on_auth_timeout)
    try:
        conn.send_control({"T": "success", "msg": "connected"})
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if key is not None or secret is not None:
            conn.authenticate(key, secret)
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                conn.on_message(msg.data)
    finally:
        timer.cancel()
        hub.remove(conn)
        await conn.shutdown()
    return ws


async def _stocks(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "stocks")


async def _crypto(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "crypto")


def add_md_routes(app: web.Application, hub: MdHub) -> None:
    app[MD_HUB] = hub
    for path in STOCK_PATHS:
        app.router.add_get(path, _stocks)
    for path in CRYPTO_PATHS:
        app.router.add_get(path, _crypto)


def stream_paths() -> Iterable[tuple[str, str]]:
    """(name, path) of every market-data endpoint, for the ready line."""
    return [*((name, path) for path, name in STOCK_PATHS.items()), *((n, p) for p, n in CRYPTO_PATHS.items())]
