"""Alpaca Trading REST v2 on aiohttp, the trade_updates WebSocket and the simulator's /sim controls.

``add_trading_routes(app, exchange, cfg)`` registers everything on an existing application.
One middleware handles every trading ``/v2/...`` request in this order: arrival timestamp (taken when
the bytes were read, simulator/arrival.py), rate limit
(``X-Ratelimit-*`` headers on every /v2 response, 429 beyond the budget), Alpaca key auth (401),
injected faults, the handler, and Alpaca-shaped JSON errors. Order-changing requests (POST/PATCH/
DELETE under /v2/orders and /v2/positions) are appended to ``exchange.order_log()`` with their final
status; when their handler refuses them (4xx) ``zt_sim_rejections_total{code}`` counts the Alpaca
code. Every trading request is counted and timed per route template (simulator/metrics.py).
/sim routes need no auth, are not rate limited, are never faulted and are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from common.config import SimConfig
from simulator import errors
from simulator.arrival import arrived_ns as transport_arrival_ns
from simulator.exchange import Exchange
from simulator.exchange_calendar import MAX_CALENDAR_DAYS, calendar_json, clock_json
from simulator.metrics import REJECTIONS, REST_LATENCY, REST_REQUESTS, UNMATCHED_ROUTE
from simulator.models import (
    AccountConfigPatch,
    OrderBody,
    RejectFaultBody,
    ReplaceBody,
    ResetBody,
    RestFaultBody,
    TradeStreamDownBody,
    parse,
)
from simulator.orders import SimOrder, fmt
from simulator.ratelimit import RateLimiter
from simulator.rest_faults import RestFaults
from simulator.trade_stream import TradeStreamHub

log = logging.getLogger("simulator.rest")

TRADE_STREAM_HUB = web.AppKey("trade_stream_hub", TradeStreamHub)
REST_FAULTS = web.AppKey("rest_faults", RestFaults)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ORDER_PATHS = ("/v2/orders", "/v2/positions")
# Only these get auth / rate limit / faults: market-data sockets such as /v2/iex share the port.
_TRADING_PATHS = ("/v2/account", "/v2/orders", "/v2/positions", "/v2/clock", "/v2/calendar", "/v2/assets")
_LOG_KEY = web.RequestKey("zt_order_fields", dict)


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def error_response(exc: errors.ApiError) -> web.Response:
    return json_response(exc.body(), exc.status)


# ---- request parsing helpers ------------------------------------------------------------------


async def read_json(request: web.Request, required: bool = True) -> Any:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise errors.validation("request body is required")
        return {}
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise errors.validation("request body must be valid JSON") from None


def q_bool(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0", ""):
        return False
    raise errors.validation(f"{name} must be true or false")


def q_choice(request: web.Request, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = request.query.get(name, default)
    if value is not None and value not in choices:
        raise errors.validation(f"{name} must be one of {', '.join(choices)}")
    return value


def q_datetime(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.validation(f"{name} must be an RFC 3339 timestamp or a date") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def q_date(request: web.Request, name: str, default: date) -> date:
    value = request.query.get(name)
    if not value:
        return default
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise errors.validation(f"{name} must be a date (YYYY-MM-DD)") from None


def q_decimal(request: web.Request, name: str) -> Decimal | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise errors.validation(f"{name} must be a number") from None
    if not number.is_finite() or number <= 0:
        raise errors.validation(f"{name} must be a positive number")
    return number


def _note_order(request: web.Request, order: SimOrder | None = None, **fields: Any) -> None:
    """Remember what the order log should say about this request."""
    entry = request.get(_LOG_KEY)
    if entry is None:
        return
    if order is not None:
        entry.update(
            order_id=order.id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=fmt(order.qty),
            limit_price=fmt(order.limit_price),
        )
    for key, value in fields.items():
        if value is not None and entry.get(key) is None:
            entry[key] = str(value) if isinstance(value, Decimal | float | int) else value


# ---- middleware -------------------------------------------------------------------------------


def _route_template(request: web.Request) -> str:
    """``/v2/orders/{order_id}`` rather than the concrete path: a bounded label set."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def _trading_middleware(exchange: Exchange, cfg: SimConfig, limiter: RateLimiter, faults: RestFaults) -> Any:
    key_id = cfg.key_id.encode()
    secret = cfg.secret_key.get_secret_value().encode()

    def authorized(request: web.Request) -> bool:
        got_key = request.headers.get("APCA-API-KEY-ID", "").encode()
        got_secret = request.headers.get("APCA-API-SECRET-KEY", "").encode()
        key_ok = hmac.compare_digest(got_key, key_id)
        return hmac.compare_digest(got_secret, secret) and key_ok

    async def refusing(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.ApiError as exc:
            if 400 <= exc.status < 500 and _LOG_KEY in request:
                REJECTIONS.labels(str(exc.code)).inc()
            raise

    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not authorized(request):
            raise errors.unauthorized()
        fault = faults.take(request.path, request.method)
        if fault is None:
            return await refusing(request, handler)
        fields = {"status": fault.status, "delay_ms": fault.delay_ms, "path": request.path}
        log.info("injected REST fault", extra={"fields": fields})
        # aiohttp does not cancel a handler whose client went away, so a delayed request still
        # takes effect after the client timed out: the case the delay exists to show
        await request.read()  # buffered now: the client may be gone when a late handler reads it
        applied: web.StreamResponse | None = None
        if fault.after_apply:
            applied = await apply_ignoring_refusal(request, handler, fault.status is not None)
        if fault.delay_ms > 0:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.status is not None:
            raise errors.injected(fault.status)
        return applied if applied is not None else await refusing(request, handler)

    async def apply_ignoring_refusal(
        request: web.Request, handler: Handler, reply_lost: bool
    ) -> web.StreamResponse | None:
        """Run the request now; a refusal is answered (late) unless the reply is lost anyway."""
        try:
            return await refusing(request, handler)
        except errors.ApiError as exc:
            if reply_lost:
                return None
            return error_response(exc)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith(_TRADING_PATHS):
            return await handler(request)
        started = time.perf_counter()
        arrived_ns = transport_arrival_ns(request, exchange.now_ns)
        logged = request.method != "GET" and path.startswith(_ORDER_PATHS)
        if logged:
            request[_LOG_KEY] = {
                "arrived_ns": arrived_ns,
                "method": request.method,
                "path": path,
                "client_order_id": None,
                "order_id": None,
                "symbol": None,
                "side": None,
                "qty": None,
                "limit_price": None,
                "status_code": None,
            }
        decision = limiter.take(request.headers.get("APCA-API-KEY-ID", ""))
        response: web.StreamResponse
        if not decision.allowed:
            response = error_response(errors.rate_limited())
        else:
            try:
                response = await guarded(request, handler)
            except errors.ApiError as exc:
                response = error_response(exc)
            except web.HTTPException as exc:
                if exc.status == 404:
                    response = error_response(errors.not_found("endpoint not found"))
                elif exc.status == 405:
                    response = error_response(errors.ApiError(405, 40510000, "method not allowed"))
                else:
                    raise
            except Exception:
                log.exception("trading handler failed", extra={"fields": {"path": path}})
                response = error_response(errors.injected(500))
        response.headers.update(decision.headers())
        if logged:
            entry = request[_LOG_KEY]
            entry["status_code"] = response.status
            exchange.record_request(entry)
        route = _route_template(request)
        REST_REQUESTS.labels(request.method, route, str(response.status)).inc()
        REST_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    return middleware


# ---- handlers ---------------------------------------------------------------------------------


class TradingApi:
    def __init__(self, exchange: Exchange, cfg: SimConfig, limiter: RateLimiter, faults: RestFaults) -> None:
        self.ex = exchange
        self.cfg = cfg
        self.limiter = limiter
        self.faults = faults

    @contextlib.contextmanager
    def _reply_first(self) -> Iterator[None]:
        """Order events caused by this request reach the stream only after its reply is written
        (the reply is written synchronously once the handler returns; ``call_soon`` runs after)."""
        self.ex.hold_events()
        try:
            yield
        finally:
            asyncio.get_running_loop().call_soon(self.ex.release_events)

    async def get_account(self, request: web.Request) -> web.Response:
        return json_response(self.ex.account_json())

    async def get_configurations(self, request: web.Request) -> web.Response:
        return json_response(self.ex.account_config)

    async def patch_configurations(self, request: web.Request) -> web.Response:
        patch = parse(AccountConfigPatch, await read_json(request))
        return json_response(self.ex.patch_config(patch))

    async def post_order(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        if isinstance(data, dict):
            _note_order(
                request,
                client_order_id=data.get("client_order_id"),
                symbol=data.get("symbol"),
                side=data.get("side"),
                qty=data.get("qty"),
                limit_price=data.get("limit_price"),
            )
        body = parse(OrderBody, data)
        with self._reply_first():
            order = self.ex.submit(body)
            reply = self.ex.accepted_view(order)
        _note_order(request, order)
        return json_response(reply)

    async def list_orders(self, request: web.Request) -> web.Response:
        status = q_choice(request, "status", ("open", "closed", "all"), "open")
        direction = q_choice(request, "direction", ("asc", "desc"), "desc")
        side = q_choice(request, "side", ("buy", "sell"), None)
        try:
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            raise errors.validation("limit must be an integer") from None
        if limit < 1:
            raise errors.validation("limit must be at least 1")
        symbols = [s for s in request.query.get("symbols", "").split(",") if s.strip()]
        nested = q_bool(request, "nested")
        orders = self.ex.list_orders(
            status=status or "open",
            limit=min(limit, 500),
            after=q_datetime(request, "after"),
            until=q_datetime(request, "until"),
            direction=direction or "desc",
            nested=nested,
            side=side,
            symbols=[s.strip() for s in symbols] or None,
            asset_class=request.query.get("asset_class"),
        )
        return json_response([o.to_json(with_legs=nested) for o in orders])

    async def get_by_client_id(self, request: web.Request) -> web.Response:
        coid = request.query.get("client_order_id")
        if not coid:
            raise errors.validation("client_order_id is required")
        return json_response(self.ex.get_order_by_client_id(coid).to_json())

    async def get_order(self, request: web.Request) -> web.Response:
        return json_response(self.ex.get_order(request.match_info["order_id"]).to_json())

    async def replace_order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        data = await read_json(request, required=False)
        if isinstance(data, dict):
            _note_order(request, order_id=order_id, qty=data.get("qty"), limit_price=data.get("limit_price"))
        body = parse(ReplaceBody, data)
        with self._reply_first():
            new = self.ex.replace(order_id, body)
            reply = self.ex.accepted_view(new)
        _note_order(request, new)
        return json_response(reply)

    async def cancel_order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        _note_order(request, order_id=order_id)
        with self._reply_first():
            order = self.ex.cancel(order_id)
        _note_order(request, order)
        return web.Response(status=204)

    async def list_positions(self, request: web.Request) -> web.Response:
        return json_response(self.ex.positions_json())

    async def get_position(self, request: web.Request) -> web.Response:
        return json_response(self.ex.position_json(request.match_info["symbol"]))

    async def close_position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        _note_order(request, symbol=symbol)
        qty, percentage = q_decimal(request, "qty"), q_decimal(request, "percentage")
        with self._reply_first():
            order = self.ex.close_position(symbol, qty, percentage)
            reply = self.ex.accepted_view(order)
        _note_order(request, order)
        return json_response(reply)

    async def close_all_positions(self, request: web.Request) -> web.Response:
        cancel_orders = q_bool(request, "cancel_orders")
        with self._reply_first():
            return json_response(self.ex.close_all_positions(cancel_orders), status=207)

    async def cancel_all(self, request: web.Request) -> web.Response:
        with self._reply_first():
            return json_response(self.ex.cancel_all(), status=207)

    async def get_clock(self, request: web.Request) -> web.Response:
        return json_response(clock_json(self.ex.now_ns(), self.ex.session_open))

    async def get_calendar(self, request: web.Request) -> web.Response:
        today = datetime.fromtimestamp(self.ex.now_ns() / 1e9, UTC).date()
        start = q_date(request, "start", today)
        end = q_date(request, "end", start + timedelta(days=30))
        if (end - start).days > MAX_CALENDAR_DAYS:
            raise errors.validation(f"calendar range is limited to {MAX_CALENDAR_DAYS} days")
        return json_response(calendar_json(start, end))

    async def list_assets(self, request: web.Request) -> web.Response:
        status = q_choice(request, "status", ("active", "inactive"), None)
        asset_class = request.query.get("asset_class")
        exchange = request.query.get("exchange")
        out = [
            a.to_json()
            for a in self.ex.assets.assets
            if status != "inactive"
            and (not asset_class or a.asset_class == asset_class)
            and (not exchange or a.exchange == exchange)
        ]
        return json_response(out)

    async def get_asset(self, request: web.Request) -> web.Response:
        return json_response(self.ex.asset(request.match_info["symbol"]).to_json())

    # ---- /sim controls ----

    async def sim_reset(self, request: web.Request) -> web.Response:
        data = await read_json(request, required=False)
        body = parse(ResetBody, data)
        self.ex.reset(body.cash)
        log.info("simulated account reset", extra={"fields": {"cash": fmt(self.ex.account.cash)}})
        return json_response(self.ex.account_json())

    async def sim_order_log(self, request: web.Request) -> web.Response:
        return json_response(self.ex.order_log())

    async def sim_session_close(self, request: web.Request) -> web.Response:
        expired = self.ex.close_session()
        log.info("session closed", extra={"fields": {"expired": len(expired)}})
        return json_response({"is_open": False, "expired": [o.id for o in expired]})

    async def sim_session_open(self, request: web.Request) -> web.Response:
        released = self.ex.open_session()
        log.info("session opened", extra={"fields": {"released": len(released)}})
        return json_response({"is_open": True, "released": [o.id for o in released]})

    async def sim_reject_fault(self, request: web.Request) -> web.Response:
        body = parse(RejectFaultBody, await read_json(request))
        self.ex.arm_rejections(body.count, body.reason)
        log.info("async rejections armed", extra={"fields": body.model_dump()})
        return json_response(body.model_dump())

    async def sim_rest_fault(self, request: web.Request) -> web.Response:
        body = parse(RestFaultBody, await read_json(request))
        self.faults.arm(body.status, body.count, body.after_apply, body.paths, body.delay_ms, body.method)
        log.info("REST fault armed", extra={"fields": body.model_dump()})
        return json_response(body.model_dump())


def _sim_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.ApiError as exc:
            return error_response(exc)

    return wrapped


async def _trade_stream_down(request: web.Request) -> web.Response:
    body = parse(TradeStreamDownBody, await read_json(request))
    dropped = await request.app[TRADE_STREAM_HUB].go_down(body.seconds)
    log.info("trade_updates down", extra={"fields": {"seconds": body.seconds, "dropped": dropped}})
    return json_response({"seconds": body.seconds, "dropped": dropped})


async def _trade_stream_up(request: web.Request) -> web.Response:
    request.app[TRADE_STREAM_HUB].come_up()
    return json_response({"down": False})


def add_trading_routes(app: web.Application, exchange: Exchange, cfg: SimConfig) -> None:
    """Register Trading REST v2, ``/stream`` and the trading /sim routes, plus the /v2 middleware."""
    limiter = RateLimiter(cfg.rate_limit_per_min)
    faults = RestFaults()
    hub = TradeStreamHub(exchange, cfg.key_id, cfg.secret_key.get_secret_value())
    api = TradingApi(exchange, cfg, limiter, faults)
    app[TRADE_STREAM_HUB] = hub
    app[REST_FAULTS] = faults
    app[RATE_LIMITER] = limiter
    app.middlewares.append(_trading_middleware(exchange, cfg, limiter, faults))

    async def _drop_streams(_: web.Application) -> None:
        await hub.drop_all()

    app.on_shutdown.append(_drop_streams)
    r = app.router
    r.add_get("/v2/account", api.get_account)
    r.add_get("/v2/account/configurations", api.get_configurations)
    r.add_patch("/v2/account/configurations", api.patch_configurations)
    r.add_post("/v2/orders", api.post_order)
    r.add_get("/v2/orders", api.list_orders)
    r.add_delete("/v2/orders", api.cancel_all)
    r.add_get("/v2/orders:by_client_order_id", api.get_by_client_id)
    r.add_get("/v2/orders/{order_id}", api.get_order)
    r.add_patch("/v2/orders/{order_id}", api.replace_order)
    r.add_delete("/v2/orders/{order_id}", api.cancel_order)
    r.add_get("/v2/positions", api.list_positions)
    r.add_delete("/v2/positions", api.close_all_positions)
    r.add_get("/v2/positions/{symbol:.+}", api.get_position)
    r.add_delete("/v2/positions/{symbol:.+}", api.close_position)
    r.add_get("/v2/clock", api.get_clock)
    r.add_get("/v2/calendar", api.get_calendar)
    r.add_get("/v2/assets", api.list_assets)
    r.add_get("/v2/assets/{symbol:.+}", api.get_asset)
    r.add_get("/stream", hub.handle)
    r.add_post("/sim/account/reset", _sim_errors(api.sim_reset))
    r.add_get("/sim/orders/log", _sim_errors(api.sim_order_log))
    r.add_post("/sim/faults/rest", _sim_errors(api.sim_rest_fault))
    r.add_post("/sim/faults/reject", _sim_errors(api.sim_reject_fault))
    r.add_post("/sim/faults/trade_stream/down", _sim_errors(_trade_stream_down))
    r.add_post("/sim/faults/trade_stream/up", _sim_errors(_trade_stream_up))
    r.add_post("/sim/session/close", _sim_errors(api.sim_session_close))
    r.add_post("/sim/session/open", _sim_errors(api.sim_session_open))
