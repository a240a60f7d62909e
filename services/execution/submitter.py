"""Placing one order without ever placing it twice.

An order POST is never retried blindly. When its outcome is unknown (timeout, broken connection,
5xx, 429, or a 422 "client_order_id must be unique") the order is looked up by its client_order_id:
found -> adopt it; 404 -> it was not placed, so the SAME client_order_id may be sent again (the venue
refuses a duplicate, which again leads to a lookup). Attempts are bounded, with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from common.clock import wall_ns
from common.log import kv
from services.execution.journal import OrderJournal
from services.execution.rest_client import (
    AlpacaRest,
    RateLimited,
    RestConnectionError,
    RestError,
    RestStatusError,
    RestTimeout,
)

log = logging.getLogger(__name__)

_NOT_FOUND = object()


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    kind: Literal["placed", "rejected", "unknown"]
    order: dict[str, Any] | None  # the venue's order when placed
    reason: str
    posts: int  # order POSTs written
    adopted: bool = False  # found by lookup rather than from the POST reply


def outcome_unknown(exc: RestError) -> bool:
    """True when a failed POST may still have placed the order."""
    if isinstance(exc, RestTimeout | RestConnectionError):
        return True
    if isinstance(exc, RestStatusError):
        if exc.status == 429 or exc.status >= 500:
            return True
        return exc.status == 422 and "unique" in exc.message.lower()
    return False


class OrderSubmitter:
    def __init__(
        self,
        rest: AlpacaRest,
        journal: OrderJournal,
        max_posts: int = 3,
        lookup_attempts: int = 4,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 1.0,
    ) -> None:
        self.rest = rest
        self.journal = journal
        self.max_posts = max_posts
        self.lookup_attempts = lookup_attempts
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(min(self.backoff_cap_s, self.backoff_s * 2 ** max(0, attempt - 1)))

    async def submit(
        self,
        client_order_id: str,
        body: dict[str, Any],
        deadline_ns: int = 0,
        on_send: Callable[[], None] | None = None,
    ) -> SubmitOutcome:
        posts = 0
        while True:
            if posts and deadline_ns and wall_ns() > deadline_ns:
                return SubmitOutcome("rejected", None, "expired before it could be resubmitted", posts)
            self.journal.record_submit(client_order_id, posts + 1, body)
            try:
                order = await self.rest.submit_order(body, on_send=on_send)
                return SubmitOutcome("placed", order, "ok", posts + 1)
            except RateLimited as exc:  # not sent, and any earlier POST was proven absent
                return SubmitOutcome("rejected", None, f"rate_limited: {exc}", posts)
            except RestError as exc:
                posts += 1
                if not outcome_unknown(exc):
                    return SubmitOutcome("rejected", None, str(exc), posts)
                log.warning(
                    "order POST outcome unknown, looking it up",
                    extra=kv(coid=client_order_id, error=str(exc)),
                )
            found = await self.lookup(client_order_id)
            if isinstance(found, dict):
                return SubmitOutcome("placed", found, "ok", posts, adopted=True)
            if found is None:
                return SubmitOutcome("unknown", None, "venue unreachable: outcome not established", posts)
            if posts >= self.max_posts:
                return SubmitOutcome("rejected", None, f"not placed after {posts} attempts", posts)
            await self._backoff(posts)

    async def lookup(self, client_order_id: str) -> dict[str, Any] | object | None:
        """The venue's order, ``_NOT_FOUND`` when the venue says 404, None when it cannot be told."""
        for attempt in range(1, self.lookup_attempts + 1):
            try:
                return await self.rest.get_order_by_client_id(client_order_id)
            except RestStatusError as exc:
                if exc.status == 404:
                    return _NOT_FOUND
                log.warning("order lookup failed", extra=kv(coid=client_order_id, error=str(exc)))
            except RestError as exc:
                log.warning("order lookup failed", extra=kv(coid=client_order_id, error=str(exc)))
            await self._backoff(attempt)
        return None


def is_not_found(found: object) -> bool:
    return found is _NOT_FOUND
