"""Emptying the venue: cancel every open order, close every position when asked, and read the venue
back until it shows nothing open. Used by execution on a trip, and by ``zerotick kill`` itself when
the services cannot be reached (out of band), so both paths behave the same.

Every call here skips the local rate-limit bucket: a kill never waits behind orders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from common.clock import mono_ns
from common.config import Settings
from services.execution.venue.ratelimit import TokenBucket
from services.execution.venue.rest_client import AlpacaRest, RestError

POLL_S = 0.01  # between rounds while the venue still shows something open


@dataclass(frozen=True, slots=True)
class KillOutcome:
    confirmed: bool  # the venue showed 0 open orders (and 0 positions when flattening)
    open_orders: int  # at the last look (-1: could not look)
    positions: int
    canceled: int  # cancel requests the venue accepted
    closed: int  # close requests the venue accepted
    confirm_ns: int  # monotonic ns when the venue confirmed (0: not confirmed)
    rounds: int
    detail: str

    def report(self) -> dict[str, object]:
        """For people and the audit log (the monotonic stamp means nothing outside this process)."""
        return {f: getattr(self, f) for f in self.__slots__ if f != "confirm_ns"}  # type: ignore[attr-defined]


async def empty_venue(
    rest: AlpacaRest,
    flatten: bool,
    deadline_mono_ns: int,
    before_look: Callable[[], Awaitable[None]] | None = None,
) -> KillOutcome:
    """Cancel (and close) until the venue confirms or the deadline passes; never raises RestError."""
    canceled = closed = rounds = 0
    open_orders = positions = -1
    detail = ""
    while True:
        rounds += 1
        try:
            canceled += _accepted(await rest.cancel_all(priority=True))
            if flatten:
                closed += _accepted(await rest.close_all_positions(priority=True))
            if before_look is not None:
                await before_look()
            open_orders = len(await rest.list_orders("open", priority=True))
            positions = len(await rest.positions(priority=True))
            detail = ""
        except RestError as exc:
            detail = f"venue: {exc}"
        if open_orders == 0 and (positions == 0 or not flatten) and not detail:
            return KillOutcome(True, open_orders, positions, canceled, closed, mono_ns(), rounds, "confirmed")
        if mono_ns() >= deadline_mono_ns:
            what = detail or f"venue still shows {open_orders} open orders and {positions} positions"
            return KillOutcome(False, open_orders, positions, canceled, closed, 0, rounds, what)
        await asyncio.sleep(POLL_S)


async def empty_venue_direct(settings: Settings, flatten: bool, timeout_s: float) -> KillOutcome:
    """The same, over a REST connection of its own: for callers that are not execution (``zerotick
    kill`` out of band, risk when execution does not answer a trip)."""
    key_id, secret = settings.credentials()
    rest = AlpacaRest(
        settings.trading_base_url(), key_id, secret, TokenBucket(60, 1), timeout_s=2.0, service="kill_switch"
    )
    await rest.open()
    try:
        return await empty_venue(rest, flatten, mono_ns() + int(timeout_s * 1e9))
    finally:
        await rest.close()


def _accepted(results: list[dict[str, object]]) -> int:
    """Alpaca answers cancel-all / close-all with 207 and one ``{id|symbol, status, body}`` per item."""
    return sum(1 for r in results if isinstance(r, dict) and int(str(r.get("status", 200))) < 300)
