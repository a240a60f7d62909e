"""Execution enforces the trading state again, as the last gate before the venue: after a halt
nothing but cancels leaves it, orders already waiting for a rate-limit token included; REDUCE_ONLY
lets through only what shrinks a position; a tick too old by then is not sent; a reset is refused
while the venue holds orders zerotick did not place."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from common import trading_state, wire
from common.clock import wall_ns
from common.enums import RejectReason, TradingState, TripSource
from common.fixed import to_fixed
from common.trading_state import StateRecord, StateStore
from services.execution.orders.gate import OpenExposure, TradingGate
from tests.execution.test_service import run as run_with_venue
from tests.kit.execution import Harness
from tests.kit.waiting import until

pytestmark = pytest.mark.timeout(60)


def _request(coid: str, side: str = "buy", qty: str = "1", tick_age_s: float = 0.0) -> wire.OrderRequest:
    now = wall_ns()
    intent = wire.OrderIntent(
        intent_id=coid, strategy="s1", symbol="AAPL", side=side, qty=to_fixed(qty),  # type: ignore[arg-type]
        limit_px=to_fixed("100"), tick_exch_ns=now - int(tick_age_s * 1e9), tick_recv_ns=now, signal_ns=now,
        deadline_ns=now + 10_000_000_000,
    )  # fmt: skip
    return wire.OrderRequest(client_order_id=coid, intent=intent, risk_ns=now)


async def _send(h: Harness, req: wire.OrderRequest) -> wire.OrderAck:
    ack = await h.orders.request(req)
    assert isinstance(ack, wire.OrderAck)
    return ack


async def _trip(h: Harness, state: TradingState, seq: int) -> wire.TripReport:
    report = await h.orders.request(wire.Trip(state=state, seq=seq), timeout_ms=5000)
    assert isinstance(report, wire.TripReport), report
    return report


def _no_exposure() -> OpenExposure:
    return OpenExposure(position=0, open_buy=0, open_sell=0)


def _posted(h: Harness) -> list[str]:
    venue: Any = h.venue
    return [p["client_order_id"] for p in venue.posts]


def test_orders_waiting_for_a_rate_token_do_not_leave_after_a_halt(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.svc.bucket._tokens = 1.0  # one token now, the next in a second
        h.svc.bucket.rate_per_s = 1.0
        for coid in ("zt-q.0", "zt-q.1", "zt-q.2"):
            assert (await _send(h, _request(coid))).accepted
        await until(lambda: _posted(h) == ["zt-q.0"])
        report = await _trip(h, TradingState.HALTED, seq=5)
        assert report.ok and report.open_orders == 0 and report.canceled == 1
        await until(
            lambda: all(h.svc.tracker.orders[c].status == "submit_failed" for c in ("zt-q.1", "zt-q.2"))
        )
        await asyncio.sleep(1.5)  # tokens come back: still nothing goes out
        assert _posted(h) == ["zt-q.0"]
        assert "halted" in h.svc.tracker.orders["zt-q.1"].reason
        ack = await _send(h, _request("zt-q.3"))
        assert not ack.accepted and ack.detail.startswith("halted")

    run_with_venue(tmp_path, scenario)


def test_a_halt_written_to_the_state_file_closes_the_gate_before_the_next_post(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read once per order, by the check right before the POST is written: the request
    may be accepted on the state execution already knew, and still never leaves."""
    stats: list[str] = []
    real_stat = trading_state.os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    async def scenario(h: Harness) -> None:
        store = StateStore(h.svc.settings.zmq.run_dir)
        assert (await _send(h, _request("zt-f.0"))).accepted
        await until(lambda: _posted(h) == ["zt-f.0"])
        monkeypatch.setattr(trading_state.os, "stat", counting_stat)
        assert (await _send(h, _request("zt-f.1"))).accepted
        await until(lambda: _posted(h) == ["zt-f.0", "zt-f.1"])
        assert stats == [str(store.path)]
        current = store.load()
        store.save(StateRecord(state=TradingState.HALTED, seq=current.seq + 1, source=TripSource.CLI_OUT_OF_BAND,
                               who="cli", reason="oob", ts_ns=time.time_ns()))  # fmt: skip
        await _send(h, _request("zt-f.2"))
        await until(lambda: h.svc.tracker.orders["zt-f.2"].status == "submit_failed")
        assert "halted" in h.svc.tracker.orders["zt-f.2"].reason
        assert _posted(h) == ["zt-f.0", "zt-f.1"] and h.svc.status()["trading_state"] == "halted"
        ack = await _send(h, _request("zt-f.3"))
        assert not ack.accepted and "halted" in ack.detail

    run_with_venue(tmp_path, scenario)


