"""The simulated venue: orders in, fills and trade_updates events out, one account.

``Exchange`` is the facade rest.py, feed.py, control.py and the tests use. Its parts:
    simulator/exchange_book.py       order book: market state (touches), matching of resting and
                                     triggered orders, bracket / oco / oto groups, events
    simulator/exchange_lifecycle.py  trading session open/close, acknowledgement delays,
                                     pending_* steps, asynchronous rejections, cancel / replace
    simulator/exchange_checks.py     pre-trade checks: order shape, pricing, buying power, shorting
    simulator/accounts.py            cash and positions
Each module's docstring describes its part of the model. Every fill is at the touch price, never
better or worse; rejections are synchronous (HTTP 4xx, no order created) unless armed as
asynchronous (``arm_rejections``).

Accounting (non-margin, multiplier 1, see simulator/accounts.py for positions)
    cash           moves by exactly qty*price per fill (short sales credit cash).
    equity         = cash + sum(qty * mark) over positions (shorts have negative value);
                     mark = quote midpoint, else last trade, else average entry price.
All money and quantities are Decimal; the only rounding is that of notional fills (down to 1e-9,
see simulator/exchange_book.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from common.config import SimConfig
from simulator import errors
from simulator.accounts import Account
from simulator.exchange_assets import AssetBook
from simulator.exchange_book import HUNDRED, EventListener, Touch
from simulator.exchange_checks import PreTradeChecks
from simulator.exchange_lifecycle import OrderLifecycle, Scheduler, loop_schedule
from simulator.models import AccountConfigPatch, OrderBody
from simulator.orders import NANO, ZERO, SimOrder, fmt, rfc3339

__all__ = ["DEFAULT_ACCOUNT_CONFIG", "EventListener", "Exchange", "Scheduler", "Touch"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
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


class Exchange(OrderLifecycle, PreTradeChecks):
    def __init__(
        self, cfg: SimConfig, now_ns: Callable[[], int] = time.time_ns, schedule: Scheduler | None = None
    ) -> None:
        """``schedule`` runs the delayed steps (acks, async rejections); default: the running loop."""
        self.cfg = cfg
        self.now_ns = now_ns
        self.scheduler = schedule or loop_schedule
        self.session_open = True
        self._reject_left = 0
        self._reject_reason = ""
        self._epoch = 0
        self.assets = AssetBook([*cfg.stocks, *cfg.quiet_stocks], cfg.crypto)
        self._listeners = []
        self._touch = {}
        self._last_trade = {}
        self._event_seq = 0
        self._held = None
        self._ack_views = {}
        self.state_version = 0
        self.reset()

    # ---- state and request log -----------------------------------------------------------

    def reset(self, cash: Decimal | None = None) -> None:
        """Flat account with fresh cash, no orders, no used client_order_ids, empty request log.
        Market state (touches, last trades) and the venue's session and armed rejections are kept;
        delayed steps of the old orders are dropped."""
        self.account = Account(self.cfg.starting_cash if cash is None else cash)
        self.account_config = dict(DEFAULT_ACCOUNT_CONFIG)
        self._orders = {}
        self._by_coid = {}
        self._resting = {}
        self._queued = []  # accepted while the session is closed, in arrival order
        self._seq = 0
        self._epoch += 1
        self._log: list[dict[str, Any]] = []
        self.state_version += 1
        for touch in self._touch.values():
            touch.bid_avail, touch.ask_avail = touch.bid_sz, touch.ask_sz

    def record_request(self, entry: dict[str, Any]) -> None:
        self._log.append(entry)

    def order_log(self) -> list[dict[str, Any]]:
        return list(self._log)

    # ---- queries -------------------------------------------------------------------------

    def list_orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        nested: bool = False,
        side: str | None = None,
        symbols: list[str] | None = None,
        asset_class: str | None = None,
    ) -> list[SimOrder]:
        # Clients send microsecond timestamps (isoformat), so compare at microsecond resolution.
        after_us = (after - _EPOCH) // _MICRO if after else None
        until_us = (until - _EPOCH) // _MICRO if until else None
        wanted = {(a.symbol if (a := self.assets.find(s)) else s) for s in symbols} if symbols else None
        out = []
        for order in self._orders.values():
            if nested and order.parent is not None:
                continue
            if (status == "open" and order.terminal) or (status == "closed" and not order.terminal):
                continue
            if after_us is not None and order.created_ns // 1000 <= after_us:
                continue
            if until_us is not None and order.created_ns // 1000 >= until_us:
                continue
            if side and order.side != side:
                continue
            if wanted is not None and order.symbol not in wanted:
                continue
            if asset_class and order.asset_class != asset_class:
                continue
            out.append(order)
        out.sort(key=lambda o: o.seq, reverse=direction == "desc")
        return out[:limit]

    def positions_json(self) -> list[dict[str, Any]]:
        return [p.to_json(self.mark(sym)) for sym, p in sorted(self.account.positions.items())]

    def position_json(self, key: str) -> dict[str, Any]:
        asset = self.assets.find(key)
        pos = self.account.positions.get(asset.symbol) if asset else None
        if pos is None:
            raise errors.not_found("position does not exist")
        return pos.to_json(self.mark(pos.asset.symbol))

    def account_json(self) -> dict[str, Any]:
        acct = self.account
        long_mv = short_mv = ZERO
        for sym, pos in acct.positions.items():
            mark = self.mark(sym)
            value = pos.qty * (mark if mark is not None else pos.avg_entry_price)
            if pos.qty > 0:
                long_mv += value
            else:
                short_mv += value
        equity = acct.cash + long_mv + short_mv
        bp = fmt(self.buying_power())
        created = rfc3339(0)
        return {
            "id": acct.id,
            "account_number": acct.account_number,
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
            "cash": fmt(acct.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": fmt(equity),
            "pattern_day_trader": False,
            "trading_blocked": bool(self.account_config["suspend_trade"]),
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": created,
            "trade_suspended_by_user": bool(self.account_config["suspend_trade"]),
            "multiplier": "1",
            "shorting_enabled": not self.account_config["no_shorting"],
            "equity": fmt(equity),
            "last_equity": fmt(acct.starting_cash),
            "long_market_value": fmt(long_mv),
            "short_market_value": fmt(short_mv),
            "position_market_value": fmt(long_mv - short_mv),
            "initial_margin": fmt(long_mv - short_mv),
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "balance_asof": (rfc3339(self.now_ns()) or "")[:10],
            "crypto_tier": 1,
            "options_approved_level": 0,
            "options_trading_level": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def patch_config(self, patch: AccountConfigPatch) -> dict[str, Any]:
        for key, value in patch.model_dump(exclude_none=True).items():
            self.account_config[key] = value
        self.state_version += 1
        return dict(self.account_config)

    # ---- order entry ---------------------------------------------------------------------

    def submit(self, body: OrderBody, closing: bool = False) -> SimOrder:
        """Validate, place and match at once. ``closing`` = a position close (no BP check)."""
        asset = self._check_order(body, closing)
        order_class = body.order_class or "simple"
        coid = body.client_order_id or str(uuid.uuid4())
        if coid in self._by_coid:
            raise errors.validation("client_order_id must be unique")
        limit_price = body.limit_price
        if order_class == "oco" and limit_price is None and body.take_profit is not None:
            limit_price = body.take_profit.limit_price
        touch = self._touch.get(asset.symbol)
        root = self._new_order(
            asset,
            body.side,
            body.type,
            body.time_in_force,
            body.qty,
            body.notional,
            limit_price,
            body.stop_price,
            body.trail_price,
            body.trail_percent,
            body.extended_hours,
            order_class,
            coid,
        )
        if touch is not None and body.side == "buy":
            root.hold_px = touch.ask_px or None
        exit_side = "sell" if body.side == "buy" else "buy"
        if order_class in ("bracket", "oto"):
            if body.take_profit:
                self._add_leg(root, "take_profit", exit_side, "limit", body.take_profit.limit_price, None)
            if body.stop_loss:
                sl_type = "stop_limit" if body.stop_loss.limit_price else "stop"
                self._add_leg(
                    root,
                    "stop_loss",
                    exit_side,
                    sl_type,
                    body.stop_loss.limit_price,
                    body.stop_loss.stop_price,
                )
        elif order_class == "oco" and body.stop_loss:
            root.role = "take_profit"
            sl_type = "stop_limit" if body.stop_loss.limit_price else "stop"
            self._add_leg(
                root, "stop_loss", body.side, sl_type, body.stop_loss.limit_price, body.stop_loss.stop_price
            )
        self._admit(root)
        return root

    # ---- positions -----------------------------------------------------------------------

    def close_position(
        self, key: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> SimOrder:
        asset = self.assets.find(key)
        pos = self.account.positions.get(asset.symbol) if asset else None
        if pos is None or asset is None:
            raise errors.not_found("position does not exist")
        if qty is not None and percentage is not None:
            raise errors.validation("only one of qty or percentage may be given")
        if percentage is not None:
            if not 0 < percentage <= HUNDRED:
                raise errors.validation("percentage must be in (0, 100]")
            qty = (abs(pos.qty) * percentage / HUNDRED).quantize(NANO, rounding=ROUND_DOWN)
        if qty is None:
            qty = abs(pos.qty)
        if qty <= 0:
            raise errors.validation("qty to close must be positive")
        body = OrderBody(
            symbol=asset.symbol,
            qty=qty,
            side="sell" if pos.qty > 0 else "buy",
            type="market",
            time_in_force="gtc" if asset.is_crypto else "day",
        )
        return self.submit(body, closing=True)

    def close_all_positions(self, cancel_orders: bool) -> list[dict[str, Any]]:
        if cancel_orders:
            self.cancel_all()
        out: list[dict[str, Any]] = []
        for symbol in sorted(self.account.positions):
            try:
                order = self.close_position(symbol)
                body = self.accepted_view(order)
                out.append({"symbol": symbol, "status": 200, "order_id": order.id, "body": body})
            except errors.ApiError as exc:
                out.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
        return out
