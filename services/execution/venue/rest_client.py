"""Alpaca Trading REST v2 over a small pool of kept-alive TCP_NODELAY HTTP/1.1 connections
(:mod:`services.execution.venue.http11`, built for the order path's latency).

Every call first takes a token from the shared bucket, waiting at most ``max_wait_s``; if none comes
the call is not made (:class:`RateLimited`), so nothing is ever sent into a 429 on purpose. Errors
carry the HTTP status and Alpaca's ``code``/``message``, never the credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from common.enums import LinkFailure
from common.netfail import LinkHealth
from services.execution.metrics import RATE_TOKENS, REST_ERRORS, REST_LATENCY
from services.execution.venue.http11 import Http11Pool, HttpConnectionError, HttpResponse, HttpTimeout
from services.execution.venue.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class RestError(Exception):
    """A request whose outcome is known or must be looked up; see the subclasses. ``link_failure``
    is set when the failure is the link's rather than the request's (common.netfail)."""

    link_failure: LinkFailure | None = None
    detail = ""


class RestStatusError(RestError):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" + (f" (code {code})" if code else ""))
        self.status, self.code, self.message = status, code, message
        if status == 401:
            self.link_failure, self.detail = LinkFailure.AUTH_REJECTED, "HTTP 401"
        elif status >= 500 or status == 429:  # the venue (or a proxy) cannot serve anyone right now
            self.link_failure, self.detail = LinkFailure.HTTP_ERROR, f"HTTP {status} {message[:120]}".strip()


class RestTimeout(RestError):
    """No answer in time: the request may or may not have taken effect."""

    link_failure = LinkFailure.TIMEOUT


class RestConnectionError(RestError):
    """The connection failed or broke: the request may or may not have taken effect."""

    def __init__(self, message: str, link_failure: LinkFailure, detail: str) -> None:
        super().__init__(message)
        self.link_failure, self.detail = link_failure, detail


class RateLimited(RestError):
    """The local token bucket had nothing within the allowed wait: the request was NOT sent."""


def _error_fields(body: bytes) -> tuple[int | None, str]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace")
    if isinstance(doc, dict):
        code = doc.get("code")
        return (code if isinstance(code, int) else None), str(doc.get("message", ""))[:300]
    return None, str(doc)[:200]


class OrderBlocked(RestError):
    """The trading gate closed while the order waited for its token: the request was NOT sent."""


class AlpacaRest:
    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret_key: str,
        bucket: TokenBucket,
        timeout_s: float = 5.0,
        max_wait_s: float = 2.0,
        service: str = "execution",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.health = LinkHealth(service, "rest", self.base_url, log)
        self.bucket = bucket
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self._headers = {
            "APCA-API-KEY-ID": key_id,
            "APCA-API-SECRET-KEY": secret_key,
            "Content-Type": "application/json",
            "User-Agent": "zerotick-execution",
        }
        self._pool: Http11Pool | None = None
        # error text comes from the venue (or a proxy in front of it) and may echo our headers
        self._secrets = [v for v in (key_id, secret_key) if v]

    def _scrub(self, text: str) -> str:
        for value in self._secrets:
            text = text.replace(value, "***")
        return text

    async def open(self) -> None:
        if self._pool is None:
            self._pool = Http11Pool(self.base_url, self._headers, max_connections=32)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def request(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        on_send: Callable[[], None] | None = None,
        may_send: Callable[[], str] | None = None,
        priority: bool = False,
    ) -> tuple[int, Any]:
        """One call; returns (status, parsed JSON or None). Non-2xx raises :class:`RestStatusError`.

        ``may_send`` is asked right before the bytes are written (after the rate-limit wait): a
        non-empty answer aborts with :class:`OrderBlocked`. ``priority`` calls (the kill switch) do
        not wait for the local bucket."""
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        if not priority and not await self.bucket.acquire(self.max_wait_s):
            RATE_TOKENS.set(self.bucket.tokens)
            REST_ERRORS.labels(endpoint, "rate_limited").inc()
            raise RateLimited(f"rate limit bucket empty for {self.max_wait_s}s, {endpoint} not sent")
        RATE_TOKENS.set(self.bucket.tokens)
        if may_send is not None and (why := may_send()):
            raise OrderBlocked(f"{endpoint} not sent: {why}")
        data = orjson.dumps(body) if body is not None else None
        t0 = time.perf_counter()
        return await self._response(
            endpoint, t0, self._pool.request(method, path, params, data, self.timeout_s, on_send)
        )

    def order_post_ready(self) -> bool:
        """True when an order POST can be written at once (``send_order_now``): a rate-limit token
        is there and a kept-alive connection is idle. Nothing is taken."""
        return self._pool is not None and self.bucket.available_now() and self._pool.can_send_now()

    def send_order_now(
        self,
        body: dict[str, Any],
        on_send: Callable[[], None] | None = None,
        may_send: Callable[[], str] | None = None,
    ) -> Awaitable[tuple[int, Any]]:
        """``POST /v2/orders`` written before this returns (call when ``order_post_ready()``); the
        awaitable gives what ``request`` would. ``may_send`` is asked right before the write:
        a non-empty answer raises :class:`OrderBlocked` and nothing is sent."""
        endpoint = "POST /v2/orders"
        if self._pool is None or not self.bucket.try_take():
            raise RateLimited(f"no rate-limit token or connection at hand, {endpoint} not sent")
        if may_send is not None and (why := may_send()):
            raise OrderBlocked(f"{endpoint} not sent: {why}")
        data = orjson.dumps(body)
        t0 = time.perf_counter()
        sent = self._pool.send_now("POST", "/v2/orders", None, data, self.timeout_s, on_send)
        if sent is None:
            raise RateLimited(f"no idle connection at hand, {endpoint} not sent")
        RATE_TOKENS.set(self.bucket.tokens)
        return self._response(endpoint, t0, sent)

    async def _response(self, endpoint: str, t0: float, sent: Awaitable[HttpResponse]) -> tuple[int, Any]:
        """The parsed answer to a request already on its way; errors classified and counted."""
        try:
            resp = await sent
            raw, status = resp.body, resp.status
        except HttpTimeout as exc:
            REST_ERRORS.labels(endpoint, "timeout").inc()
            err: RestError = RestTimeout(f"{endpoint} timed out")
            err.detail = exc.detail
            self.health.failed(LinkFailure.TIMEOUT, exc.detail)
            raise err from None
        except HttpConnectionError as exc:
            REST_ERRORS.labels(endpoint, "connection").inc()
            self.health.failed(exc.link_failure, exc.detail)
            raise RestConnectionError(
                self._scrub(f"{endpoint} failed: {self.health.last.message if self.health.last else exc}"),
                exc.link_failure,
                exc.detail,
            ) from None
        finally:
            REST_LATENCY.labels(endpoint).observe(time.perf_counter() - t0)
        if status >= 300:
            REST_ERRORS.labels(endpoint, str(status)).inc()
            code, message = _error_fields(raw)
            err = RestStatusError(status, code, self._scrub(message))
            if err.link_failure is not None:
                self.health.failed(err.link_failure, err.detail)
            else:
                self.health.ok()  # an answer about this request: the link itself works
            raise err
        self.health.ok()
        if not raw:
            return status, None
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            REST_ERRORS.labels(endpoint, "bad_json").inc()
            raise RestStatusError(status, None, "response is not JSON") from None

    # ---- endpoints ----------------------------------------------------------------------------

    async def submit_order(
        self,
        body: dict[str, Any],
        on_send: Callable[[], None] | None = None,
        may_send: Callable[[], str] | None = None,
    ) -> dict[str, Any]:
        return (
            await self.request(
                "POST", "/v2/orders", "POST /v2/orders", body=body, on_send=on_send, may_send=may_send
            )
        )[1]

    async def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        return (
            await self.request(
                "GET",
                "/v2/orders:by_client_order_id",
                "GET /v2/orders:by_client_order_id",
                params={"client_order_id": client_order_id},
            )
        )[1]

    async def list_orders(
        self,
        status: str = "open",
        limit: int = 500,
        direction: str = "asc",
        priority: bool = False,
        after: str = "",
    ) -> list[dict[str, Any]]:
        params = {"status": status, "limit": str(limit), "direction": direction}
        if after:
            params["after"] = after  # RFC 3339: orders created strictly after it
        return (await self.request("GET", "/v2/orders", "GET /v2/orders", params=params, priority=priority))[
            1
        ] or []

    async def cancel_order(self, venue_order_id: str) -> None:
        await self.request("DELETE", f"/v2/orders/{venue_order_id}", "DELETE /v2/orders/{id}")

    async def cancel_all(self, priority: bool = False) -> list[dict[str, Any]]:
        return (await self.request("DELETE", "/v2/orders", "DELETE /v2/orders", priority=priority))[1] or []

    async def close_all_positions(self, priority: bool = False) -> list[dict[str, Any]]:
        """Close every position at the market, canceling open orders first (Alpaca's close-all)."""
        params = {"cancel_orders": "true"}
        endpoint = "DELETE /v2/positions"
        return (await self.request("DELETE", "/v2/positions", endpoint, params=params, priority=priority))[
            1
        ] or []

    async def positions(self, priority: bool = False) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v2/positions", "GET /v2/positions", priority=priority))[1] or []

    async def account(self) -> dict[str, Any]:
        return (await self.request("GET", "/v2/account", "GET /v2/account"))[1]
