"""The trade_updates WebSocket at ``/stream`` (Alpaca's trading stream protocol).

No greeting; the client authenticates with either ``{"action":"authenticate","data":{"key_id",
"secret_key"}}`` or ``{"action":"auth","key","secret"}``, then listens to ``trade_updates``. Every
order event from the Exchange goes to every listening client as one JSON object per binary frame
(as Alpaca paper sends them). Each client has its own queue and writer task so a slow client
never delays the exchange or the other clients; one that falls too far behind is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from simulator.exchange import Exchange
from simulator.metrics import TRADE_STREAM_CONNECTIONS

log = logging.getLogger("simulator.trade_stream")

MAX_QUEUED_FRAMES = 100_000
_CLOSE = b""  # queue sentinel: close the socket after what is queued


class _Client:
    __slots__ = ("authorized", "listening", "queue", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUED_FRAMES)
        self.authorized = False
        self.listening = False


class TradeStreamHub:
    def __init__(self, exchange: Exchange, key_id: str, secret_key: str) -> None:
        self._refuse_until = 0.0  # loop time before which new connections are refused (fault)
        self._key_id = key_id.encode()
        self._secret = secret_key.encode()
        self._clients: set[_Client] = set()
        exchange.add_listener(self.publish)

    @property
    def connections(self) -> int:
        return len(self._clients)

    @property
    def listeners(self) -> int:
        return sum(1 for c in self._clients if c.listening)

    def publish(self, data: dict[str, Any]) -> None:
        """Called synchronously by the Exchange for every order event."""
        if not self._clients:
            return
        frame = orjson.dumps({"stream": "trade_updates", "data": data})
        for client in self._clients:
            if client.listening:
                self._enqueue(client, frame)

    async def drop_all(self) -> int:
        """Close every trade_updates connection (clients are expected to reconnect)."""
        clients = list(self._clients)
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped by simulator") for c in clients),
            return_exceptions=True,
        )
        return len(clients)

    @property
    def refusing(self) -> bool:
        return asyncio.get_running_loop().time() < self._refuse_until

    async def go_down(self, seconds: float) -> int:
        """Fault: drop every connection and refuse new ones (HTTP 503) for ``seconds``."""
        self._refuse_until = asyncio.get_running_loop().time() + seconds
        return await self.drop_all()

    def come_up(self) -> None:
        self._refuse_until = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            return web.Response(status=503, text="trade_updates down (simulator fault)")
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        client = _Client(ws)
        self._clients.add(client)
        TRADE_STREAM_CONNECTIONS.inc()
        writer = asyncio.create_task(self._write(client))
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    doc = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    doc = None
                if not isinstance(doc, dict):
                    self._send(client, {"action": "error", "data": {"error_message": "invalid message"}})
                    continue
                self._on_message(client, doc)
        finally:
            self._clients.discard(client)
            TRADE_STREAM_CONNECTIONS.dec()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    def _on_message(self, client: _Client, doc: dict[str, Any]) -> None:
        action = doc.get("action")
        data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
        if action in ("authenticate", "auth"):
            key = data.get("key_id", doc.get("key"))
            secret = data.get("secret_key", doc.get("secret"))
            client.authorized = self._valid(key, secret)
            status = "authorized" if client.authorized else "unauthorized"
            self._send(
                client, {"stream": "authorization", "data": {"status": status, "action": "authenticate"}}
            )
            if not client.authorized:
                self._enqueue(client, _CLOSE)
        elif action == "listen":
            if not client.authorized:
                self._send(
                    client,
                    {"stream": "authorization", "data": {"status": "unauthorized", "action": "listen"}},
                )
                self._enqueue(client, _CLOSE)
                return
            streams = data.get("streams")
            client.listening = isinstance(streams, list) and "trade_updates" in streams
            acked = ["trade_updates"] if client.listening else []
            self._send(client, {"stream": "listening", "data": {"streams": acked}})
        else:
            self._send(client, {"action": "error", "data": {"error_message": f"unknown action {action!r}"}})

    def _valid(self, key: Any, secret: Any) -> bool:
        if not isinstance(key, str) or not isinstance(secret, str):
            return False
        key_ok = hmac.compare_digest(key.encode(), self._key_id)
        return hmac.compare_digest(secret.encode(), self._secret) and key_ok

    def _send(self, client: _Client, doc: dict[str, Any]) -> None:
        self._enqueue(client, orjson.dumps(doc))

    def _enqueue(self, client: _Client, frame: bytes) -> None:
        try:
            client.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("trade_updates client too slow, disconnecting")
            client.listening = False
            asyncio.get_running_loop().create_task(client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER))

    async def _write(self, client: _Client) -> None:
        ws = client.ws
        while True:
            frame = await client.queue.get()
            if not frame or ws.closed:
                await ws.close()
                return
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return
