"""Risk decision codes: a stable int (what the numba check returns) and a stable string (what goes on
the wire in ``RiskDecision.reason`` and into metrics). Never renumber; append new codes at the end."""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    OK = 0
    BAD_ORDER = 1  # qty <= 0, a price out of range, a limit order without a limit price
    HALTED = 2  # trading state HALTED: nothing goes out
    REDUCE_ONLY = 3  # trading state REDUCE_ONLY and the order would not reduce the position
    MAX_ORDER_QTY = 4
    NO_QUOTE = 5  # no current quote and one is required (always for market and stop orders)
    MAX_ORDER_NOTIONAL = 6
    PRICE_BAND = 7  # limit price too far from the quote mid
    MAX_POSITION = 8  # position + pending same-side qty + this order beyond the limit
    # Decided outside the numba check:
    EXPIRED = 9  # intent deadline passed before risk saw it
    EXECUTION_UNAVAILABLE = 10  # execution not connected
    UNKNOWN_SYMBOL = 11  # reserved for an instrument whitelist
    NOT_READY = 12  # positions not yet known (risk just started, or execution restarted)
    DUPLICATE = 13  # an intent whose client_order_id is already an open order

    @property
    def code(self) -> str:
        return self.name.lower()


REASON_CODES: dict[int, str] = {r.value: r.code for r in Reason}


def reason_code(value: int) -> str:
    """String code of an int reason; unknown ints are reported, never hidden."""
    return REASON_CODES.get(value, f"reason_{value}")


class TradingState(IntEnum):
    ACTIVE = 0
    REDUCE_ONLY = 1  # only orders that shrink the absolute position are allowed
    HALTED = 2  # every order is rejected
