"""An approved OrderRequest checked and turned into the POST /v2/orders body."""

from __future__ import annotations

import re
from typing import Any

from common import fixed, wire

SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.]{0,14}(/[A-Z]{2,10})?$")  # AAPL, BRK.B, BTC/USD


def order_body(req: wire.OrderRequest) -> dict[str, Any]:
    """The POST /v2/orders JSON for an approved order; prices and qty as decimal strings."""
    it = req.intent
    body: dict[str, Any] = {
        "symbol": it.symbol,
        "qty": fixed.to_str(it.qty),
        "side": it.side,
        "type": it.order_type,
        "time_in_force": it.tif,
        "client_order_id": req.client_order_id,
    }
    if it.order_type in ("limit", "stop_limit"):
        body["limit_price"] = fixed.to_str(it.limit_px)
    if it.order_type in ("stop", "stop_limit"):
        body["stop_price"] = fixed.to_str(it.stop_px)
    return body


def invalid_request(req: wire.OrderRequest) -> str:
    """A reason the request cannot become an order, or "" when it can."""
    it = req.intent
    if not req.client_order_id or len(req.client_order_id) > 128:
        return "client_order_id must be 1-128 characters"
    if not SYMBOL_RE.match(it.symbol):
        return f"symbol {it.symbol[:20]!r} is not a valid symbol"
    if it.qty <= 0:
        return "qty must be positive"
    if it.order_type in ("limit", "stop_limit") and it.limit_px <= 0:
        return f"{it.order_type} order needs a positive limit price"
    if it.order_type in ("stop", "stop_limit") and it.stop_px <= 0:
        return f"{it.order_type} order needs a positive stop price"
    return ""
