"""Label values that come from configuration only: a symbol or strategy nobody configured is
folded into ``other``, so no frame, fill or venue reply can grow a metric's series."""

from __future__ import annotations

from collections.abc import Iterable

from common.config import Settings

OTHER = "other"
ALL = "all"  # the strategy label of the account's own book (every strategy, and orders we adopted)


class LabelFold:
    """``fold(value)``: the value itself when configured, else ``other``."""

    def __init__(self, configured: Iterable[str]) -> None:
        self.configured = frozenset(configured) - {OTHER, ALL}

    def __call__(self, value: str) -> str:
        return value if value in self.configured else OTHER

    @property
    def labels(self) -> tuple[str, ...]:
        """Every value this fold can return, ``other`` last."""
        return (*sorted(self.configured), OTHER)


def configured_symbols(settings: Settings) -> frozenset[str]:
    """Subscribed, risk-configured, allowed and traded-by-a-strategy symbols."""
    md, risk = settings.market_data, settings.risk
    traded = (s for strategy in settings.signal.strategies for s in strategy.symbols)
    return frozenset({*md.stocks, *md.crypto, *risk.symbols, *(risk.allow_symbols or ()), *traded})


def configured_strategies(settings: Settings) -> frozenset[str]:
    return frozenset(s.name for s in settings.signal.strategies)
