"""The account as Alpaca reports it (GET /v2/account) and its default configuration.

Accounting (non-margin, multiplier 1, see simulator/accounts.py for positions)
    cash           moves by exactly qty*price per fill (short sales credit cash).
    equity         = cash + sum(qty * mark) over positions (shorts have negative value);
                     mark = quote midpoint, else last trade, else average entry price.
    buying_power   see simulator/exchange_checks.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from simulator.accounts import Account
from simulator.orders import ZERO, fmt, rfc3339

DEFAULT_ACCOUNT_CONFIG: dict[str, Any] = {
    "dtbp_check": "entry",
    "fractional_trading": True,
    "max_margin_multiplier": "1",
    "no_shorting": False,
    "pdt_check": "entry",
    "suspend_trade": False,
    "trade_confirm_email": "all",
    "ptp_no_exception_entry": False,
    "max_options_trading_level": 0,
}


def account_json(
    account: Account,
    config: Mapping[str, Any],
    mark_of: Callable[[str], Decimal | None],
    buying_power: Decimal,
    now_ns: int,
) -> dict[str, Any]:
    long_mv = short_mv = ZERO
    for sym, pos in account.positions.items():
        mark = mark_of(sym)
        value = pos.qty * (mark if mark is not None else pos.avg_entry_price)
        if pos.qty > 0:
            long_mv += value
        else:
            short_mv += value
    equity = account.cash + long_mv + short_mv
    bp = fmt(buying_power)
    created = rfc3339(0)
    return {
        "id": account.id,
        "account_number": account.account_number,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "buying_power": bp,
        "regt_buying_power": bp,
        "daytrading_buying_power": "0",
        "effective_buying_power": bp,
        "non_marginable_buying_power": bp,
        "options_buying_power": "0",
        "bod_dtbp": "0",
        "cash": fmt(account.cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": fmt(equity),
        "pattern_day_trader": False,
        "trading_blocked": bool(config["suspend_trade"]),
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": created,
        "trade_suspended_by_user": bool(config["suspend_trade"]),
        "multiplier": "1",
        "shorting_enabled": not config["no_shorting"],
        "equity": fmt(equity),
        "last_equity": fmt(account.starting_cash),
        "long_market_value": fmt(long_mv),
        "short_market_value": fmt(short_mv),
        "position_market_value": fmt(long_mv - short_mv),
        "initial_margin": fmt(long_mv - short_mv),
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": (rfc3339(now_ns) or "")[:10],
        "crypto_tier": 1,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }
