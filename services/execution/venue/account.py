"""The venue's account (cash, buying power, equity), polled and published for risk's buying-power
check and for the operator. A reply that cannot be used is logged and counted, never fatal: the
last good snapshot stays in force and risk treats a snapshot older than it trusts as unknown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from common import fixed, topics, wire
from common.clock import wall_ns
from common.ratelog import ConditionLog
from common.zmq_io import Publisher
from services.execution.metrics import ACCOUNT_ERRORS
from services.execution.venue.rest_client import AlpacaRest, RestError

log = logging.getLogger(__name__)

MONEY_LIMIT = 10**12  # dollars: anything beyond is not an account balance, it is a broken reply


class AccountParseError(ValueError):
    pass


def parse_account(doc: Any, ts_ns: int) -> wire.Account:
    if not isinstance(doc, dict):
        raise AccountParseError(f"account is {type(doc).__name__}, not an object")
    values: dict[str, int] = {}
    for key in ("cash", "buying_power", "equity", "last_equity"):
        try:
            nanos = fixed.to_fixed(doc[key])
        except (KeyError, ValueError, TypeError) as exc:
            raise AccountParseError(f"{key}: {exc}") from None
        if abs(nanos) > MONEY_LIMIT * fixed.SCALE:
            raise AccountParseError(f"{key} out of range")
        values[key] = nanos
    return wire.Account(ts_ns=ts_ns, **values)


class AccountPoller:
    def __init__(self, rest: AlpacaRest, pub: Publisher, interval_s: float) -> None:
        self._rest = rest
        self._pub = pub
        self.interval_s = interval_s
        self.last: wire.Account | None = None
        self._problem = ConditionLog(log)

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)

    async def poll_once(self) -> wire.Account | None:
        try:
            account = parse_account(await self._rest.account(), wall_ns())
        except (RestError, AccountParseError) as exc:
            ACCOUNT_ERRORS.inc()
            if not (isinstance(exc, RestError) and exc.link_failure):  # those: the REST link logs them
                self._problem.report(type(exc).__name__, "venue account not usable", error=str(exc)[:300])
            return None
        self._problem.clear("venue account usable again")
        self.last = account
        self._pub.publish(topics.ACCOUNT, [account])
        return account

    def republish(self) -> None:
        """For late joiners, between polls."""
        if self.last is not None:
            self._pub.publish(topics.ACCOUNT, [self.last])
