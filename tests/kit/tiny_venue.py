"""A tiny Alpaca-like venue (real aiohttp server on an ephemeral port): order endpoints with scripted
faults, a trade_updates WebSocket and test-driven fills. It tests execution independently of the
full simulator; only what execution uses is implemented."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from tests.kit.execution import serve_local

KEY, SECRET = "test-key", "test-secret"


@dataclass
class Fault:
    status: int  # HTTP status to answer with, or 0 = stall past the client's timeout
    after_apply: bool  # True: the order is placed, only the reply is bad


@dataclass
class TinyVenue:
    faults: list[Fault] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by client_order_id
    posts: list[dict[str, Any]] = field(default_factory=list)
    lookups: int = 0
    stall_s: float = 1.0
    runner: web.AppRunner | None = None
    url: str = ""
    streams: set[web.WebSocketResponse] = field(default_factory=set)
    stream_open: bool = True  # False: refuse trade_updates connections (an outage)
    stream_auths: int = 0
    positions: list[dict[str, Any]] = field(default_factory=list)
    list_calls: int = 0
    positions_calls: int = 0
    garble_next: bool = False  # answer the next placed POST with 200 and a non-JSON body
    echo_headers: bool = False  # 404 pages echo the request headers, like a debugging proxy
    list_hook: Callable[[int], Awaitable[None]] | None = None  # runs inside GET /v2/orders
    post_hook: Callable[[], Awaitable[None]] | None = None  # runs inside POST before it is applied
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v2/orders", self.post_order)
        app.router.add_get("/v2/orders:by_client_order_id", self.by_client_id)
        app.router.add_get("/v2/orders", self.list_orders)
        app.router.add_delete("/v2/orders", self.cancel_all)
        app.router.add_get("/v2/positions", self.get_positions)
        app.router.add_get("/stream", self.stream)
        self.runner, self.url = await serve_local(app)

    async def stop(self) -> None:
        await self.drop_streams()
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def stream_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/stream"

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.Response(status=status, body=orjson.dumps({"code": code, "message": message}))

    def _authorized(self, request: web.Request) -> bool:
        h = request.headers
        return h.get("APCA-API-KEY-ID") == KEY and h.get("APCA-API-SECRET-KEY") == SECRET

    async def post_order(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 40110000, "request is not authorized")
        body = orjson.loads(await request.read())
        self.posts.append(body)
        if self.post_hook is not None:
            await self.post_hook()
        fault = self.faults.pop(0) if self.faults else None
        if fault and not fault.after_apply:
            return self._respond_fault(fault)
        coid = body["client_order_id"]
        if coid in self.orders:
            return self._error(422, 40010001, "client_order_id must be unique")
        if body.get("symbol") == "REJECTME":
            return self._error(403, 40310000, "insufficient buying power")
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": coid,
            "symbol": body["symbol"],
            "created_seq": len(self.orders),
            "side": body["side"],
            "qty": body["qty"],
            "filled_qty": "0",
            "filled_avg_price": None,
            "limit_price": body.get("limit_price"),
            "status": "accepted",
            "updated_at": "2024-01-02T15:00:00Z",
        }
        self.orders[coid] = order
        self._tasks.add(asyncio.get_running_loop().create_task(self._announce_new(coid)))
        if fault:
            if fault.status == 0:
                await asyncio.sleep(self.stall_s)
            return self._respond_fault(fault)
        if self.garble_next:
            self.garble_next = False
            return web.Response(body=b"<html>ok</html>", content_type="text/html")
        return web.Response(body=orjson.dumps(order), content_type="application/json")

    def _respond_fault(self, fault: Fault) -> web.Response:
        if fault.status == 0:
            return web.Response(status=504)
        return self._error(fault.status, fault.status * 100000, "injected fault")

    async def by_client_id(self, request: web.Request) -> web.Response:
        self.lookups += 1
        order = self.orders.get(request.query.get("client_order_id", ""))
        if order is None:
            if self.echo_headers:
                return web.Response(status=404, text=f"not found; you sent {dict(request.headers)}")
            return self._error(404, 40410000, "order not found")
        return web.Response(body=orjson.dumps(order), content_type="application/json")

    # ---- beyond orders: what the execution service uses -------------------------------------

    async def list_orders(self, request: web.Request) -> web.Response:
        self.list_calls += 1
        if self.list_hook is not None:
            await self.list_hook(self.list_calls)
        status = request.query.get("status", "open")
        closed = ("filled", "canceled", "rejected", "expired", "replaced")
        picked = [
            o
            for o in self.orders.values()
            if status == "all" or (o["status"] in closed) == (status == "closed")
        ]
        if request.query.get("direction", "desc") == "desc":
            picked.reverse()
        picked = picked[: int(request.query.get("limit", "50"))]
        return web.Response(body=orjson.dumps(picked), content_type="application/json")

    async def cancel_all(self, request: web.Request) -> web.Response:
        out = []
        for order in self.orders.values():
            if order["status"] not in ("filled", "canceled", "rejected"):
                order["status"] = "canceled"
                out.append({"id": order["id"], "status": 200})
                await self.push("canceled", order)
        return web.Response(status=207, body=orjson.dumps(out), content_type="application/json")

    async def get_positions(self, request: web.Request) -> web.Response:
        self.positions_calls += 1
        return web.Response(body=orjson.dumps(self.positions), content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if not self.stream_open:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        auth = orjson.loads((await ws.receive()).data)
        ok = auth == {"action": "auth", "key": KEY, "secret": SECRET}
        status = "authorized" if ok else "unauthorized"
        await ws.send_bytes(
            orjson.dumps({"stream": "authorization", "data": {"status": status, "action": "authenticate"}})
        )
        if not ok:
            await ws.close()
            return ws
        self.stream_auths += 1
        listen = orjson.loads((await ws.receive()).data)
        streams = listen.get("data", {}).get("streams", [])
        await ws.send_bytes(orjson.dumps({"stream": "listening", "data": {"streams": streams}}))
        self.streams.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self.streams.discard(ws)
        return ws

    async def _announce_new(self, coid: str) -> None:
        await asyncio.sleep(0.01)
        order = self.orders[coid]
        if order["status"] == "accepted":
            order["status"] = "new"
            await self.push("new", order)

    def place(self, coid: str, qty: str, side: str = "buy", symbol: str = "AAPL") -> dict[str, Any]:
        """An order placed at the venue by someone else (or by an earlier run of execution)."""
        order = {
            "id": str(uuid.uuid4()), "client_order_id": coid, "symbol": symbol, "side": side, "qty": qty,
            "filled_qty": "0", "filled_avg_price": None, "limit_price": None, "status": "new",
            "updated_at": _now(),
        }  # fmt: skip
        self.orders[coid] = order
        return order

    async def drop_streams(self) -> None:
        for ws in list(self.streams):
            await ws.close()

    async def push(self, event: str, order: dict[str, Any], **extra: Any) -> None:
        msg = {
            "stream": "trade_updates",
            "data": {"event": event, "order": dict(order), "timestamp": _now(), **extra},
        }
        frame = orjson.dumps(msg)
        for ws in list(self.streams):
            await ws.send_bytes(frame)

    async def fill(self, coid: str, qty: str, price: str, push: bool = True) -> dict[str, Any]:
        """Execute ``qty`` at ``price`` against the order; updates cumulative fields like Alpaca."""
        order = self.orders[coid]
        old_cum = Decimal(order["filled_qty"])
        old_avg = Decimal(order["filled_avg_price"] or 0)
        cum = old_cum + Decimal(qty)
        avg = (old_avg * old_cum + Decimal(price) * Decimal(qty)) / cum
        order["filled_qty"] = str(cum)
        order["filled_avg_price"] = str(avg.quantize(Decimal("0.000000001")))
        order["status"] = "filled" if cum >= Decimal(order["qty"]) else "partially_filled"
        order["updated_at"] = _now()
        self._book(order["symbol"], order["side"], Decimal(qty), price)
        if push:
            event = "fill" if order["status"] == "filled" else "partial_fill"
            await self.push(
                event, order, qty=qty, price=price, execution_id=str(uuid.uuid4()), position_qty=str(cum)
            )
        return order

    def _book(self, symbol: str, side: str, qty: Decimal, price: str) -> None:
        """Move the venue's position like Alpaca's (signed qty, side long/short; flat ones vanish)."""
        pos = next((p for p in self.positions if p.get("symbol") == symbol), None)
        signed = Decimal(pos["qty"]) if pos else Decimal(0)
        signed += qty if side == "buy" else -qty
        if pos is not None:
            self.positions.remove(pos)
        if signed:
            self.positions.append(
                {
                    "symbol": symbol,
                    "qty": str(signed),
                    "side": "long" if signed > 0 else "short",
                    "avg_entry_price": (pos or {}).get("avg_entry_price") or price,
                }
            )


def _now() -> str:
    ns = time.time_ns()
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"
    )


@contextlib.asynccontextmanager
async def tiny_venue() -> AsyncIterator[TinyVenue]:
    """A started TinyVenue, stopped on the way out."""
    venue = TinyVenue()
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()
