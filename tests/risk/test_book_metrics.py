"""Positions, P&L and equity as risk exports them: exact per-strategy and account figures from a
few fills and quotes (worked out by hand below), configured labels only, and the gauges risk sets
from its own books, account snapshot and quotes."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from pathlib import Path

from prometheus_client import REGISTRY

from common import wire
from common.config import Settings
from common.fixed import to_fixed
from common.metric_labels import ALL, OTHER, LabelFold
from common.positions import PositionBook
from services.risk.book_metrics import BookGauges, StrategyBooks, book_figures
from services.risk.service import RiskService

SYMBOLS = LabelFold({"AAPL", "MSFT"})
STRATEGIES = LabelFold({"s1", "s2"})


def f(x: str) -> int:
    return to_fixed(x)


def fill(seq: int, strategy: str, symbol: str, side: str, qty: str, px: str) -> wire.Fill:
    return wire.Fill(
        seq=seq, client_order_id=f"c{seq}", venue_order_id=f"v{seq}", exec_id=f"e{seq}", strategy=strategy,
        symbol=symbol, side=side, qty=f(qty), px=f(px), cum_qty=f(qty), position_qty=None, venue_ns=1, recv_ns=1,
    )  # fmt: skip


FILLS = [
    fill(1, "s1", "AAPL", "buy", "10", "100"),
    fill(2, "s2", "AAPL", "buy", "5", "102"),
    fill(3, "s1", "AAPL", "sell", "4", "103"),  # s1 realizes 4 x (103 - 100) = 12
    fill(4, "zz", "MSFT", "buy", "1", "50"),  # an unconfigured strategy: "other"
    fill(5, "s2", "TSLA", "buy", "2", "200"),  # an unconfigured symbol: "other"
]
MIDS = {"AAPL": Fraction(f("104") + f("105"), 2), "TSLA": Fraction(f("210") + f("211"), 2)}  # MSFT: no quote


def _books() -> tuple[PositionBook, StrategyBooks]:
    account, strategies = PositionBook(), StrategyBooks(STRATEGIES)
    for x in FILLS:
        account.apply_fill(x.symbol, x.side, x.qty, x.px)
        strategies.on_fill(x)
    return account, strategies


def test_per_strategy_and_account_figures_are_exact() -> None:
    account, strategies = _books()
    fig = book_figures(account, strategies.books, MIDS.get, SYMBOLS, cash=f("10000"))

    assert fig.position_qty == {
        ("AAPL", ALL): f("11"), ("MSFT", ALL): f("1"), (OTHER, ALL): f("2"),
        ("AAPL", "s1"): f("6"), ("AAPL", "s2"): f("5"), (OTHER, "s2"): f("2"), ("MSFT", OTHER): f("1"),
    }  # fmt: skip
    # the account bought 15 AAPL for 1510 (avg 302/3) and sold 4 at 103: realized 4 x (103 - 302/3) = 28/3
    assert fig.realized[("AAPL", ALL)] == round(Fraction(28, 3) * 10**9) == 9_333_333_333
    assert fig.realized[("AAPL", "s1")] == f("12")
    assert fig.realized[("AAPL", "s2")] == 0
    # at the mid 104.5: the account's 11 AAPL cost 11 x 302/3, s1's 6 cost 600, s2's 5 cost 510
    assert fig.unrealized[("AAPL", ALL)] == round((Fraction(1045, 10) * 11 - Fraction(11 * 302, 3)) * 10**9)
    assert fig.unrealized[("AAPL", ALL)] == 42_166_666_667
    assert fig.unrealized[("AAPL", "s1")] == f("27")
    assert fig.unrealized[("AAPL", "s2")] == f("12.5")
    assert fig.unrealized[(OTHER, "s2")] == f("21")  # TSLA: 2 x 210.5 - 400
    assert fig.unrealized[("MSFT", OTHER)] == 0  # no quote: no unrealized P&L
    # the account's positions: AAPL at the mid, MSFT (no quote) at its entry price, TSLA folded into other
    assert fig.position_value == {"AAPL": f("1149.5"), "MSFT": f("50"), OTHER: f("421")}
    assert fig.model_equity == f("10000") + f("1149.5") + f("50") + f("421")


def test_model_equity_needs_the_venues_cash() -> None:
    account, strategies = _books()
    assert book_figures(account, strategies.books, MIDS.get, SYMBOLS, cash=None).model_equity is None


def test_configured_symbols_have_account_series_before_any_fill() -> None:
    fig = book_figures(PositionBook(), {}, MIDS.get, SYMBOLS, cash=f("5"))
    assert fig.position_qty == {("AAPL", ALL): 0, ("MSFT", ALL): 0}
    assert fig.position_value == {"AAPL": 0, "MSFT": 0}
    assert fig.model_equity == f("5")


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_render_the_figures_and_zero_a_series_that_is_gone() -> None:
    account, strategies = _books()
    gauges = BookGauges()
    gauges.show(book_figures(account, strategies.books, MIDS.get, SYMBOLS, cash=f("10000")), f("11620.25"))
    assert _sample("zt_pnl_realized_usd", symbol="AAPL", strategy="s1") == 12.0
    assert _sample("zt_pnl_unrealized_usd", symbol="AAPL", strategy="s2") == 12.5
    assert _sample("zt_position_qty", symbol="AAPL", strategy=ALL) == 11.0
    assert _sample("zt_position_value_usd", symbol=OTHER) == 421.0
    assert _sample("zt_equity_usd", source="model") == 11620.5
    assert _sample("zt_equity_usd", source="venue") == 11620.25

    gauges.show(book_figures(PositionBook(), {}, MIDS.get, SYMBOLS, cash=None), None)
    assert _sample("zt_position_qty", symbol="AAPL", strategy="s1") == 0.0
    assert _sample("zt_pnl_realized_usd", symbol="AAPL", strategy="s1") == 0.0


def test_risk_service_exports_its_books_account_and_quote_ages(tmp_path: Path) -> None:
    settings = Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 50},
        metrics={"base_port": 0},
        market_data={"stocks": ["AAPL", "MSFT"], "crypto": []},
        signal={"strategies": [{"name": "s1", "kind": "probe", "symbols": ["AAPL"]},
                               {"name": "s2", "kind": "probe", "symbols": ["AAPL"]}]},
    )  # fmt: skip

    async def scenario() -> None:
        svc = RiskService(settings)
        running = asyncio.get_running_loop().create_task(svc.run_forever())
        await svc.ready.wait()
        try:
            svc.positions_loaded = True  # as if execution had answered the positions request
            now = time.time_ns()
            svc.risk.on_quote(wire.Quote(
                symbol="AAPL", bid_px=f("104"), bid_sz=f("1"), ask_px=f("105"), ask_sz=f("1"),
                exch_ns=now - 2 * 10**9, recv_ns=now,
            ))  # fmt: skip
            for x in FILLS[:3]:
                svc._on_order_event(x)
            svc._on_account(b"ac.account", [wire.Account(
                cash=f("98900"), buying_power=f("98900"), equity=f("100049.5"), last_equity=f("100000"), ts_ns=now,
            )])  # fmt: skip
            svc.refresh_metrics()
        finally:
            svc.request_stop()
            await running

    asyncio.run(scenario())
    assert _sample("zt_position_qty", symbol="AAPL", strategy=ALL) == 11.0
    assert _sample("zt_pnl_realized_usd", symbol="AAPL", strategy="s1") == 12.0
    assert _sample("zt_pnl_unrealized_usd", symbol="AAPL", strategy="s1") == 27.0
    assert _sample("zt_position_value_usd", symbol="AAPL") == 1149.5
    assert _sample("zt_equity_usd", source="model") == 98900 + 1149.5
    assert _sample("zt_equity_usd", source="venue") == 100049.5
    age = _sample("zt_risk_quote_age_seconds", symbol="AAPL")
    assert age is not None and age >= 2.0
    assert _sample("zt_risk_quote_age_seconds", symbol="MSFT") is None  # no quote, no sample
