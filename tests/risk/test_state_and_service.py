"""Pending quantity and positions from execution's order events, and the risk service's decisions
(in-process, real sockets in a tmp dir; nobody plays execution, so approvals cannot be forwarded)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import zmq

from common import wire
from common.config import Settings
from common.enums import RejectReason
from common.fixed import to_fixed
from common.zmq_io import Publisher
from services.risk import checks
from services.risk.limits import RiskLimits
from services.risk.service import RiskService
from services.risk.state import RiskState


def f(x: str) -> int:
    return to_fixed(x)


def limits() -> RiskLimits:
    return RiskLimits.from_config(Settings().risk)


def update(coid: str, status: str, qty: str, filled: str, seq: int = 1) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=seq, client_order_id=coid, venue_order_id="v", strategy="s", symbol="AAPL", side="buy",
        status=status, event=status, qty=f(qty), filled_qty=f(filled), filled_avg_px=0, limit_px=f("100"),
        reason="", venue_ns=0, recv_ns=0,
    )  # fmt: skip


def fill(coid: str, qty: str, cum: str, px: str, position: str | None = None) -> wire.Fill:
    return wire.Fill(
        seq=1, client_order_id=coid, venue_order_id="v", exec_id="e", strategy="s", symbol="AAPL", side="buy",
        qty=f(qty), px=f(px), cum_qty=f(cum), position_qty=None if position is None else f(position),
        venue_ns=0, recv_ns=0,
    )  # fmt: skip


def test_pending_follows_order_events_and_fills_move_positions() -> None:
    rs = RiskState(limits(), capacity=1)  # grows on demand
    rs.add_pending("c1", "AAPL", "buy", f("10"))
    rs.on_order_update(update("c2", "new", "5", "0"))  # an order risk did not see (e.g. before a restart)
    assert rs.pending_by_symbol() == {"AAPL": {"buy": f("15"), "sell": 0}}
    rs.on_order_update(update("c1", "partially_filled", "10", "4"))
    pos, reconciled = rs.on_fill(fill("c1", "4", "4", "100"))
    assert not reconciled and pos.qty == f("4")
    assert rs.pending_by_symbol()["AAPL"]["buy"] == f("11")
    rs.on_fill(fill("c1", "6", "10", "101"))  # fully filled: no longer pending
    assert rs.pending_by_symbol()["AAPL"]["buy"] == f("5")
    rs.on_order_update(update("c2", "canceled", "5", "0"))
    assert rs.pending_by_symbol() == {}
    assert rs.positions.get("AAPL").avg_px == f("100.6")
    assert int(rs.state[rs.sym("AAPL"), checks.POSITION]) == f("10")
    rs.sym("MSFT")
    assert rs.state.shape[0] >= 2


def test_venue_position_on_a_fill_wins() -> None:
    rs = RiskState(limits())
    rs.set_positions([wire.Position(symbol="AAPL", qty=f("10"), avg_px=f("100"), realized_pnl=0, ts_ns=0)])
    pos, reconciled = rs.on_fill(fill("c9", "10", "10", "100", position="10"))  # already in the snapshot
    assert reconciled and pos.qty == f("10")


def _quote(symbol: str) -> wire.Quote:
    now = time.time_ns()
    return wire.Quote(
        symbol=symbol,
        bid_px=f("99.99"),
        bid_sz=f("1"),
        ask_px=f("100.01"),
        ask_sz=f("1"),
        exch_ns=now,
        recv_ns=now,
    )


def _intent(iid: str, qty: str = "1", deadline_ns: int | None = None) -> wire.OrderIntent:
    now = time.time_ns()
    return wire.OrderIntent(
        intent_id=iid, strategy="t", symbol="AAPL", side="buy", qty=f(qty), limit_px=f("100"),
        signal_ns=now, deadline_ns=now + 10**9 if deadline_ns is None else deadline_ns,
    )  # fmt: skip


def test_risk_service_decisions(tmp_path: Path) -> None:
    settings = Settings(zmq={"run_dir": tmp_path}, metrics={"base_port": 0})

    async def scenario() -> dict[str, object]:
        svc = RiskService(settings)
        running = asyncio.get_running_loop().create_task(svc.run_forever())
        await svc.ready.wait()
        try:
            not_ready = svc.decide(_intent("z"))  # no positions snapshot from execution yet
            assert (not_ready.approved, not_ready.reason) == (False, RejectReason.NOT_READY.value)
            svc.positions_loaded = True  # as if execution had answered the positions request
            no_quote = svc.decide(_intent("a"))
            svc.risk.on_quote(_quote("AAPL"))
            expired = svc.decide(_intent("b", deadline_ns=time.time_ns() - 1))
            too_big = svc.decide(_intent("c", qty="101"))
            no_execution = svc.decide(_intent("d"))
            assert [d.reason for d in (no_quote, expired, too_big, no_execution)] == [
                RejectReason.NO_QUOTE.value, RejectReason.EXPIRED.value, RejectReason.MAX_ORDER_QTY.value, RejectReason.EXECUTION_UNAVAILABLE.value,
            ]  # fmt: skip
            assert not any(
                d.approved or d.client_order_id for d in (no_quote, expired, too_big, no_execution)
            )
            assert svc.risk.pending == {}  # nothing reached execution, so nothing is pending
            return svc.full_status()
        finally:
            svc.request_stop()
            await running

    status = asyncio.run(scenario())
    assert status["decisions"] == {
        "not_ready": 1,
        "no_quote": 1,
        "expired": 1,
        "max_order_qty": 1,
        "execution_unavailable": 1,
    }
    assert status["trading_state"] == "active"


def test_a_decision_reads_its_symbols_newest_quote_first_and_the_other_symbols_right_after(
    tmp_path: Path,
) -> None:
    """Risk reads market data paced: a decision drains what waits, applies its own symbol's newest
    quote before the check, and every other symbol's once the decision's callback is done."""
    settings = Settings(zmq={"run_dir": tmp_path}, metrics={"base_port": 0}, risk={"quote_drain_ms": 1000})

    async def scenario() -> None:
        ctx = zmq.Context()
        pub = Publisher(ctx, settings.zmq.bind_endpoint("market_data", "pub"), "test")
        svc = RiskService(settings)
        running = asyncio.get_running_loop().create_task(svc.run_forever())
        await svc.ready.wait()
        try:
            svc.positions_loaded = True
            for _ in range(100):  # until the subscription has reached the publisher
                pub.publish(b"md.q.IBM", [_quote("IBM")])
                svc.decide(_intent("warm"))  # drains (no AAPL quote: refused)
                await asyncio.sleep(0.02)
                if svc.mid("IBM") is not None:
                    break
            assert svc.mid("IBM") is not None
            pub.publish(b"md.q.MSFT", [_quote("MSFT")])
            pub.publish(b"md.q.AAPL", [_quote("AAPL")])
            time.sleep(0.2)  # noqa: ASYNC251 - blocking on purpose: both frames wait, no paced drain runs
            d = svc.decide(_intent("a"))
            # the AAPL quote was applied first: the check passed it, and only forwarding failed
            assert d.reason == RejectReason.EXECUTION_UNAVAILABLE.value
            assert svc.mid("MSFT") is None  # read, applied only after this callback
            await asyncio.sleep(0)
            assert svc.mid("MSFT") == f("100")
        finally:
            svc.request_stop()
            await running
            pub.close()
            ctx.term()

    asyncio.run(scenario())
