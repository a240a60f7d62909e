"""The configured limits as the ints the compiled check reads: the global slots, and each symbol's
effective limits (the global value unless ``risk.symbols.<SYMBOL>`` overrides it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

import numpy as np

from common.config import RiskConfig, SymbolRiskLimits
from common.enums import TradingState
from common.fixed import to_fixed
from services.risk import checks

_MS = 1_000_000
_T = TypeVar("_T")


@dataclass(frozen=True)
class SymbolLimits:
    """One symbol's limits in nanos (ns for durations), as written into its state columns."""

    max_order_qty: int
    max_order_notional: int
    max_position: int
    price_band_bps: int
    max_open_orders: int
    max_quote_age_ns: int
    duplicate_window_ns: int
    allowed: bool
    short_allowed: bool

    def write(self, row: np.ndarray) -> None:
        row[checks.S_MAX_ORDER_QTY] = checks.cap(self.max_order_qty)
        row[checks.S_MAX_ORDER_NOTIONAL] = checks.cap(self.max_order_notional)
        row[checks.S_MAX_POSITION] = checks.cap(self.max_position)
        row[checks.S_PRICE_BAND_BPS] = self.price_band_bps
        row[checks.S_MAX_OPEN_ORDERS] = self.max_open_orders
        row[checks.S_MAX_QUOTE_AGE_NS] = checks.cap(self.max_quote_age_ns)
        row[checks.S_DUP_WINDOW_NS] = checks.cap(self.duplicate_window_ns)
        row[checks.S_ALLOWED] = int(self.allowed)
        row[checks.S_SHORT_ALLOWED] = int(self.short_allowed)


@dataclass
class RiskLimits:
    """Global slots plus how to derive each symbol's limits."""

    globals: np.ndarray  # int64[N_LIMITS]
    default: SymbolLimits
    overrides: dict[str, SymbolRiskLimits] = field(default_factory=dict)
    allow_symbols: frozenset[str] | None = None
    deny_symbols: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, r: RiskConfig) -> RiskLimits:
        default = SymbolLimits(
            max_order_qty=to_fixed(r.max_order_qty),
            max_order_notional=to_fixed(r.max_order_notional),
            max_position=to_fixed(r.max_position_qty),
            price_band_bps=r.price_band_bps,
            max_open_orders=r.max_open_orders_per_symbol,
            max_quote_age_ns=r.max_quote_age_ms * _MS,
            duplicate_window_ns=r.duplicate_window_ms * _MS,
            allowed=True,
            short_allowed=r.allow_short,
        )
        return cls(
            globals=global_limits(r),
            default=default,
            overrides=dict(r.symbols),
            allow_symbols=None if r.allow_symbols is None else frozenset(r.allow_symbols),
            deny_symbols=frozenset(r.deny_symbols),
        )

    def for_symbol(self, symbol: str) -> SymbolLimits:
        d = self.default
        o = self.overrides.get(symbol)
        allowed = symbol not in self.deny_symbols and (
            self.allow_symbols is None or symbol in self.allow_symbols
        )
        if o is None:
            return SymbolLimits(**{**d.__dict__, "allowed": allowed})
        return SymbolLimits(
            max_order_qty=_nanos_or(o.max_order_qty, d.max_order_qty),
            max_order_notional=_nanos_or(o.max_order_notional, d.max_order_notional),
            max_position=_nanos_or(o.max_position_qty, d.max_position),
            price_band_bps=_or(o.price_band_bps, d.price_band_bps),
            max_open_orders=_or(o.max_open_orders, d.max_open_orders),
            max_quote_age_ns=d.max_quote_age_ns if o.max_quote_age_ms is None else o.max_quote_age_ms * _MS,
            duplicate_window_ns=(
                d.duplicate_window_ns if o.duplicate_window_ms is None else o.duplicate_window_ms * _MS
            ),
            allowed=allowed,
            short_allowed=_or(o.allow_short, d.short_allowed),
        )


def global_limits(r: RiskConfig, trading_state: TradingState = TradingState.ACTIVE) -> np.ndarray:
    g = np.zeros(checks.N_LIMITS, dtype=np.int64)
    g[checks.L_REQUIRE_QUOTE] = int(r.require_quote)
    g[checks.L_TRADING_STATE] = trading_state.code
    g[checks.L_MAX_GROSS] = checks.cap(to_fixed(r.max_gross_exposure))
    g[checks.L_MAX_NET] = checks.cap(to_fixed(r.max_net_exposure))
    g[checks.L_MAX_OPEN_ORDERS] = r.max_open_orders
    g[checks.L_RATE], g[checks.L_BURST] = _bucket(r.order_rate_per_s, r.order_rate_burst)
    g[checks.L_STRATEGY_RATE], g[checks.L_STRATEGY_BURST] = _bucket(
        r.strategy_order_rate_per_s, r.strategy_order_rate_burst
    )
    g[checks.L_MAX_DAILY_LOSS] = checks.cap(to_fixed(r.max_daily_loss))
    g[checks.L_DAY_PNL] = 0
    g[checks.L_BUYING_POWER] = checks.BUYING_POWER_UNKNOWN
    return g


def _bucket(rate_per_s: Decimal | None, burst: int) -> tuple[int, int]:
    """(nano-orders per second, bucket size in nano-orders); a size of 0 turns the bucket off."""
    if rate_per_s is None:
        return 0, 0
    return to_fixed(rate_per_s), burst * 10**9


def _nanos_or(value: Decimal | None, default: int) -> int:
    return default if value is None else to_fixed(value)


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value
