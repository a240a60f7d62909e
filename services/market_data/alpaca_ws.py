"""One Alpaca market-data WebSocket connection: handshake, subscribe, receive, reconnect.

Alpaca allows one connection per stream endpoint per key pair, so each feed owns exactly one.
Reconnects use exponential backoff with "equal jitter" (delay in [d/2, d]); the attempt counter
resets once market data flows. A 406 (connection limit) or an HTTP 429 on the upgrade means the old
socket is still counted at the venue (it reaps half-dead sockets after ~90 s), so those, and auth
failures, wait the maximum backoff instead of hammering the venue.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode

from common.backoff import Backoff
from common.clock import wall_ns
from common.enums import FeedState, LinkFailure
from common.metrics import RECONNECTS
from common.netfail import Failure, LinkHealth, os_detail
from services.market_data import decode as d
from services.market_data.ws_frames import FrameSplitter

log = logging.getLogger(__name__)

FrameHandler = Callable[[bytes | str, int], list[d._Rec]]  # (frame, recv_ns) -> control records
StateHandler = Callable[[FeedState, str], None]

HANDSHAKE_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 64 * 1024 * 1024  # orderbook snapshots of many symbols exceed websockets' 1 MiB default
LONG_BACKOFF_CODES = frozenset({402, 406, 409})  # auth failed, connection limit, insufficient subscription


AUTH_CODES = frozenset({401, 402})  # not authenticated, auth failed


class StreamError(Exception):
    """The venue sent ``{"T":"error"}`` during the handshake (``code`` > 0), or broke the protocol."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.detail = f"error {code} {msg[:120]}" if code else msg[:160]
        if code in AUTH_CODES:
            self.link_failure = LinkFailure.AUTH_REJECTED
        else:
            self.link_failure = LinkFailure.VENUE_ERROR if code else LinkFailure.PROTOCOL_ERROR


def subscribe_action(channels: dict[str, list[str]]) -> bytes:
    """The msgpack subscribe message for every non-empty channel."""
    msg: dict[str, object] = {"action": "subscribe"}
    msg.update({ch: syms for ch, syms in channels.items() if syms})
    return msgpack.packb(msg)


