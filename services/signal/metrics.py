"""Signal-specific Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

INTENTS = Counter("zt_signal_intents_total", "Order intents sent to risk", ["strategy"])
DECISIONS = Counter("zt_signal_decisions_total", "Risk decisions received, by outcome", ["outcome"])
STRATEGY_ERRORS = Counter(
    "zt_signal_strategy_errors_total", "Strategies disabled after raising", ["strategy"]
)
