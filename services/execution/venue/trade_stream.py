"""The trade_updates listener: authenticate, listen, hand every update on, reconnect forever.

After every (re)connect ``on_connected`` runs (as a task, so reading never stops) to reconcile what
happened while disconnected. Backoff is exponential with "equal jitter" and resets after auth.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from common.backoff import Backoff
from common.enums import LinkFailure
from common.log import kv
from common.metrics import RECONNECTS
from common.netfail import LinkHealth
from services.execution.metrics import STREAM_CONNECTED

log = logging.getLogger(__name__)


class StreamAuthError(Exception):
    """The venue did not authorize the keys on the stream."""

    link_failure = LinkFailure.AUTH_REJECTED
    detail = "trade_updates not authorized"


class TradeStream:
    def __init__(
        self,
        url: str,
        key_id: str,
        secret_key: str,
        on_update: Callable[[dict[str, Any]], None],
        on_connected: Callable[[], Awaitable[None]] | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self._auth = orjson.dumps({"action": "auth", "key": key_id, "secret": secret_key})
        self._on_update = on_update
        self._on_connected = on_connected
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s, rng)
        self.health = LinkHealth("execution", "trade_updates", url, log)
        self.connected = False
        self.last_error = ""  # why the last session ended (empty while connected)
        self.connects = 0
        self._reconnects = RECONNECTS.labels("execution", "trade_updates")
        self.updates = 0
        self.bad_frames = 0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for t in list(self._side_tasks):
            t.cancel()
        self._set_connected(False)

    async def drop(self) -> None:
        """Close the current connection (it reconnects on its own)."""
        if self._ws is not None:
            await self._ws.close()

    def _set_connected(self, value: bool) -> None:
        self.connected = value
        if value:
            self.last_error = ""
        STREAM_CONNECTED.set(1 if value else 0)

    async def _run(self) -> None:
        """Reconnect forever; each failure is classified and logged when its class changes (the
        link's LinkHealth), and an auth rejection waits AUTH_RETRY_S before the next try."""
        while True:
            try:
                await self._session()
                self.health.failed(LinkFailure.CONNECTION_LOST, "closed by the venue")
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, StreamAuthError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if self.health.failed_exc(exc) is None:
                    log.warning(
                        "trade stream disconnected", extra=kv(error=f"{type(exc).__name__}: {exc}"[:300])
                    )
            except Exception:
                log.exception("trade stream failed")
            finally:
                self._ws = None
                self._set_connected(False)
            self._reconnects.inc()
            await asyncio.sleep(self.health.retry_delay(self.backoff.next_delay()))

    async def _session(self) -> None:
        async with connect(
            self.url, open_timeout=10, ping_interval=10, ping_timeout=30, max_size=2**22
        ) as ws:
            self._ws = ws
            await ws.send(self._auth.decode())
            reply = self._decode(await asyncio.wait_for(ws.recv(), 10))
            data = reply.get("data") if isinstance(reply, dict) else None
            if not isinstance(data, dict) or data.get("status") != "authorized":
                raise StreamAuthError(f"not authorized: {str(reply)[:200]}")
            await ws.send(orjson.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}).decode())
            self.connects += 1
            self.backoff.reset()
            self.health.ok()
            self._set_connected(True)
            log.info("trade stream connected", extra=kv(url=self.url, connects=self.connects))
            if self._on_connected is not None:
                task = asyncio.get_running_loop().create_task(self._on_connected())
                self._side_tasks.add(task)
                task.add_done_callback(self._side_tasks.discard)
            async for raw in ws:
                self._dispatch(raw)

    def _decode(self, raw: str | bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.bad_frames += 1
            log.warning("trade stream frame is not JSON", extra=kv(frame=str(raw[:200])))
            return None

    def _dispatch(self, raw: str | bytes) -> None:
        msg = self._decode(raw)
        if not isinstance(msg, dict):
            return
        stream = msg.get("stream")
        if stream == "trade_updates":
            data = msg.get("data")
            if not isinstance(data, dict):
                self.bad_frames += 1
                return
            self.updates += 1
            try:
                self._on_update(data)
            except Exception:
                self.bad_frames += 1
                log.exception("trade update handler failed", extra=kv(event=data.get("event")))
        elif msg.get("action") == "error":
            log.error("trade stream error from venue", extra=kv(detail=str(msg.get("data"))[:300]))