def test_a_gate_that_knows_no_state_yet_reads_the_file_even_for_an_early_answer(tmp_path: Path) -> None:
    gate = TradingGate(tmp_path)  # execution starts before risk wrote the state file
    assert gate.blocks("buy", 1, _no_exposure, read_file=False) is RejectReason.HALTED  # closed: unknown
    StateStore(tmp_path).save(StateRecord(state=TradingState.ACTIVE, seq=0, source=TripSource.CLI_OUT_OF_BAND,
                                          who="risk", reason="first start", ts_ns=time.time_ns()))  # fmt: skip
    assert gate.blocks("buy", 1, _no_exposure, read_file=False) is None  # risk's first event not yet in
    assert gate.state is TradingState.ACTIVE


def test_reduce_only_lets_through_only_what_shrinks_the_position(tmp_path: Path) -> None:
    def long_ten(venue: Any) -> None:
        venue.positions = [{"symbol": "AAPL", "qty": "10", "side": "long", "avg_entry_price": "100"}]

    async def scenario(h: Harness) -> None:
        assert (await _trip(h, TradingState.REDUCE_ONLY, seq=3)).ok
        grows = await _send(h, _request("zt-r.0", side="buy", qty="1"))
        flips = await _send(h, _request("zt-r.1", side="sell", qty="11"))
        assert not grows.accepted and grows.detail.startswith("reduce_only")
        assert not flips.accepted and flips.detail.startswith("reduce_only")
        assert (await _send(h, _request("zt-r.2", side="sell", qty="6"))).accepted
        await until(lambda: _posted(h) == ["zt-r.2"])
        # with 6 already working, selling 5 more would flip the position: refused
        more = await _send(h, _request("zt-r.3", side="sell", qty="5"))
        assert not more.accepted
        assert (await _send(h, _request("zt-r.4", side="sell", qty="4"))).accepted
        await until(lambda: _posted(h) == ["zt-r.2", "zt-r.4"])

    run_with_venue(tmp_path, scenario, before_start=long_ten)


def test_an_order_built_from_a_tick_too_old_by_now_is_not_sent(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        assert (await _send(h, _request("zt-s.0", tick_age_s=5.0))).accepted  # risk let it through
        await until(lambda: h.svc.tracker.orders["zt-s.0"].status == "submit_failed")
        assert "stale_quote" in h.svc.tracker.orders["zt-s.0"].reason
        assert (await _send(h, _request("zt-s.1", tick_age_s=0.1))).accepted
        await until(lambda: _posted(h) == ["zt-s.1"])

    run_with_venue(tmp_path, scenario)


def test_reset_is_refused_while_the_venue_holds_an_order_zerotick_did_not_place(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        assert (await _trip(h, TradingState.HALTED, seq=2)).ok
        venue: Any = h.venue
        venue.place("someone-elses-order", "1")
        refused = await _trip(h, TradingState.ACTIVE, seq=3)
        assert not refused.ok and "someone-elses-order" in refused.detail
        assert h.svc.status()["trading_state"] == "halted"
        venue.orders["someone-elses-order"]["status"] = "canceled"
        assert (await _trip(h, TradingState.ACTIVE, seq=3)).ok
        assert h.svc.status()["trading_state"] == "active"
        assert (await _send(h, _request("zt-a.0"))).accepted

    run_with_venue(tmp_path, scenario)
