"""Benchmark probe: one buy limit order at the ask for every quote on its symbols.

params: ``qty`` (units, default 1), ``max_orders`` (default unlimited).
"""

from __future__ import annotations

from typing import Any

from common import wire
from services.signal.host import UNDECIDED
from services.signal.strategy import Intents, Strategy, fixed_param, int_param


class ProbeStrategy(Strategy):
    kind = "probe"

    def configure(self, params: dict[str, Any]) -> None:
        self.qty = fixed_param(params, "qty", 1)
        self.max_orders = int_param(params, "max_orders", None)
        unknown = set(params) - {"qty", "max_orders"}
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}")
        self.sent = 0

    def on_quote(self, quote: wire.Quote) -> Intents:
        if quote.ask_px <= 0 or (self.max_orders is not None and self.sent >= self.max_orders):
            return None
        self.sent += 1
        return [self.buy(quote.symbol, self.qty, limit_px=quote.ask_px, tif="day")]

    def on_rejected(self, intent: wire.OrderIntent, decision: wire.RiskDecision) -> Intents:
        # max_orders caps orders sent on to the venue, not attempts. Risk may have sent one on
        # although its answer timed out or was unreadable: those still count.
        if decision.reason not in UNDECIDED:
            self.sent -= 1
        return None
