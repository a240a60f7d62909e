"""Moving-average crossover with position awareness.

Keeps a fast and a slow simple moving average of the quote mid (``source = "quote"``) or of bar
closes (``source = "bar"``), per symbol. When fast > slow it wants to be long ``qty``; when
fast < slow it wants to be short ``qty`` (``allow_short = true``) or flat. It orders the difference
between that target and its position (from its own fills), one working order per symbol at a
time, as a marketable limit (buy at the ask, sell at the bid; the bar close when no quote is known).

params: ``fast`` (default 5), ``slow`` (default 20), ``qty`` (units, default 1),
``source`` ("quote" | "bar"), ``allow_short`` (default false).
Averages are compared exactly on integer sums (fast_sum * slow_n vs slow_sum * fast_n).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from common import wire
from services.signal.strategy import Intents, Strategy, fixed_param, int_param


@dataclass
class _Series:
    fast_n: int
    slow_n: int
    window: deque[int] = field(default_factory=deque)
    fast_sum: int = 0
    slow_sum: int = 0

    def add(self, value: int) -> int | None:
        """Add a sample; once the slow window is full, 1 (fast above), -1 (below) or 0 (equal)."""
        w = self.window
        w.append(value)
        self.slow_sum += value
        self.fast_sum += value
        if len(w) > self.fast_n:
            self.fast_sum -= w[-self.fast_n - 1]
        if len(w) > self.slow_n:
            self.slow_sum -= w.popleft()
        if len(w) < self.slow_n:
            return None
        lhs = self.fast_sum * self.slow_n
        rhs = self.slow_sum * self.fast_n
        return (lhs > rhs) - (lhs < rhs)


class MovingAverageCross(Strategy):
    kind = "ma_cross"

    def configure(self, params: dict[str, Any]) -> None:
        fast = int_param(params, "fast", 5)
        slow = int_param(params, "slow", 20, minimum=2)
        assert fast is not None and slow is not None
        if fast >= slow:
            raise ValueError(f"param 'fast' ({fast}) must be smaller than 'slow' ({slow})")
        self.fast, self.slow = fast, slow
        self.qty = fixed_param(params, "qty", 1)
        self.source = params.get("source", "quote")
        if self.source not in ("quote", "bar"):
            raise ValueError(f"param 'source' must be 'quote' or 'bar', got {self.source!r}")
        self.allow_short = params.get("allow_short", False)
        if not isinstance(self.allow_short, bool):
            raise ValueError("param 'allow_short' must be true or false")
        unknown = set(params) - {"fast", "slow", "qty", "source", "allow_short"}
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}")
        self._series: dict[str, _Series] = {}
        self._quotes: dict[str, wire.Quote] = {}

    def on_quote(self, quote: wire.Quote) -> Intents:
        if quote.bid_px <= 0 or quote.ask_px <= 0:
            return None
        self._quotes[quote.symbol] = quote
        if self.source != "quote":
            return None
        return self._on_sample(quote.symbol, (quote.bid_px + quote.ask_px) // 2, quote.bid_px, quote.ask_px)

    def on_bar(self, bar: wire.Bar) -> Intents:
        if self.source != "bar" or bar.close <= 0:
            return None
        q = self._quotes.get(bar.symbol)
        bid, ask = (q.bid_px, q.ask_px) if q else (bar.close, bar.close)
        return self._on_sample(bar.symbol, bar.close, bid, ask)

    def target(self, trend: int, symbol: str) -> int:
        if trend > 0:
            return self.qty
        if trend < 0:
            return -self.qty if self.allow_short else 0
        return self.position(symbol)  # equal averages: hold

    def _on_sample(self, symbol: str, value: int, bid: int, ask: int) -> Intents:
        series = self._series.get(symbol)
        if series is None:
            series = self._series[symbol] = _Series(self.fast, self.slow)
        trend = series.add(value)
        if trend is None or self.has_working_orders(symbol):
            return None
        delta = self.target(trend, symbol) - self.position(symbol)
        if delta > 0:
            return [self.buy(symbol, delta, limit_px=ask)]
        if delta < 0:
            return [self.sell(symbol, -delta, limit_px=bid)]
        return None
