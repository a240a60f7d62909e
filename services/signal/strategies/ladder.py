"""Resting bid ladder: keeps ``levels`` buy limit orders resting below the bid on each of its symbols,
``step_bps`` apart, and replaces one when it ends (filled, canceled, expired). It is how a drill puts
working orders on the book (the kill switch must cancel them), and a skeleton for a passive strategy.

params: ``levels`` (default 5), ``step_bps`` (default 10), ``qty`` (units, default 1).
"""

from __future__ import annotations

from typing import Any

from common import wire
from services.signal.strategy import Intents, Strategy, fixed_param, int_param

PRICE_TICK = 10_000_000  # one cent in nanos: resting prices are whole cents


class LadderStrategy(Strategy):
    kind = "ladder"

    def configure(self, params: dict[str, Any]) -> None:
        self.levels = int_param(params, "levels", 5)
        self.step_bps = int_param(params, "step_bps", 10)
        self.qty = fixed_param(params, "qty", 1)
        unknown = set(params) - {"levels", "step_bps", "qty"}
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}")
        if not (self.levels and 1 <= self.levels <= 100 and self.step_bps and 1 <= self.step_bps <= 1_000):
            raise ValueError("levels must be 1..100 and step_bps 1..1000")

    def on_quote(self, quote: wire.Quote) -> Intents:
        if quote.bid_px <= 0:
            return None
        working = sum(
            1 for i in (*self.in_flight.values(), *self.open_orders.values()) if i.symbol == quote.symbol
        )
        out = []
        for level in range(working + 1, self.levels + 1):
            px = quote.bid_px * (10_000 - level * self.step_bps) // 10_000
            px -= px % PRICE_TICK
            if px > 0:
                out.append(self.buy(quote.symbol, self.qty, limit_px=px, tif="day"))
        return out or None
