"""Builders for the pre-trade check tests: a RiskState from a RiskConfig, quotes, positions, open
orders, and an order through the real call path (``RiskState.check`` from an ``OrderIntent``)."""

from __future__ import annotations

import itertools
from typing import Any

from common import wire
from common.config import RiskConfig
from common.enums import RejectReason
from common.fixed import to_fixed
from services.risk.limits import RiskLimits
from services.risk.state import RiskState

NOW = 1_800_000_000_000_000_000  # wall ns "now" in these tests
MS = 1_000_000
_ids = itertools.count()

# Everything not under test is out of the way: no rate limits, no duplicate guard.
QUIET: dict[str, Any] = {
    "order_rate_per_s": None,
    "strategy_order_rate_per_s": None,
    "duplicate_window_ms": 0,
}


def risk(**config: Any) -> RiskState:
    return RiskState(RiskLimits.from_config(RiskConfig(**{**QUIET, **config})))


def quote(
    rs: RiskState, bid: str, ask: str, symbol: str = "AAPL", age_ms: int = 0, exch_ns: int | None = None
) -> None:
    ts = NOW - age_ms * MS if exch_ns is None else exch_ns
    rs.on_quote(
        wire.Quote(
            symbol=symbol, bid_px=to_fixed(bid), bid_sz=to_fixed(1), ask_px=to_fixed(ask), ask_sz=to_fixed(1),
            exch_ns=ts, recv_ns=NOW,
        )
    )  # fmt: skip


def position(rs: RiskState, qty: str, avg_px: str = "100", symbol: str = "AAPL", realized: str = "0") -> None:
    listed = [p.to_wire(0) for p in rs.positions.all() if p.symbol != symbol and p.qty]
    listed.append(
        wire.Position(symbol=symbol, qty=to_fixed(qty), avg_px=to_fixed(avg_px), realized_pnl=to_fixed(realized), ts_ns=0)
    )  # fmt: skip
    rs.set_positions(listed)


def open_order(rs: RiskState, side: str, qty: str, symbol: str = "AAPL") -> str:
    coid = f"open-{next(_ids)}"
    rs.add_pending(coid, symbol, side, to_fixed(qty))
    return coid


def order(
    rs: RiskState,
    side: str,
    qty: str,
    limit_px: str = "100",
    order_type: str = "limit",
    stop_px: str = "0",
    symbol: str = "AAPL",
    strategy: str = "s1",
    now: int = NOW,
) -> RejectReason:
    intent = wire.OrderIntent(
        intent_id=f"i.{next(_ids)}", strategy=strategy, symbol=symbol, side=side, qty=to_fixed(qty),
        order_type=order_type, limit_px=to_fixed(limit_px), stop_px=to_fixed(stop_px),
    )  # fmt: skip
    return RejectReason.from_code(rs.check(intent, now))
