"""A raw `websockets` market-data client for protocol tests (msgpack by default, JSON on request)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from tests.kit.md_venue import KEY, SECRET


def decode(frame: str | bytes) -> list[dict[str, Any]]:
    return orjson.loads(frame) if isinstance(frame, str) else msgpack.unpackb(frame)


class MdClient:
    def __init__(self, ws: ClientConnection, use_json: bool) -> None:
        self.ws = ws
        self.use_json = use_json

    @classmethod
    async def open(cls, url: str, use_json: bool = False, headers: dict[str, str] | None = None) -> MdClient:
        hdrs = {"Content-Type": "application/json" if use_json else "application/msgpack", **(headers or {})}
        return cls(await websockets.connect(url, additional_headers=hdrs, max_size=None), use_json)

    async def raw(self, wait_s: float = 5.0) -> str | bytes:
        return await asyncio.wait_for(self.ws.recv(), wait_s)

    async def recv(self, wait_s: float = 5.0) -> list[dict[str, Any]]:
        return decode(await self.raw(wait_s))

    async def send(self, doc: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(doc).decode() if self.use_json else msgpack.packb(doc))

    async def login(self, key: str = KEY, secret: str = SECRET) -> list[dict[str, Any]]:
        assert await self.recv() == [{"T": "success", "msg": "connected"}]
        await self.send({"action": "auth", "key": key, "secret": secret})
        return await self.recv()

    async def subscribe(self, action: str = "subscribe", **channels: list[str]) -> dict[str, Any]:
        await self.send({"action": action, **channels})
        (ack,) = await self.recv()
        return ack

    async def data_until_quiet(self, quiet_s: float = 0.3) -> list[dict[str, Any]]:
        """Every message received until nothing arrives for ``quiet_s``."""
        out: list[dict[str, Any]] = []
        while True:
            try:
                out += await self.recv(quiet_s)
            except TimeoutError:
                return out

    async def close(self) -> None:
        await self.ws.close()
