"""What a strategy hands back must be a sane order intent before it leaves the process.

A strategy that breaks these rules is disabled (it is buggy; its later intents cannot be trusted);
nothing it returned in that call is sent."""

from __future__ import annotations

from typing import Any

from common import wire
from common.enums import OrderSide, OrderType, TimeInForce

MAX_INTENTS_PER_CALLBACK = 100  # more from one callback is a runaway loop, not a strategy
_INT64_MAX = (1 << 63) - 1
_SIDES = frozenset(OrderSide.values())
_ORDER_TYPES = frozenset(OrderType.values())
_TIFS = frozenset(TimeInForce.values())
_NANOS_FIELDS = ("limit_px", "stop_px", "tick_exch_ns", "tick_recv_ns", "signal_ns", "deadline_ns")


class InvalidIntents(ValueError):
    pass


def _int_field(intent: wire.OrderIntent, name: str, minimum: int) -> None:
    value = getattr(intent, name)
    if type(value) is not int:  # bool and float are not int nanos
        raise InvalidIntents(f"{name} must be int nanos, got {type(value).__name__} {value!r}")
    if not minimum <= value <= _INT64_MAX:
        raise InvalidIntents(f"{name} {value} is out of range")


def check_intents(
    result: Any, strategy: str, callback: str, seen_ids: dict[str, Any]
) -> list[wire.OrderIntent]:
    """``result`` as a list of intents of ``strategy``; InvalidIntents says what is wrong."""
    if result is None:
        return []
    if not isinstance(result, list):
        raise InvalidIntents(
            f"{callback} must return a list of OrderIntent or None, got {type(result).__name__}"
        )
    if len(result) > MAX_INTENTS_PER_CALLBACK:
        raise InvalidIntents(
            f"{callback} returned {len(result)} intents (at most {MAX_INTENTS_PER_CALLBACK})"
        )
    ids: set[str] = set()
    for intent in result:
        if not isinstance(intent, wire.OrderIntent):
            raise InvalidIntents(f"{callback} returned a {type(intent).__name__}, not an OrderIntent")
        if intent.strategy != strategy:
            raise InvalidIntents(f"intent names strategy {intent.strategy!r}, not {strategy!r}")
        if not isinstance(intent.intent_id, str) or not intent.intent_id:
            raise InvalidIntents("intent_id must be a non-empty str (use Strategy.buy/sell)")
        if intent.intent_id in ids or intent.intent_id in seen_ids:
            raise InvalidIntents(f"intent_id {intent.intent_id!r} reused")
        ids.add(intent.intent_id)
        if not isinstance(intent.symbol, str) or not intent.symbol:
            raise InvalidIntents(f"symbol must be a non-empty str, got {intent.symbol!r}")
        if intent.side not in _SIDES or intent.order_type not in _ORDER_TYPES or intent.tif not in _TIFS:
            raise InvalidIntents(
                f"bad side/order_type/tif: {intent.side!r}/{intent.order_type!r}/{intent.tif!r}"
            )
        qty = intent.qty
        ok = type(qty) is int and 1 <= qty <= _INT64_MAX
        for name in _NANOS_FIELDS:
            value = getattr(intent, name)
            ok = ok and type(value) is int and 0 <= value <= _INT64_MAX
        if not ok:  # which field, and why
            _int_field(intent, "qty", 1)
            for name in _NANOS_FIELDS:
                _int_field(intent, name, 0)
    return result
