"""The operations log of risk: one INFO line per rejected intent (symbol, side, qty, price, strategy,
reason) and per trading-state trip; none per quote or per approved intent."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from common.enums import TradingState, TripSource
from services.risk.service import RiskService
from tests.kit.fake_execution import FakeExecution
from tests.kit.waiting import until
from tests.risk.test_readiness_and_limits import _intent, _quote, _run


def test_one_line_per_reject_and_per_trip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zerotick.ops")

    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: risk.trading_ready, "risk ready")
        for _ in range(50):
            risk.risk.on_quote(_quote())
        assert risk.decide(_intent("ok-1", "1")).approved
        assert not risk.decide(_intent("big-1", "5000", side="sell")).approved
        await asyncio.sleep(0)  # a reject's line is written once the decision has been answered
        risk.trading.change(TradingState.HALTED, TripSource.CONTROL, "ops-test", "drill")

    _run(tmp_path, lambda ex: None, scenario)

    ops = [r for r in caplog.records if r.name == "zerotick.ops"]
    assert [r.getMessage() for r in ops] == ["risk reject", "trading state trip"]
    assert all(r.levelno == logging.INFO for r in ops)
    reject = ops[0].fields  # type: ignore[attr-defined]
    assert {k: reject[k] for k in ("symbol", "side", "qty", "price", "client_order_id", "strategy", "reason")} == {
        "symbol": "AAPL", "side": "sell", "qty": "5000", "price": "100", "client_order_id": "", "strategy": "t",
        "reason": "max_order_qty",
    }  # fmt: skip
    trip = ops[1].fields  # type: ignore[attr-defined]
    assert (trip["state"], trip["previous"], trip["who"], trip["reason"]) == (
        "halted",
        "active",
        "ops-test",
        "drill",
    )
