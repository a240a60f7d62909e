"""A kill that `zerotick kill` wrote to the state file, adopted by the running risk: risk trips
execution as the record asks, flatten included.

Execution is a stand-in on real sockets that keeps the trips it is sent; everything else is the real
risk service, its loop and its run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Settings
from common.enums import TradingState
from services.risk.service import RiskService
from tests.kit.fake_execution import FakeExecution, run_risk
from tests.kit.waiting import until
from zerotick.kill_switch import write_state


@pytest.mark.parametrize("flatten", [True, False])
def test_a_kill_written_to_the_state_file_trips_execution_as_the_record_asks(
    tmp_path: Path, flatten: bool
) -> None:
    settings = Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 20},
        metrics={"base_port": 0},
        market_data={"stocks": ["AAPL"], "crypto": []},
    )

    async def body(ex: FakeExecution, svc: RiskService) -> None:
        assert svc.trading.state is TradingState.ACTIVE and ex.trips == []
        written = write_state(settings, TradingState.HALTED, "drill", flatten)  # `zerotick kill`'s first step
        await until(lambda: ex.trips != [], "the trip risk sends after adopting the file")
        trip = ex.trips[0]
        assert (trip.state, trip.seq, trip.flatten) == (TradingState.HALTED, written.seq, flatten)
        assert svc.trading.state is TradingState.HALTED

    def prepare(ex: FakeExecution) -> None:
        ex.book, ex.boot = "j1.0", 1

    run_risk(settings, body, prepare=prepare)
