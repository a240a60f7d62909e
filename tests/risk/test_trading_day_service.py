"""Risk's trading day in the running service: the day's P&L survives risk restarting and
execution restarting (on a new book, whose realized P&L starts over, or on the same one, whose
fills while risk was down count), and the check judges by it.

Execution is a stand-in on real sockets answering with the snapshot a real execution sends;
everything else is the real risk service, its loop and its run folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import REGISTRY

from common import wire
from common.config import Settings
from common.fixed import to_fixed
from services.risk.service import RiskService
from services.risk.trading_day import DAY_FILE
from tests.kit.fake_execution import FakeExecution, run_risk
from tests.kit.waiting import until


def f(x: str) -> int:
    return to_fixed(x)


def position(qty: str, avg_px: str, realized: str) -> wire.Position:
    return wire.Position(symbol="AAPL", qty=f(qty), avg_px=f(avg_px), realized_pnl=f(realized), ts_ns=1)


def quote(svc: RiskService, mid: str) -> None:
    now = time.time_ns()
    svc.risk.on_quote(wire.Quote(
        symbol="AAPL", bid_px=f(mid) - f("0.01"), bid_sz=f("1"), ask_px=f(mid) + f("0.01"), ask_sz=f("1"),
        exch_ns=now, recv_ns=now,
    ))  # fmt: skip


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 20},
        metrics={"base_port": 0},
        market_data={"stocks": ["AAPL"], "crypto": []},
        risk={"max_daily_loss": "500", "price_band_bps": 100_000},
    )


def _holding(state: dict[str, object]) -> Callable[[FakeExecution], None]:
    """Execution's stand-in holds these positions on this book, after its first boot."""

    def prepare(ex: FakeExecution) -> None:
        ex.positions, ex.book, ex.boot = state["positions"], state["book"], 1  # type: ignore[assignment]

    return prepare


async def restarted(ex: FakeExecution, svc: RiskService, positions: list[wire.Position], book: str) -> None:
    """Execution restarts (its heartbeat's boot changes) and answers with a new snapshot."""
    asked = ex.positions_requests
    ex.positions, ex.book = positions, book
    ex.boot += 1
    await until(lambda: ex.positions_requests > asked and svc.positions_loaded, "the new snapshot")


def test_the_day_s_p_and_l_survives_restarts_of_risk_and_of_execution(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # execution has run for days: 10 AAPL at 100, and 2,000 realized before today
    state: dict[str, object] = {"positions": [position("10", "100", "2000")], "book": "j1.0"}
    intent = wire.OrderIntent(
        intent_id="i1", strategy="s", symbol="AAPL", side="buy", qty=f("1"), limit_px=f("60")
    )

    async def first_life(ex: FakeExecution, svc: RiskService) -> None:
        quote(svc, "100")
        assert svc.risk.day_pnl == 0  # the day counts from risk's start
        quote(svc, "40")  # 10 x -60: the day is down 600, the positions' life still up 1,400
        assert svc.risk.day_pnl == f("-600") and svc.risk.total_pnl == f("1400")
        assert svc.risk.check(intent, time.time_ns()) != 0  # beyond the 500 daily loss
        day_file = tmp_path / DAY_FILE
        await until(
            lambda: day_file.exists() and b'"unrealized_at_start":0,' in day_file.read_bytes(), "the record"
        )

    run_risk(settings, first_life, prepare=_holding(state))

    # everything restarted on a new journal: execution's realized P&L starts over, its snapshot says 0
    state = {"positions": [position("10", "100", "0")], "book": "j2.0"}

    async def second_life(ex: FakeExecution, svc: RiskService) -> None:
        quote(svc, "40")
        assert svc.risk.total_pnl == f("-600")
        assert svc.risk.day_pnl == f("-600")  # resumed, not forgiven (and not 2,000 worse either)
        assert svc.status()["trading_day"]["day_pnl"] == "-600"
        assert "book changed" in svc.status()["trading_day"]["note"]
        # execution alone restarts on its book, which sold the 10 at 45 meanwhile (mark 40: +50 on
        # the day): a trade; then it restarts re-based on the venue with another realized figure: not one
        await restarted(ex, svc, [position("0", "0", "-550")], "j2.0")
        assert svc.risk.total_pnl == f("-550")
        assert svc.risk.day_pnl == f("-550")
        await restarted(ex, svc, [position("0", "0", "300")], "j2.1")
        assert svc.risk.day_pnl == f("-550")
        assert svc.risk.check(intent, time.time_ns()) != 0
        svc.refresh_metrics()
        assert REGISTRY.get_sample_value("zt_risk_day_pnl_usd") == -550.0

    run_risk(settings, second_life, prepare=_holding(state))


def test_fills_while_risk_was_down_count_in_the_day_when_the_book_is_the_same(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state: dict[str, object] = {"positions": [position("10", "100", "2000")], "book": "j1.0"}

    async def first_life(ex: FakeExecution, svc: RiskService) -> None:
        quote(svc, "100")
        assert svc.risk.day_pnl == 0
        day_file = tmp_path / DAY_FILE
        await until(lambda: day_file.exists() and b'"book":"j1.0"' in day_file.read_bytes(), "the record")

    run_risk(settings, first_life, prepare=_holding(state))
    # while risk is down the 10 are sold at 60: 400 lost, realized on execution's same book
    state = {"positions": [position("0", "0", "1600")], "book": "j1.0"}

    async def second_life(ex: FakeExecution, svc: RiskService) -> None:
        assert svc.risk.total_pnl == f("1600")
        assert svc.risk.day_pnl == f("-400")
        # execution restarts on the same book with a fill risk had not applied: a trade, counted
        await restarted(ex, svc, [position("0", "0", "1500")], "j1.0")
        assert svc.risk.day_pnl == f("-500")
        assert svc.status()["trading_day"]["note"] == "risk started during the day: counted from then"

    run_risk(settings, second_life, prepare=_holding(state))
