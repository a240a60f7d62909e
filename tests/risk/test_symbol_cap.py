"""Risk's per-symbol state exists only for configured symbols plus a bounded number of others."""

from __future__ import annotations

import random

import pytest

from common import wire
from common.config import RiskConfig
from common.enums import OrderSide, RejectReason
from services.risk.limits import RiskLimits
from services.risk.state import RiskState

NOW = 1_700_000_000_000_000_000


def _quote(symbol: str) -> wire.Quote:
    return wire.Quote(
        symbol=symbol, bid_px=100 * 10**9, bid_sz=10**9, ask_px=101 * 10**9, ask_sz=10**9,
        exch_ns=NOW, recv_ns=NOW,
    )  # fmt: skip


def _intent(symbol: str) -> wire.OrderIntent:
    return wire.OrderIntent(
        intent_id="r.1", strategy="s", symbol=symbol, side=OrderSide.BUY, qty=10**9, limit_px=101 * 10**9
    )


def test_quotes_for_unknown_symbols_stop_adding_rows_at_the_cap() -> None:
    rs = RiskState(
        RiskLimits.from_config(RiskConfig()), known_symbols=frozenset({"AAPL"}), max_other_symbols=3
    )
    for i in range(1_000):
        rs.on_quote(_quote(f"X{i}"))
    rs.on_quote(_quote("AAPL"))  # a configured symbol always gets its row
    assert set(rs.index) == {"X0", "X1", "X2", "AAPL"}
    assert rs.refused_quotes == 997


def test_an_intent_on_a_symbol_beyond_the_cap_is_refused_with_a_reason() -> None:
    rs = RiskState(RiskLimits.from_config(RiskConfig()), known_symbols=frozenset(), max_other_symbols=1)
    rs.on_quote(_quote("X0"))
    code = rs.check(_intent("X1"), NOW)
    assert RejectReason.from_code(code) is RejectReason.SYMBOL_NOT_ALLOWED
    assert "X1" not in rs.index
    assert "max 1" in rs.refusal("X1")


def test_symbols_outside_the_allow_list_get_no_row() -> None:
    rs = RiskState(RiskLimits.from_config(RiskConfig(allow_symbols=["AAPL"])))
    rs.on_quote(_quote("MSFT"))
    assert RejectReason.from_code(rs.check(_intent("MSFT"), NOW)) is RejectReason.SYMBOL_NOT_ALLOWED
    assert "MSFT" not in rs.index and "allow_symbols" in rs.refusal("MSFT")


def test_positions_on_unconfigured_symbols_are_always_kept() -> None:
    rs = RiskState(RiskLimits.from_config(RiskConfig()), known_symbols=frozenset(), max_other_symbols=0)
    rs.set_positions([wire.Position(symbol="ZZZ", qty=10**9, avg_px=10**9, realized_pnl=0, ts_ns=NOW)])
    assert "ZZZ" in rs.index


def _rand_quote(rng: random.Random, symbol: str) -> wire.Quote:
    bad = rng.random() < 0.25  # a bid or ask of 0 clears the quote and keeps the mark
    bid = 0 if bad and rng.random() < 0.5 else rng.randint(90, 110) * 10**9
    ask = 0 if bad and not bid else bid + rng.randint(1, 5) * 10**7
    return wire.Quote(symbol=symbol, bid_px=bid, bid_sz=10**9, ask_px=ask, ask_sz=10**9,
                      exch_ns=NOW + rng.randint(0, 10**9), recv_ns=NOW)  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_a_batch_leaves_the_rows_as_every_quote_in_turn_would(seed: int) -> None:
    """on_quotes applies only each symbol's last valid and last quote: the same end state, counters
    included, as on_quote for each, with a position held (its P&L moves with the mark)."""
    rng = random.Random(seed)

    def fresh() -> RiskState:
        rs = RiskState(
            RiskLimits.from_config(RiskConfig()), known_symbols=frozenset({"AAPL"}), max_other_symbols=1
        )
        rs.set_positions(
            [wire.Position(symbol="AAPL", qty=3 * 10**9, avg_px=100 * 10**9, realized_pnl=0, ts_ns=NOW)]
        )
        return rs

    one_by_one, batched = fresh(), fresh()
    for _ in range(5):
        frame: list[object] = [
            _rand_quote(rng, rng.choice(["AAPL", "MSFT", "X1"])) for _ in range(rng.randint(1, 30))
        ]
        frame.insert(
            rng.randint(0, len(frame)),
            wire.Heartbeat(service="x", pid=1, seq=1, state="ok", last_event_seq=0, ts_ns=NOW),
        )
        for m in frame:
            if isinstance(m, wire.Quote):
                one_by_one.on_quote(m)
        batched.on_quotes(frame)
        assert batched.index == one_by_one.index
        assert (batched.state == one_by_one.state).all()
        assert batched.refused_quotes == one_by_one.refused_quotes
