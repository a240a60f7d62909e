"""Placing one order without ever placing it twice.

An order POST is never retried blindly. When its outcome is unknown (timeout, broken connection,
5xx, 429, or a 422 "client_order_id must be unique") the order is looked up by its client_order_id:
found -> adopt it; 404 -> not placed YET, so the SAME client_order_id may be sent again (the venue
refuses a duplicate, which again leads to a lookup; whichever of the two POSTs lands first is the
only order). Attempts are bounded, with backoff.

A 404 right after a timed-out POST does not prove the order absent: that POST may still be in
flight at the venue. So once any POST had an unknown outcome, giving up (attempts exhausted,
deadline passed, rate limited, or a later POST refused, e.g. for buying power the first one
consumed) is reported as ``unknown``, never ``rejected``; the caller resolves it by lookups after
the in-flight window (``last_post_ns``). ``rejected`` only ever means the venue refused every POST.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from common.clock import wall_ns
from common.log import kv
from services.execution.orders.journal import JournalError, OrderJournal
from services.execution.venue.rest_client import (
    AlpacaRest,
    OrderBlocked,
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
    last_post_ns: int = 0  # wall ns when the last POST was handed to the network (0: none)
    venue_status: int = 0  # rejected: the HTTP status the venue refused the last POST with (0: not the venue)


def outcome_unknown(exc: RestError) -> bool:
    """True when a failed POST may still have placed the order."""
    if isinstance(exc, RestTimeout | RestConnectionError):
        return True
    if isinstance(exc, RestStatusError):
        if exc.status < 300 or exc.status in (408, 429) or exc.status >= 500:
            return True  # < 300: accepted, but the reply could not be read
        return exc.status == 422 and "unique" in exc.message.lower()
    return False


class FirstPost:
    """An order's first POST, journaled and written by ``OrderSubmitter.start`` before it returned;
    ``submit(first=...)`` takes it from there."""

    __slots__ = ("reply", "sent_ns")

    def __init__(self) -> None:
        self.sent_ns = 0  # wall ns when the POST was handed to the network (0: not written)
        self.reply: Awaitable[dict[str, Any] | None] | None = None


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

    def start(
        self,
        client_order_id: str,
        body: dict[str, Any],
        on_send: Callable[[], None] | None = None,
        may_send: Callable[[], str] | None = None,
    ) -> FirstPost | None:
        """The first POST journaled and written now, before this returns, when it can go at once
        (a rate-limit token and an idle kept-alive connection are at hand); None, with nothing
        journaled or sent, when it would have to wait: ``submit`` then does it all. Failures
        (journal, gate, connection) come out of ``submit(first=...)`` as they would from there."""
        if not self.rest.order_post_ready():
            return None
        first = FirstPost()

        def sent() -> None:
            first.sent_ns = wall_ns()
            if on_send is not None:
                on_send()

        try:
            self.journal.record_submit(client_order_id, 1, body)  # before the POST, or no POST
            first.reply = _order_of(self.rest.send_order_now(body, on_send=sent, may_send=may_send))
        except Exception as exc:
            first.reply = _raise(exc)
        return first

    async def submit(
        self,
        client_order_id: str,
        body: dict[str, Any],
        deadline_ns: int = 0,
        on_send: Callable[[], None] | None = None,
        may_send: Callable[[], str] | None = None,
        first: FirstPost | None = None,
    ) -> SubmitOutcome:
        """Place the order (``first``: its first POST was already written by ``start``)."""
        posts = 0
        doubtful = False  # some POST may have placed the order although we saw no success
        last_post_ns = 0

        def sent() -> None:
            nonlocal last_post_ns
            last_post_ns = wall_ns()
            if on_send is not None:
                on_send()

        def give_up(reason: str, venue_status: int = 0) -> SubmitOutcome:
            kind: Literal["rejected", "unknown"] = "unknown" if doubtful else "rejected"
            if doubtful:
                reason += " (an earlier POST may still land: resolving by lookup)"
                venue_status = 0
            return SubmitOutcome(
                kind, None, reason, posts, last_post_ns=last_post_ns, venue_status=venue_status
            )

        while True:
            if posts and deadline_ns and wall_ns() > deadline_ns:
                return give_up("expired before it could be resubmitted")
            try:
                if first is not None:
                    reply, first_post, first = first.reply, first, None
                    assert reply is not None, "start() sets it"
                    try:
                        order = await reply
                    finally:
                        last_post_ns = first_post.sent_ns or last_post_ns
                else:
                    self.journal.record_submit(client_order_id, posts + 1, body)
                    order = await self.rest.submit_order(body, on_send=sent, may_send=may_send)
                if isinstance(order, dict):
                    return SubmitOutcome("placed", order, "ok", posts + 1, last_post_ns=last_post_ns)
                doubtful, posts = True, posts + 1  # 2xx without an order body: placed, unreadable
                log.warning(
                    "order POST answered without an order, looking it up", extra=kv(coid=client_order_id)
                )
            except JournalError as exc:  # a POST that is not journaled first is never written
                return give_up(f"journal_failed: {exc}")
            except RateLimited as exc:  # this POST was not sent
                return give_up(f"rate_limited: {exc}")
            except OrderBlocked as exc:  # the trading gate closed while it waited: not sent
                return give_up(str(exc))
            except RestError as exc:
                posts += 1
                if not outcome_unknown(exc):
                    return give_up(str(exc), exc.status if isinstance(exc, RestStatusError) else 0)
                doubtful = True
                log.warning(
                    "order POST outcome unknown, looking it up",
                    extra=kv(coid=client_order_id, error=str(exc)),
                )
            found = await self.lookup(client_order_id)
            if isinstance(found, dict):
                return SubmitOutcome("placed", found, "ok", posts, adopted=True, last_post_ns=last_post_ns)
            if found is None:
                return SubmitOutcome(
                    "unknown",
                    None,
                    "venue unreachable: outcome not established",
                    posts,
                    last_post_ns=last_post_ns,
                )
            if posts >= self.max_posts:
                return give_up(f"not placed after {posts} attempts")
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


async def _order_of(reply: Awaitable[tuple[int, Any]]) -> dict[str, Any] | None:
    """The order body of a POST reply (what ``AlpacaRest.submit_order`` returns)."""
    return (await reply)[1]  # type: ignore[no-any-return]


async def _raise(exc: Exception) -> Any:
    raise exc


def is_not_found(found: object) -> bool:
    return found is _NOT_FOUND
