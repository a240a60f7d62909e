"""Cash and positions of the one simulated account, kept exactly in Decimal.

A position's ``qty`` is signed (negative = short) and its ``cost_basis`` is signed the same way
(qty x average entry price). Adding to a position adds qty*px to the cost basis exactly; reducing it
removes a pro-rata share of the cost basis (rounded to 1e-9, the only rounding in the books);
a fill that crosses through zero closes the old side in full and opens the rest at the fill price.
Cash moves by exactly qty*px on every fill (buys pay, sells, short sales included, receive).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.exchange_assets import Asset
from simulator.orders import ZERO, fmt, quantize9


@dataclass(slots=True)
class Position:
    asset: Asset
    qty: Decimal  # signed
    cost_basis: Decimal  # signed, qty * avg_entry_price

    @property
    def avg_entry_price(self) -> Decimal:
        return quantize9(self.cost_basis / self.qty)

    def to_json(self, mark: Decimal | None) -> dict[str, Any]:
        price = mark if mark is not None else self.avg_entry_price
        market_value = self.qty * price
        unrealized = market_value - self.cost_basis
        plpc = quantize9(unrealized / abs(self.cost_basis)) if self.cost_basis else ZERO
        return {
            "asset_id": self.asset.id,
            "symbol": self.asset.symbol,
            "exchange": self.asset.exchange,
            "asset_class": self.asset.asset_class,
            "asset_marginable": not self.asset.is_crypto,
            "avg_entry_price": fmt(self.avg_entry_price),
            "qty": fmt(self.qty),
            "qty_available": fmt(self.qty),
            "side": "long" if self.qty > 0 else "short",
            "market_value": fmt(market_value),
            "cost_basis": fmt(self.cost_basis),
            "unrealized_pl": fmt(unrealized),
            "unrealized_plpc": fmt(plpc),
            "unrealized_intraday_pl": fmt(unrealized),
            "unrealized_intraday_plpc": fmt(plpc),
            "current_price": fmt(price),
            "lastday_price": fmt(price),
            "change_today": "0",
        }


class Account:
    def __init__(self, cash: Decimal) -> None:
        self.id = str(uuid.uuid5(uuid.NAMESPACE_URL, "zerotick-sim-account"))
        self.account_number = "PA3ZEROTICK1"
        self.starting_cash = cash
        self.cash = cash
        self.positions: dict[str, Position] = {}

    def reset(self, cash: Decimal) -> None:
        """Flat, with fresh cash (same account id and number)."""
        self.starting_cash = cash
        self.cash = cash
        self.positions = {}

    def position_qty(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return pos.qty if pos else ZERO

    def apply_fill(self, asset: Asset, side: str, qty: Decimal, px: Decimal) -> Decimal:
        """Book one execution; returns the signed position after it."""
        signed = qty if side == "buy" else -qty
        self.cash -= signed * px
        pos = self.positions.get(asset.symbol)
        if pos is None:
            self.positions[asset.symbol] = Position(asset, signed, signed * px)
            return signed
        old = pos.qty
        new = old + signed
        if new == 0:
            del self.positions[asset.symbol]
            return ZERO
        if (old > 0) == (signed > 0):  # adding to the same side
            pos.cost_basis += signed * px
        elif (old > 0) == (new > 0):  # reducing, side unchanged
            pos.cost_basis -= quantize9(pos.cost_basis * qty / abs(old))
        else:  # crossed through zero: the remainder opens at this price
            pos.cost_basis = new * px
        pos.qty = new
        return new
