"""Signal holds intents back while trading is not ACTIVE: HALTED nothing, REDUCE_ONLY only what
shrinks the position risk last published; risk decides while signal has not heard the state."""

from __future__ import annotations

import pytest

from common import wire
from common.enums import RejectReason, TradingState
from common.fixed import to_fixed
from services.signal.service import held_back


def _intent(side: str, qty: str) -> wire.OrderIntent:
    return wire.OrderIntent(intent_id="r.1", strategy="s", symbol="AAPL", side=side, qty=to_fixed(qty))  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [None, TradingState.ACTIVE])
def test_active_or_unknown_sends_everything(state: TradingState | None) -> None:
    assert held_back(state, 0, _intent("buy", "1")) is None
    assert held_back(state, to_fixed(5), _intent("sell", "50")) is None


def test_halted_holds_everything_back() -> None:
    assert held_back(TradingState.HALTED, to_fixed(5), _intent("sell", "1")) is RejectReason.HALTED


@pytest.mark.parametrize(
    ("position", "side", "qty", "sent"),
    [
        ("5", "sell", "5", True),  # to flat
        ("5", "sell", "2", True),
        ("5", "sell", "6", False),  # flips to short
        ("5", "buy", "1", False),  # grows
        ("0", "sell", "1", False),  # opens
        ("-3", "buy", "3", True),
        ("-3", "sell", "1", False),
    ],
)
def test_reduce_only_sends_only_what_shrinks(position: str, side: str, qty: str, sent: bool) -> None:
    reason = held_back(TradingState.REDUCE_ONLY, to_fixed(position), _intent(side, qty))
    assert (reason is None) == sent
    assert sent or reason is RejectReason.REDUCE_ONLY
