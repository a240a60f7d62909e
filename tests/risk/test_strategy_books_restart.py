"""Per-strategy position books are built from every fill in execution's order-event sequence: a
restarted risk shows the same books as before, an execution restart on the same journal (whose
replay from 0 risk asks for) does not count a fill twice, and a new journal is counted from its
start. Risk is the real service; execution is a stand-in on real sockets."""

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
    """The fills, journaled and published, and the account book they make as the snapshot."""
    account = PositionBook()
    for x in fills:
        ex.record(x)
        account.apply_fill(x.symbol, x.side, x.qty, x.px)
    ex.positions = [p.to_wire(1) for p in account.all()]


def _books(risk: RiskService) -> dict[str, tuple[int, int]]:
    """Each strategy's AAPL (qty, realized money nanos), as risk exports them."""
    fig = risk.book_figures()
    return {s: (fig.position_qty[("AAPL", s)], fig.realized[("AAPL", s)]) for s in ("s1", "s2")}


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
                    await risk.ready.wait()
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
        await until(lambda: risk.trading_ready and risk.strategy_books.last_seq == 2, "the first fills")
        _record(ex, [_fill("s1", "sell", "4", "103")])
        await until(lambda: risk.strategy_books.last_seq == 3, "a live fill")
        assert _books(risk) == EXPECTED
        # execution restarts on the same journal: risk replays its sequence from 0
        asked = ex.positions_requests
        ex.boot += 1
        await until(lambda: ex.positions_requests > asked, "a new positions request")
        # ready again: the snapshot is loaded and the replay has delivered seqs 1..3 again
        await until(lambda: risk.trading_ready, "positions again")
        assert risk.status()["last_event_seq"] == 3
        assert _books(risk) == EXPECTED

    async def second(ex: FakeExecution, risk: RiskService) -> None:
        # risk restarted: before it took any fill live, its books are what they were
        await until(lambda: risk.trading_ready and risk.strategy_books.last_seq == 3, "the replay")
        assert _books(risk) == EXPECTED
        # execution starts a new journal: a new sequence, counted from its own start
        ex.log.clear()
        ex.book = "j2.0"
        _record(ex, [_fill("s2", "sell", "5", "104")])
        await until(
            lambda: risk.strategy_books.last_seq == 1 and risk.trading_ready, "the new journal's fill"
        )
        assert _books(risk) == {"s1": EXPECTED["s1"], "s2": (0, f("10"))}

    _run(tmp_path, [first, second])
