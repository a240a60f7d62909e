"""The simulator's order record and its Alpaca JSON form (every Order key present, nulls where unset)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

ZERO = Decimal(0)
NANO = Decimal("1e-9")

TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
STOP_TYPES = frozenset({"stop", "stop_limit", "trailing_stop"})


def fmt(value: Decimal | None) -> str | None:
    """Alpaca-style plain decimal string ("190.12", "10", "0.5"), or None."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def quantize9(value: Decimal) -> Decimal:
    return value.quantize(NANO, rounding=ROUND_HALF_EVEN)


def rfc3339(ns: int | None) -> str | None:
    """UTC RFC 3339 with nanoseconds and Z, e.g. 2026-11-21T23:55:00.123456789Z."""
    if ns is None:
        return None
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


@dataclass(eq=False, slots=True)
class SimOrder:
    id: str
    client_order_id: str
    symbol: str
    asset_id: str
    asset_class: str
    side: str  # buy | sell
    type: str  # market | limit | stop | stop_limit | trailing_stop
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    order_class: str
    seq: int
    created_ns: int
    status: str = "new"
    updated_ns: int = 0
    hwm: Decimal | None = None
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    filled_ns: int | None = None
    canceled_ns: int | None = None
    cancel_requested_ns: int | None = None
    expired_ns: int | None = None
    failed_ns: int | None = None
    replaced_ns: int | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: list[SimOrder] = field(default_factory=list)
    parent: SimOrder | None = None
    role: str | None = None  # "take_profit" | "stop_loss" for bracket/oco/oto exits
    active: bool = True  # held bracket legs are inactive until the entry fills
    triggered: bool = False  # stop-type orders: the stop has been reached
    hold_px: Decimal | None = None  # reference price for buying-power holds of market-like buys
    swap_pending: bool = False  # a replacement returned by PATCH, not yet swapped in for the old order

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def remaining_qty(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

    @property
    def avg_fill_price(self) -> Decimal | None:
        if not self.filled_qty:
            return None
        return quantize9(self.filled_notional / self.filled_qty)

    def waits_for_trigger(self) -> bool:
        return self.type in STOP_TYPES and not self.triggered

    def acts_as_limit(self) -> bool:
        """Once triggered, a stop_limit behaves like a limit; stop and trailing_stop like a market."""
        return self.type == "limit" or self.type == "stop_limit"

    def to_json(self, with_legs: bool = True) -> dict[str, Any]:
        legs = [leg.to_json(False) for leg in self.legs] if with_legs and self.legs else None
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_ns),
            "updated_at": rfc3339(self.updated_ns or self.created_ns),
            "submitted_at": rfc3339(self.created_ns),
            "filled_at": rfc3339(self.filled_ns),
            "expired_at": rfc3339(self.expired_ns),
            "expires_at": None,
            "canceled_at": rfc3339(self.canceled_ns),
            "cancel_requested_at": rfc3339(self.cancel_requested_ns),
            "failed_at": rfc3339(self.failed_ns),
            "replaced_at": rfc3339(self.replaced_ns),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": fmt(self.notional),
            "qty": fmt(self.qty),
            "filled_qty": fmt(self.filled_qty),
            "filled_avg_price": fmt(self.avg_fill_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": None,
            "time_in_force": self.time_in_force,
            "limit_price": fmt(self.limit_price),
            "stop_price": fmt(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": legs,
            "trail_percent": fmt(self.trail_percent),
            "trail_price": fmt(self.trail_price),
            "hwm": fmt(self.hwm),
            "subtag": None,
            "source": None,
        }
