"""A kill that `zerotick kill` wrote to the state file, adopted by the running risk: risk trips
execution as the record asks, flatten included.

Execution is a stand-in on real sockets that keeps the trips it is sent; everything else is the real
risk service, its loop and its run folder."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from common.config import Settings
from common.enums import TradingState, TripSource
from common.trading_state import StateRecord, StateStore
from services.risk.service import RiskService
from tests.kit.fake_execution import FakeExecution
from tests.kit.waiting import until


@pytest.mark.parametrize("flatten", [True, False])
def test_a_kill_written_to_the_state_file_trips_execution_as_the_record_asks(
    tmp_path: Path, flatten: bool
) -> None:
    settings = Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 20},
        metrics={"base_port": 0},
        market_data={"stocks": ["AAPL"], "crypto": []},
    )

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ex = FakeExecution(settings)
        ex.book, ex.boot = "j1.0", 1
        ex_task = loop.create_task(ex.run_forever())
        svc = RiskService(settings)
        running = loop.create_task(svc.run_forever())
        try:
            await until(lambda: svc.positions_loaded, "positions loaded")
            assert svc.trading.state is TradingState.ACTIVE and ex.trips == []
            store = StateStore(tmp_path)
            written = StateRecord(
                state=TradingState.HALTED, seq=store.load().seq + 1, source=TripSource.CLI_OUT_OF_BAND,
                who="cli:test", reason="drill", ts_ns=time.time_ns(), flatten=flatten,
            )  # fmt: skip
            store.save(written)  # as `zerotick kill` does before it asks risk
            await until(lambda: ex.trips != [], "the trip risk sends after adopting the file")
            trip = ex.trips[0]
            assert (trip.state, trip.seq, trip.flatten) == (TradingState.HALTED, written.seq, flatten)
            assert svc.trading.state is TradingState.HALTED
        finally:
            for s in (svc, ex):
                s.request_stop()
            await asyncio.gather(running, ex_task)

    asyncio.run(scenario())
