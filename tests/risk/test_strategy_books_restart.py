"""Per-strategy position books: execution's per-strategy positions at its snapshot, plus every fill
since. A restarted risk shows the same books as before, an execution restart re-reads them from a
new snapshot without counting a fill twice, and a new journal starts them over. Risk is the real
service; execution is a stand-in on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from common import wire
from common.config import Settings
from common.fixed import to_fixed
from common.positions import PositionBook
from services.risk.service import RiskService
from tests.kit.fake_execution import FakeExecution
from tests.kit.waiting import until


def f(x: str) -> int:
    return to_fixed(x)


def _fill(strategy: str, side: str, qty: str, px: str) -> wire.Fill:
    return wire.Fill(
        seq=0, client_order_id=f"c-{strategy}-{side}-{qty}", venue_order_id="v", exec_id="e", strategy=strategy,
        symbol="AAPL", side=side, qty=f(qty), px=f(px), cum_qty=f(qty), position_qty=None, venue_ns=1, recv_ns=1,
    )  # fmt: skip


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 30, "request_timeout_ms": 1000},
        metrics={"base_port": 0},
        market_data={"stocks": ["AAPL"], "crypto": []},
        signal={"strategies": [{"name": "s1", "kind": "probe", "symbols": ["AAPL"]},
                               {"name": "s2", "kind": "probe", "symbols": ["AAPL"]}]},
    )  # fmt: skip


def _record(ex: FakeExecution, fills: list[wire.Fill]) -> None:
    """The fills, journaled and published, and the account book they make for the next snapshot."""
    account = PositionBook()
    for ev in ex.log:
        if isinstance(ev, wire.Fill):
            account.apply_fill(ev.symbol, ev.side, ev.qty, ev.px)
    for x in fills:
        ex.record(x)
        account.apply_fill(x.symbol, x.side, x.qty, x.px)
    ex.positions = [p.to_wire(1) for p in account.all()]


def _books(risk: RiskService) -> dict[str, tuple[int, int]]:
    """Each strategy's AAPL (qty, realized money nanos), as risk exports them."""
    fig = risk.book_figures()
    return {s: (fig.position_qty.get(("AAPL", s), 0), fig.realized.get(("AAPL", s), 0)) for s in ("s1", "s2")}


def _run(tmp_path: Path, lives: list[Callable[[FakeExecution, RiskService], Awaitable[None]]]) -> None:
    """One execution stand-in throughout; a new risk service for each life."""

    async def main() -> None:
        settings = _settings(tmp_path)
        loop = asyncio.get_running_loop()
        ex = FakeExecution(settings)
        ex.book, ex.boot = "j1.0", 1
        ex_task = loop.create_task(ex.run_forever())
        try:
            for life in lives:
                risk = RiskService(settings)
                risk_task = loop.create_task(risk.run_forever())
                try:
                    await until(lambda risk=risk: risk.trading_ready, "risk ready")  # type: ignore[misc]
                    await life(ex, risk)
                finally:
                    risk.request_stop()
                    await risk_task
        finally:
            ex.request_stop()
            await ex_task

    uvloop.run(main())


EXPECTED = {"s1": (f("6"), f("12")), "s2": (f("5"), 0)}  # s1: bought 10 at 100, sold 4 at 103


def test_strategy_books_survive_restarts_of_risk_and_of_execution(tmp_path: Path) -> None:
    async def first(ex: FakeExecution, risk: RiskService) -> None:
        _record(ex, [_fill("s1", "buy", "10", "100"), _fill("s2", "buy", "5", "102")])
        await until(lambda: risk.status()["last_event_seq"] == 2, "the first fills, live")
        _record(ex, [_fill("s1", "sell", "4", "103")])
        await until(lambda: risk.status()["last_event_seq"] == 3, "a live fill")
        assert _books(risk) == EXPECTED
        # execution restarts on the same journal: risk takes its new snapshot (as of seq 3)
        asked = ex.positions_requests
        ex.boot += 1
        await until(lambda: ex.positions_requests > asked and risk.trading_ready, "the new snapshot")
        assert risk.status()["positions_as_of_seq"] == 3
        assert _books(risk) == EXPECTED

    async def second(ex: FakeExecution, risk: RiskService) -> None:
        # risk restarted: from execution's snapshot alone, its books are what they were
        assert risk.status()["positions_as_of_seq"] == 3
        assert _books(risk) == EXPECTED
        # execution starts a new journal: a new sequence, a new snapshot, counted from its start
        ex.log.clear()
        ex.positions = []
        ex.book = "j2.0"
        await until(
            lambda: risk.status()["positions_as_of_seq"] == 0 and risk.trading_ready, "the new journal"
        )
        _record(ex, [_fill("s2", "sell", "5", "104")])
        await until(lambda: risk.status()["last_event_seq"] == 1, "the new journal's fill")
        assert _books(risk) == {"s1": (0, 0), "s2": (f("-5"), 0)}

    _run(tmp_path, [first, second])
