"""The simulator's tradable assets: the configured stocks (all shortable, fractionable) and crypto pairs
(never shortable). Ids are stable uuid5s of the symbol, so they survive restarts and resets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

_NAMESPACE = uuid.UUID("6f1c3a52-1d7e-4d1b-9a53-3c1f2e0b7a10")


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    id: str
    asset_class: str  # us_equity | crypto
    exchange: str  # NASDAQ | CRYPTO

    @property
    def is_crypto(self) -> bool:
        return self.asset_class == "crypto"

    @property
    def shortable(self) -> bool:
        return not self.is_crypto

    def to_json(self) -> dict[str, Any]:
        crypto = self.is_crypto
        return {
            "id": self.id,
            "class": self.asset_class,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": f"{self.symbol} (simulated)",
            "status": "active",
            "tradable": True,
            "marginable": not crypto,
            "shortable": self.shortable,
            "easy_to_borrow": self.shortable,
            "fractionable": True,
            "maintenance_margin_requirement": 100 if crypto else 30,
            "min_order_size": "0.000000001" if crypto else None,
            "min_trade_increment": "0.000000001" if crypto else None,
            "price_increment": "0.000000001" if crypto else None,
            "attributes": [] if crypto else ["fractional_eh_enabled"],
        }


class AssetBook:
    """Lookup by symbol ("BTC/USD"), slash-less symbol ("BTCUSD") or asset id."""

    def __init__(self, stocks: list[str], crypto: list[str]) -> None:
        self._by_key: dict[str, Asset] = {}
        self.assets: list[Asset] = []
        for sym, cls, exch in [(s, "us_equity", "NASDAQ") for s in stocks] + [
            (s, "crypto", "CRYPTO") for s in crypto
        ]:
            asset = Asset(sym, str(uuid.uuid5(_NAMESPACE, sym)), cls, exch)
            self.assets.append(asset)
            self._by_key[sym] = asset
            self._by_key[sym.replace("/", "")] = asset
            self._by_key[asset.id] = asset

    def find(self, key: str) -> Asset | None:
        return self._by_key.get(key) or self._by_key.get(key.upper())
