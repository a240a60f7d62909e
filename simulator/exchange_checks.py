"""Pre-trade checks: order shape, price increments, order classes, buying power and sellable qty.

Rejections here are synchronous (HTTP 4xx, no order is created).

Buying power and shorting (non-margin, multiplier 1)
    buying_power   = cash - 2 * |cost basis of short positions| (the short proceeds plus the same
                     amount again as collateral) - holds of open buy orders, floored at 0.
                     A buy order holds remaining qty x (limit price | stop price | ask at entry),
                     a notional buy its remaining notional. Exit legs hold nothing.
    shorting       a sell while long may close the position but never flip it short in one order:
                     beyond the long qty not held by open sell orders -> 403 40310000 "insufficient
                     qty available for order" with available / existing_qty / held_for_orders /
                     related_orders / symbol (as Alpaca). A sell while flat or short opens or adds
                     to a short: stocks only (crypto, or account configuration ``no_shorting`` ->
                     the same 403); fractional short -> 422; its qty must fit in buying power.
    fractional     stocks: fractional qty or notional only for simple market day orders (422).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any

from simulator import errors
from simulator.accounts import Account
from simulator.exchange_assets import Asset, AssetBook
from simulator.exchange_book import HUNDRED, OrderBook, Touch
from simulator.models import OrderBody
from simulator.orders import NANO, ZERO, SimOrder, fmt


def _is_whole(q: Decimal) -> bool:
    return q == q.to_integral_value()


def _decimals(p: Decimal) -> int:
    exp = p.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


class PreTradeChecks:
    """Reads the account, its configuration, the assets and the book; changes none of them."""

    def __init__(
        self, account: Account, account_config: Mapping[str, Any], assets: AssetBook, book: OrderBook
    ) -> None:
        self._account = account
        self._config = account_config
        self._assets = assets
        self._book = book

    def buying_power(self) -> Decimal:
        bp = self._account.cash
        for pos in self._account.positions.values():
            if pos.qty < 0:
                bp += 2 * pos.cost_basis  # cost_basis is negative for shorts
        for order in self._book.orders():
            if order.side == "buy" and order.role is None and not order.terminal and not order.swap_pending:
                bp -= self._hold(order)
        return max(bp, ZERO)

    def check_order(self, body: OrderBody, closing: bool) -> Asset:
        """The order's asset if the order may be placed, else the ``ApiError`` to answer with."""
        if self._config["suspend_trade"]:
            raise errors.forbidden("trading is suspended for this account")
        asset = self._assets.find(body.symbol)
        if asset is None:
            raise errors.unprocessable(f'asset "{body.symbol}" not found')
        tif, typ, cls = body.time_in_force, body.type, body.order_class or "simple"
        if tif in ("opg", "cls"):
            raise errors.unprocessable(f"time_in_force {tif} is not supported by this venue")
        if asset.is_crypto and tif not in ("gtc", "ioc"):
            raise errors.unprocessable("invalid crypto time_in_force")
        self._check_price_fields(body, asset)
        if body.extended_hours and not (typ == "limit" and tif == "day"):
            raise errors.unprocessable("extended hours order must be DAY limit orders")
        if body.notional is not None and (typ != "market" or cls != "simple"):
            raise errors.unprocessable("notional orders must be simple market orders")
        fractional = body.notional is not None or not _is_whole(body.qty or ZERO)
        if fractional and not asset.is_crypto and not (typ == "market" and tif == "day" and cls == "simple"):
            raise errors.unprocessable(
                "fractional orders must be simple market orders with time_in_force day"
            )
        self._check_class(body, asset)
        touch = self._book.touch(asset.symbol)
        if typ == "market" and (touch is None or not (touch.ask_px if body.side == "buy" else touch.bid_px)):
            raise errors.unprocessable(
                f"no quote for {asset.symbol} yet: the simulator cannot price a market order without one"
            )
        self._check_funds(body, asset, touch, closing)
        return asset

    def _check_price_fields(self, body: OrderBody, asset: Asset) -> None:
        typ = body.type
        needs_limit = typ in ("limit", "stop_limit") and body.order_class != "oco"
        if needs_limit and body.limit_price is None:
            raise errors.validation(f"limit_price is required for {typ} orders")
        if typ in ("market", "stop", "trailing_stop") and body.limit_price is not None:
            raise errors.validation(f"limit_price is not allowed for {typ} orders")
        if typ in ("stop", "stop_limit") and body.stop_price is None:
            raise errors.validation(f"stop_price is required for {typ} orders")
        if typ in ("market", "limit", "trailing_stop") and body.stop_price is not None:
            raise errors.validation(f"stop_price is not allowed for {typ} orders")
        trails = (body.trail_price is not None) + (body.trail_percent is not None)
        if typ == "trailing_stop" and trails != 1:
            raise errors.validation("trailing_stop orders need exactly one of trail_price or trail_percent")
        if typ != "trailing_stop" and trails:
            raise errors.validation(f"trail_price / trail_percent are not allowed for {typ} orders")
        if body.trail_percent is not None and body.trail_percent >= HUNDRED:
            raise errors.validation("trail_percent must be below 100")
        if not asset.is_crypto:
            prices = [("limit_price", body.limit_price), ("stop_price", body.stop_price)]
            if body.take_profit:
                prices.append(("take_profit.limit_price", body.take_profit.limit_price))
            if body.stop_loss:
                prices += [
                    ("stop_loss.stop_price", body.stop_loss.stop_price),
                    ("stop_loss.limit_price", body.stop_loss.limit_price),
                ]
            for name, px in prices:
                if px is not None and _decimals(px) > (2 if px >= 1 else 4):
                    raise errors.unprocessable(
                        f"invalid {name} {fmt(px)}. sub-penny increment does not fulfill minimum pricing criteria"
                    )

    def _check_class(self, body: OrderBody, asset: Asset) -> None:
        cls = body.order_class or "simple"
        if cls == "simple":
            return
        if asset.is_crypto:
            raise errors.unprocessable(f"{cls} orders are not supported for crypto")
        tp, sl = body.take_profit, body.stop_loss
        if cls in ("bracket", "oco") and (tp is None or sl is None):
            raise errors.unprocessable(f"{cls} orders require take_profit and stop_loss")
        if cls == "oto" and tp is None and sl is None:
            raise errors.unprocessable("oto orders require take_profit or stop_loss")
        if cls == "oco" and body.type != "limit":
            raise errors.unprocessable("oco orders must be limit orders")
        if cls in ("bracket", "oto") and body.type not in ("market", "limit"):
            raise errors.unprocessable(f"{cls} orders must be entry orders (market or limit)")
        if body.time_in_force not in ("day", "gtc"):
            raise errors.unprocessable(f"{cls} orders must be day or gtc")
        if body.extended_hours:
            raise errors.unprocessable(f"{cls} orders cannot be extended hours")
        if tp is not None and sl is not None:
            exit_is_sell = body.side == "buy" if cls != "oco" else body.side == "sell"
            ok = tp.limit_price > sl.stop_price if exit_is_sell else tp.limit_price < sl.stop_price
            if not ok:
                raise errors.unprocessable(
                    "take_profit.limit_price must be "
                    + ("above" if exit_is_sell else "below")
                    + " stop_loss.stop_price"
                )

    def _check_funds(self, body: OrderBody, asset: Asset, touch: Touch | None, closing: bool) -> None:
        side = body.side
        ref = body.limit_price or body.stop_price
        if ref is None and touch is not None:
            ref = touch.ask_px if side == "buy" else touch.bid_px
        qty = body.qty
        if qty is None and body.notional is not None:
            qty = (body.notional / ref).quantize(NANO, rounding=ROUND_DOWN) if ref else ZERO
        assert qty is not None
        position = self._account.position_qty(asset.symbol)
        if closing:
            held = self._held_for_orders(asset.symbol, side)
            available = abs(position) - held
            if qty > available:
                raise self._insufficient_qty(asset, qty, available, position, held)
            return
        if side == "buy":
            cost = body.notional if body.notional is not None else qty * (ref or ZERO)
            self._check_buying_power(cost)
            return
        held = self._held_for_orders(asset.symbol, "sell")
        if position > 0:  # a sell from long may close it, never flip it short in the same order
            available = max(position - held, ZERO)
            if qty <= available or (body.order_class == "oco" and qty <= position):
                return
            raise self._insufficient_qty(asset, qty, available, position, held)
        if asset.is_crypto or self._config["no_shorting"]:
            raise self._insufficient_qty(asset, qty, ZERO, position, held)
        if not _is_whole(qty):
            raise errors.unprocessable("fractional orders cannot be sold short")
        self._check_buying_power(qty * (ref or ZERO))

    def _check_buying_power(self, cost: Decimal) -> None:
        bp = self.buying_power()
        if cost > bp:
            raise errors.forbidden("insufficient buying power", buying_power=fmt(bp), cost_basis=fmt(cost))

    def _insufficient_qty(
        self, asset: Asset, qty: Decimal, available: Decimal, position: Decimal, held: Decimal
    ) -> errors.ApiError:
        return errors.forbidden(
            f"insufficient qty available for order (requested: {fmt(qty)}, available: {fmt(available)})",
            available=fmt(available),
            existing_qty=fmt(position),
            held_for_orders=fmt(held),
            related_orders=[o.id for o in self._book.orders() if o.symbol == asset.symbol and not o.terminal],
            symbol=asset.symbol,
        )

    def _held_for_orders(self, symbol: str, side: str) -> Decimal:
        """Qty of open entry orders on this side (exit legs are not counted twice)."""
        held = ZERO
        for order in self._book.orders():
            if (
                order.symbol == symbol
                and order.side == side
                and order.parent is None
                and not order.terminal
                and not order.swap_pending
            ):
                held += order.remaining_qty or ZERO
        return held

    def _hold(self, order: SimOrder) -> Decimal:
        if order.notional is not None:
            return max(order.notional - order.filled_notional, ZERO)
        px = order.limit_price or order.stop_price or order.hold_px or ZERO
        return (order.remaining_qty or ZERO) * px