class DirectConnection(ClientConnection):
    """A websockets client connection that hands each complete data message to ``direct`` from the
    transport's ``data_received``, stamped with the time its bytes were read, instead of queueing it
    for a task to ``await``: no task switch, no queue, one loop callback per read. Until ``direct``
    is set (the handshake, auth and subscribe replies) messages queue as usual for ``recv()``.
    Pings, pongs, close and the size limit stay websockets'; the reader applies back-pressure by
    simply not reading while a handler runs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.direct: Callable[[bytes | str, int], None] | None = None
        self._recv_ns = 0
        self._parts: list[bytes] | None = None  # a fragmented message being assembled
        self._text = False
        self._split = FrameSplitter(MAX_FRAME_BYTES)

    def data_received(self, data: bytes) -> None:
        """Whole binary frames go to ``direct`` from here; websockets parses everything else
        (``ws_frames.FrameSplitter``), and a frame it handles whole comes back via ``process_event``."""
        self._recv_ns = wall_ns()
        direct = self.direct
        for skips, chunk in self._split.feed(data, direct is not None):
            if not skips:
                super().data_received(chunk)
                continue
            assert direct is not None, "FrameSplitter skips websockets only once direct is set"
            try:
                direct(chunk, self._recv_ns)
            except Exception:
                log.exception("market-data frame handler failed")  # the connection keeps reading

    def process_event(self, event: object) -> None:
        direct = self.direct
        if direct is None or not isinstance(event, Frame):
            super().process_event(event)  # type: ignore[arg-type]
            return
        opcode = event.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            self._text = opcode is Opcode.TEXT
            if not event.fin:  # websockets checks the sequence and the assembled size (max_size)
                self._parts = [bytes(event.data)]
                return
            data = bytes(event.data)
        elif opcode is Opcode.CONT and self._parts is not None:
            self._parts.append(bytes(event.data))
            if not event.fin:
                return
            data, self._parts = b"".join(self._parts), None
        else:  # control frames: pongs acknowledge our pings
            super().process_event(event)  # type: ignore[arg-type]
            return
        message: bytes | str = data.decode("utf-8", "replace") if self._text else data
        try:
            direct(message, self._recv_ns)
        except Exception:
            log.exception("market-data frame handler failed")  # the connection keeps reading


class FeedConnection:
    def __init__(
        self,
        feed: str,
        url: str,
        credentials: tuple[str, str],
        channels: dict[str, list[str]],
        on_frame: FrameHandler,
        on_state: StateHandler,
        reconnect_min_s: float,
        reconnect_max_s: float,
        rng: random.Random | None = None,
    ) -> None:
        self.feed = feed
        self.url = url
        self._credentials = credentials
        self.channels = channels
        self._on_frame = on_frame
        self._on_state = on_state
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s, rng)
        self.reconnects = 0
        self._reconnects = RECONNECTS.labels("market_data", feed)
        self.health = LinkHealth("market_data", feed, url, log)
        self._ws: ClientConnection | None = None

    def data_seen(self) -> None:
        """Market data flowed: the next disconnect starts the backoff from the minimum again."""
        self.backoff.reset()

    def next_delay(self, long: bool) -> float:
        return self.backoff.next_delay(longest=long)

    async def run(self) -> None:
        """Connect and keep connected until cancelled. Each failure is classified, counted and
        logged when its class changes (``self.health``); the feed's state detail says it in full."""
        while True:
            long = False
            try:
                await self._session()
                failure = self.health.failed(LinkFailure.CONNECTION_LOST, "closed by the venue")
            except StreamError as exc:
                long = exc.code in LONG_BACKOFF_CODES
                failure = self.health.failed(exc.link_failure, exc.detail)
                self._on_state(FeedState.ERROR, failure.message)
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                long = status == 429
                failure = self._failed(exc)
                self._on_state(FeedState.ERROR, failure.message)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                failure = self._failed(exc)
            self._ws = None
            delay = self.health.retry_delay(self.next_delay(long))
            self.reconnects += 1
            self._reconnects.inc()
            self._on_state(
                FeedState.DISCONNECTED, f"{failure.kind.value}: {failure.message}; retry in {delay:.1f}s"
            )
            await asyncio.sleep(delay)

    def _failed(self, exc: BaseException) -> Failure:
        return self.health.failed_exc(exc) or self.health.failed(LinkFailure.CONNECTION_LOST, os_detail(exc))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def _session(self) -> None:
        self._on_state(FeedState.CONNECTING, self.url)
        async with connect(
            self.url,
            create_connection=DirectConnection,
            additional_headers={"Content-Type": "application/msgpack"},
            user_agent_header="zerotick-market-data",
            max_size=MAX_FRAME_BYTES,
            proxy=None,  # a direct path: no proxy lookups or hops on the data path
            max_queue=1024,
            compression=None,  # deflate costs CPU on every frame; latency matters more than bytes
            open_timeout=HANDSHAKE_TIMEOUT_S,
            ping_interval=10,
            ping_timeout=30,
            close_timeout=1,
        ) as ws:
            self._ws = ws
            await self._expect(ws, "connected")
            self._on_state(FeedState.CONNECTED, self.url)
            key, secret = self._credentials
            await ws.send(msgpack.packb({"action": "auth", "key": key, "secret": secret}))
            await self._expect(ws, "authenticated")
            self.health.ok()
            assert isinstance(ws, DirectConnection)
            ws.direct = self._frame  # before the subscribe: every reply to it comes this way
            await ws.send(subscribe_action(self.channels))
            await ws.wait_closed()
            closed = ws.protocol.close_exc
            if not isinstance(closed, websockets.ConnectionClosedOK):
                raise closed

    def _frame(self, frame: bytes | str, recv_ns: int) -> None:
        for ctl in self._on_frame(frame, recv_ns):
            self._control(ctl)

    async def _expect(self, ws: ClientConnection, success_msg: str) -> None:
        frame = await asyncio.wait_for(ws.recv(), HANDSHAKE_TIMEOUT_S)
        if not isinstance(frame, bytes):
            raise StreamError(0, "venue sent a text frame; expected msgpack")
        try:
            records, _ = d.decode_frame(frame)
        except d.FrameError:
            raise StreamError(0, "venue sent an undecodable handshake frame") from None
        first = records[0] if records else None
        if isinstance(first, d.ErrorRec):
            raise StreamError(first.code, first.msg)
        if not isinstance(first, d.SuccessRec) or first.msg != success_msg:
            raise StreamError(0, f"expected success {success_msg!r} from the venue")

    def _control(self, ctl: d._Rec) -> None:
        if isinstance(ctl, d.SubscriptionRec):
            subscribed = {
                "quotes": ctl.quotes,
                "trades": ctl.trades,
                "bars": ctl.bars,
                "orderbooks": ctl.orderbooks,
            }
            detail = ";".join(f"{k}={','.join(v)}" for k, v in subscribed.items() if v)
            self._on_state(FeedState.SUBSCRIBED, detail[:500])
        elif isinstance(ctl, d.ErrorRec):
            # e.g. 405 symbol limit (earlier subscriptions kept) or 407 slow client (the venue closes).
            self._on_state(FeedState.ERROR, f"{ctl.code} {ctl.msg}"[:200])
            log.error("venue error", extra={"fields": {"feed": self.feed, "code": ctl.code, "msg": ctl.msg}})
