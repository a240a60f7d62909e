"""The operations log: one INFO line per order sent, order finished, fill, risk reject and trading-state
trip, always with the same fields, on the ``zerotick.ops`` logger (``grep zerotick.ops`` in a service's
log is the trading blotter). Never called per quote."""

from __future__ import annotations

import logging
from typing import Any

from common import fixed
from common.enums import OpsEvent

log = logging.getLogger("zerotick.ops")


def order_line(
    event: OpsEvent,
    *,
    symbol: str,
    side: str,
    qty: int,
    price: int,
    client_order_id: str,
    strategy: str,
    reason: str = "",
    **more: Any,
) -> None:
    """``qty`` and ``price`` in nanos (0 price: none, e.g. a market order)."""
    if not log.isEnabledFor(logging.INFO):
        return
    fields = {
        "symbol": symbol,
        "side": side,
        "qty": fixed.to_str(qty),
        "price": fixed.to_str(price) if price else "",
        "client_order_id": client_order_id,
        "strategy": strategy,
        "reason": reason,
        **more,
    }
    log.info(event.value, extra={"fields": fields})


def trip_line(*, state: str, previous: str, source: str, who: str, reason: str, seq: int) -> None:
    log.info(
        OpsEvent.TRIP.value,
        extra={
            "fields": {
                "state": state,
                "previous": previous,
                "source": source,
                "who": who,
                "reason": reason,
                "seq": seq,
            }
        },
    )
