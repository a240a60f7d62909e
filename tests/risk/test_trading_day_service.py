"""Risk's trading day in the running service: the day's P&L survives risk restarting and
execution restarting (on a new book, whose realized P&L starts over, or on the same one, whose
fills while risk was down count), and the check judges by it.

Execution's positions replies come from a stand-in for the peer (the snapshot a real execution
sends); everything else is the real risk service, its loop and its run folder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from common import wire
from common.config import Settings
from common.fixed import to_fixed
from services.risk.service import RiskService
from services.risk.trading_day import DAY_FILE


def f(x: str) -> int:
    return to_fixed(x)


class Positions:
    """Answers risk's positions request with whatever snapshot is set."""

    def __init__(self) -> None:
        self.snapshot = wire.PositionsSnapshot(as_of_seq=0, positions=[])
        self.gate: asyncio.Event | None = None  # when set, the answer waits for it

    async def request(self, msg: Any) -> Any:
        if self.gate is not None:
            await self.gate.wait()
        return self.snapshot


def position(qty: str, avg_px: str, realized: str) -> wire.Position:
    return wire.Position(symbol="AAPL", qty=f(qty), avg_px=f(avg_px), realized_pnl=f(realized), ts_ns=1)


def quote(svc: RiskService, mid: str) -> None:
    now = time.time_ns()
    svc.risk.on_quote(wire.Quote(
        symbol="AAPL", bid_px=f(mid) - f("0.01"), bid_sz=f("1"), ask_px=f(mid) + f("0.01"), ask_sz=f("1"),
        exch_ns=now, recv_ns=now,
    ))  # fmt: skip


async def until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5.0
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 20},
        metrics={"base_port": 0},
        market_data={"stocks": ["AAPL"], "crypto": []},
        risk={"max_daily_loss": "500", "price_band_bps": 100_000},
    )


def run_risk(settings: Settings, peer: Positions, body: Callable[[RiskService], Awaitable[None]]) -> None:
    async def scenario() -> None:
        svc = RiskService(settings)
        running = asyncio.get_running_loop().create_task(svc.run_forever())
        await svc.ready.wait()
        svc._snapshots = peer  # type: ignore[assignment]
        svc._spawn_load_positions()
        try:
            await until(lambda: svc.positions_loaded, "positions loaded")
            await body(svc)
        finally:
            svc.request_stop()
            await running

    asyncio.run(scenario())


def test_the_day_s_p_and_l_survives_restarts_of_risk_and_of_execution(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    peer = Positions()
    # execution has run for days: 10 AAPL at 100, and 2,000 realized before today
    peer.snapshot = wire.PositionsSnapshot(
        as_of_seq=0, positions=[position("10", "100", "2000")], book="j1.0"
    )
    intent = wire.OrderIntent(
        intent_id="i1", strategy="s", symbol="AAPL", side="buy", qty=f("1"), limit_px=f("60")
    )

    async def first_life(svc: RiskService) -> None:
        quote(svc, "100")
        assert svc.risk.day_pnl == 0  # the day counts from risk's start
        quote(svc, "40")  # 10 x -60: the day is down 600, the positions' life still up 1,400
        assert svc.risk.day_pnl == f("-600") and svc.risk.total_pnl == f("1400")
        assert svc.risk.check(intent, time.time_ns()) != 0  # beyond the 500 daily loss
        day_file = tmp_path / DAY_FILE
        await until(
            lambda: day_file.exists() and b'"unrealized_at_start":0,' in day_file.read_bytes(), "the record"
        )

    run_risk(settings, peer, first_life)

    # everything restarted on a new journal: execution's realized P&L starts over, its snapshot says 0
    peer.snapshot = wire.PositionsSnapshot(as_of_seq=0, positions=[position("10", "100", "0")], book="j2.0")

    async def second_life(svc: RiskService) -> None:
        quote(svc, "40")
        assert svc.risk.total_pnl == f("-600")
        assert svc.risk.day_pnl == f("-600")  # resumed, not forgiven (and not 2,000 worse either)
        assert svc.status()["trading_day"]["day_pnl"] == "-600"
        assert "book changed" in svc.status()["trading_day"]["note"]
        # execution alone restarts again, its book re-based: a snapshot with other realized P&L is not
        # a trade, but a fill that arrives before it (10 sold at 45 with the mark at 40: +50) is
        peer.snapshot = wire.PositionsSnapshot(
            as_of_seq=0, positions=[position("10", "100", "300")], book="j2.1"
        )
        peer.gate = asyncio.Event()
        svc._on_execution_reset()
        svc._on_order_event(wire.Fill(
            seq=1, client_order_id="c1", venue_order_id="v1", exec_id="e1", strategy="s", symbol="AAPL",
            side="sell", qty=f("10"), px=f("45"), cum_qty=f("10"), position_qty=None, venue_ns=1, recv_ns=1,
        ))  # fmt: skip
        assert not svc.positions_loaded
        peer.gate.set()
        await until(lambda: svc.positions_loaded, "the new snapshot")
        assert svc.risk.total_pnl == f("-250")  # 300 - 550 realized, flat
        assert svc.risk.day_pnl == f("-550")
        assert svc.risk.check(intent, time.time_ns()) != 0
        svc.refresh_metrics()
        assert REGISTRY.get_sample_value("zt_risk_day_pnl_usd") == -550.0

    run_risk(settings, peer, second_life)


def test_fills_while_risk_was_down_count_in_the_day_when_the_book_is_the_same(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    peer = Positions()
    peer.snapshot = wire.PositionsSnapshot(
        as_of_seq=4, positions=[position("10", "100", "2000")], book="j1.0"
    )

    async def first_life(svc: RiskService) -> None:
        quote(svc, "100")
        assert svc.risk.day_pnl == 0
        day_file = tmp_path / DAY_FILE
        await until(lambda: day_file.exists() and b'"book":"j1.0"' in day_file.read_bytes(), "the record")

    run_risk(settings, peer, first_life)
    # while risk is down the 10 are sold at 60: 400 lost, realized on execution's same book
    peer.snapshot = wire.PositionsSnapshot(as_of_seq=6, positions=[position("0", "0", "1600")], book="j1.0")

    async def second_life(svc: RiskService) -> None:
        assert svc.risk.total_pnl == f("1600")
        assert svc.risk.day_pnl == f("-400")
        # execution restarts on the same book with a fill risk had not applied: a trade, counted
        peer.snapshot = wire.PositionsSnapshot(
            as_of_seq=7, positions=[position("0", "0", "1500")], book="j1.0"
        )
        svc._on_execution_reset()
        await until(lambda: svc.positions_loaded and svc.risk.total_pnl == f("1500"), "the new snapshot")
        assert svc.risk.day_pnl == f("-500")
        assert svc.status()["trading_day"]["note"] == "risk started during the day: counted from then"

    run_risk(settings, peer, second_life)
