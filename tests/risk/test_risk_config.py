"""The risk section of the configuration: values are validated (positive, finite, exact in nanos,
bounded) and per-symbol overrides reach the symbol's limits, other symbols keep the global ones."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from common.config import KillSwitchConfig, RiskConfig, Settings
from common.enums import TradingState
from common.fixed import to_fixed
from services.risk import checks
from services.risk.limits import RiskLimits


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_order_qty", "1e-10"),  # would round to 0 nanos
        ("max_order_qty", "0"),
        ("max_order_notional", "-5"),
        ("max_gross_exposure", "Infinity"),
        ("max_net_exposure", "NaN"),
        ("max_daily_loss", "1e13"),
        ("order_rate_per_s", "0"),
        ("max_quote_age_ms", 0),
        ("deny_symbols", ["aapl"]),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        RiskConfig(**{field: value})


def test_per_symbol_overrides_are_validated_and_unknown_keys_refused() -> None:
    with pytest.raises(ValidationError, match="max_order_qty"):
        RiskConfig(symbols={"AAPL": {"max_order_qty": "1e-10"}})
    with pytest.raises(ValidationError, match="max_qty"):
        RiskConfig(symbols={"AAPL": {"max_qty": "1"}})


def test_overrides_apply_to_their_symbol_only() -> None:
    cfg = RiskConfig(
        max_order_qty=Decimal("100"),
        allow_short=False,
        deny_symbols=["GME"],
        symbols={"AAPL": {"max_order_qty": "5", "allow_short": True, "duplicate_window_ms": 0}},
    )
    limits = RiskLimits.from_config(cfg)
    aapl, msft, gme = (limits.for_symbol(s) for s in ("AAPL", "MSFT", "GME"))
    assert (aapl.max_order_qty, aapl.short_allowed, aapl.duplicate_window_ns) == (to_fixed(5), True, 0)
    assert (msft.max_order_qty, msft.short_allowed, msft.duplicate_window_ns) == (to_fixed(100), False, 10**9)
    assert (aapl.allowed, msft.allowed, gme.allowed) == (True, True, False)


def test_rates_can_be_turned_off() -> None:
    cfg = RiskConfig(order_rate_per_s=None, strategy_order_rate_per_s="0.5", strategy_order_rate_burst=2)
    g = RiskLimits.from_config(cfg).globals
    assert (g[checks.L_RATE], g[checks.L_BURST]) == (0, 0)
    assert (g[checks.L_STRATEGY_RATE], g[checks.L_STRATEGY_BURST]) == (to_fixed("0.5"), to_fixed(2))


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"daily_loss": {"action": "active"}}, "daily_loss.action"),
        ({"drawdown": {"limit": "0"}}, "drawdown.limit"),
        ({"daily_loss": {"limit": "NaN"}}, "daily_loss.limit"),
        ({"reject_rate": {"max_count": 0}}, "reject_rate.max_count"),
        ({"order_rate": {"window_s": 0}}, "order_rate.window_s"),
        ({"stale_data": {"after_s": -1}}, "stale_data.after_s"),
        ({"latency": {"min_samples": 10, "max_samples": 5}}, "latency"),
        ({"latency": {"p99": 5}}, "latency.p99"),
    ],
)
def test_kill_switch_trigger_values_are_validated(section: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        KillSwitchConfig.model_validate(section)


def test_kill_switch_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZT_KILL_SWITCH__LATENCY__ACTION", "halted")
    monkeypatch.setenv("ZT_KILL_SWITCH__DAILY_LOSS__LIMIT", "1500.5")
    ks = Settings().kill_switch
    assert ks.latency.action is TradingState.HALTED and ks.daily_loss.limit == Decimal("1500.5")
    assert ks.daily_loss.flatten and ks.drawdown.action is TradingState.REDUCE_ONLY
