"""The automatic kill-switch triggers with a fake clock: each fires just beyond its limit and not at it,
once per arming, re-arms on a reset to ACTIVE, and a firing changes the state through the owner with
the configured action and flatten, audited and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from common import wire
from common.config import KillSwitchConfig
from common.enums import RejectReason, TradingState, Trigger, TripSource
from common.fixed import to_fixed
from common.trading_state import AuditLog, StateStore
from services.risk import trigger_runner
from services.risk.metrics import TRIGGER_FIRED
from services.risk.trading_state import TradingStateOwner, _fields
from services.risk.trigger_runner import TriggerRunner
from services.risk.triggers import Exposure, Triggers

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
FLAT = Exposure(pnl=0, holding=False)
ACTIVE = TradingState.ACTIVE


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


def only(trigger: Trigger, **section: Any) -> KillSwitchConfig:
    """Every trigger off except ``trigger``, configured with ``section``."""
    doc: dict[str, Any] = {t.value: {"enabled": t is trigger} for t in Trigger}
    doc[trigger.value].update(section)
    doc["eval_interval_ms"] = 10_000  # a stall is then 100 s: these tests jump the clock by less
    return KillSwitchConfig.model_validate(doc)


def make(trigger: Trigger, **section: Any) -> tuple[Triggers, Clock]:
    clock = Clock()
    return Triggers(only(trigger, **section), clock), clock


def fired(t: Triggers, exposure: Exposure = FLAT, state: TradingState = ACTIVE) -> list[Trigger]:
    return [f.trigger for f in t.evaluate(exposure, state)]


def update(coid: str, status: str, reason: str = "", **kw: int) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=1, client_order_id=coid, venue_order_id="", strategy="s", symbol="AAPL", side="buy",
        status=status, event=status, qty=S, filled_qty=0, filled_avg_px=0, limit_px=0, reason=reason,
        venue_ns=0, recv_ns=kw.pop("recv_ns", T0), **kw,
    )  # fmt: skip


def heartbeat(state: str) -> wire.Heartbeat:
    return wire.Heartbeat(service="execution", pid=1, seq=1, state=state, last_event_seq=0, ts_ns=0)


def dollars(x: str) -> int:
    return to_fixed(x)


# ---- each trigger: at its limit nothing, just beyond it fires ----------------------------------


def test_daily_loss_beyond_limit_only() -> None:
    t, _ = make(Trigger.DAILY_LOSS, limit="100")
    assert fired(t, Exposure(pnl=-dollars("100"), holding=True)) == []
    assert fired(t, Exposure(pnl=None, holding=True)) == []  # positions not known: no loss
    assert fired(t, Exposure(pnl=-dollars("100.000000001"), holding=True)) == [Trigger.DAILY_LOSS]


def test_drawdown_is_from_the_session_peak() -> None:
    t, _ = make(Trigger.DRAWDOWN, limit="50")
    assert fired(t, Exposure(pnl=dollars("80"), holding=True)) == []  # the peak: +80
    assert fired(t, Exposure(pnl=dollars("30"), holding=True)) == []  # 50 below it: at the limit
    assert t.readings(Exposure(pnl=dollars("30"), holding=True))[Trigger.DRAWDOWN].value == "50"
    assert fired(t, Exposure(pnl=dollars("29.99"), holding=True)) == [Trigger.DRAWDOWN]


def test_a_day_roll_moves_the_drawdown_peak_with_the_day_s_p_and_l() -> None:
    t, _ = make(Trigger.DRAWDOWN, limit="50")
    fired(t, Exposure(pnl=dollars("80"), holding=True))  # the peak: +80
    fired(t, Exposure(pnl=dollars("60"), holding=True))  # 20 below it
    t.on_day_roll(dollars("60"))  # the new day counts from 0: the same 20 below the (moved) peak
    assert t.readings(Exposure(pnl=dollars("0"), holding=True))[Trigger.DRAWDOWN].value == "20"
    assert fired(t, Exposure(pnl=dollars("-30"), holding=True)) == []  # 50: at the limit
    assert fired(t, Exposure(pnl=dollars("-30.01"), holding=True)) == [Trigger.DRAWDOWN]


def test_reject_rate_counts_risk_and_venue_rejects_in_the_window() -> None:
    t, clock = make(Trigger.REJECT_RATE, max_count=3, window_s=10)
    for reason in (
        RejectReason.HALTED,
        RejectReason.REDUCE_ONLY,
        RejectReason.NOT_READY,
        RejectReason.ORDER_RATE,
        RejectReason.STRATEGY_ORDER_RATE,
    ):
        t.on_risk_reject(reason)  # self-inflicted or pacing: never counted
    t.on_risk_reject(RejectReason.MAX_ORDER_QTY)
    t.on_order_update(update("a", "rejected", "insufficient buying power"))
    t.on_order_update(update("a", "rejected", "insufficient buying power"))  # the same order again
    t.on_order_update(update("b", "submit_failed", "halted: trading state halted"))  # execution's own
    t.on_order_update(update("c", "submit_failed", "HTTP 403: insufficient qty"))
    assert fired(t) == []  # 3: at the limit
    clock.advance(10 * S)  # the first three fall out of the window
    t.on_risk_reject(RejectReason.PRICE_BAND)
    assert fired(t) == []
    for _ in range(3):
        t.on_risk_reject(RejectReason.PRICE_BAND)
    assert fired(t) == [Trigger.REJECT_RATE]


def test_reject_rate_ignores_replayed_rejects_older_than_the_window() -> None:
    t, _ = make(Trigger.REJECT_RATE, max_count=1, window_s=10)
    for coid in ("a", "b", "c"):  # a restarted risk replays execution's whole event log
        t.on_order_update(update(coid, "rejected", recv_ns=T0 - 11 * S))
    assert fired(t) == []


def test_order_rate_beyond_the_ceiling() -> None:
    t, clock = make(Trigger.ORDER_RATE, max_count=5, window_s=1)
    for _ in range(5):
        t.on_order_approved()
        clock.advance(100 * MS)
    assert fired(t) == []
    t.on_order_approved()
    assert fired(t) == [Trigger.ORDER_RATE]
    assert t.status(FLAT)["order_rate"]["value"] == "6"


def test_stale_data_only_while_holding() -> None:
    t, clock = make(Trigger.STALE_DATA, after_s=30)
    t.on_quote()
    clock.advance(30 * S)
    holding = Exposure(pnl=0, holding=True)
    assert fired(t, holding) == []  # exactly 30 s
    clock.advance(1)
    assert fired(t, FLAT) == []  # nothing held: stale data harms nothing
    assert fired(t, holding) == [Trigger.STALE_DATA]


def test_trade_stream_down_from_executions_heartbeats() -> None:
    t, clock = make(Trigger.TRADE_STREAM_DOWN, after_s=5)
    t.on_execution_heartbeat(heartbeat("degraded"))
    clock.advance(4 * S)
    t.on_execution_heartbeat(heartbeat("ok"))  # reconnected: the clock starts over
    t.on_execution_heartbeat(heartbeat("degraded"))
    clock.advance(5 * S)
    t.on_execution_heartbeat(heartbeat("degraded"))
    assert fired(t) == []
    clock.advance(1)
    assert fired(t) == [Trigger.TRADE_STREAM_DOWN]


def test_journal_failure_in_executions_heartbeat_halts_at_once() -> None:
    t, _ = make(Trigger.JOURNAL)
    t.on_execution_heartbeat(heartbeat("ok"))
    assert fired(t) == []
    t.on_execution_heartbeat(heartbeat("journal_failed"))
    firings = t.evaluate(FLAT, ACTIVE)
    assert [(f.trigger, f.action) for f in firings] == [(Trigger.JOURNAL, TradingState.HALTED)]
    assert "order journal" in firings[0].reading.detail


def test_execution_unreachable_is_armed_by_a_first_heartbeat() -> None:
    t, clock = make(Trigger.EXECUTION_UNREACHABLE, after_s=10)
    clock.advance(60 * S)
    assert fired(t) == []  # never seen: not yet started (risk rejects as not_ready meanwhile)
    t.on_execution_heartbeat(heartbeat("ok"))
    clock.advance(10 * S)
    assert fired(t) == []
    clock.advance(1)
    assert fired(t) == [Trigger.EXECUTION_UNREACHABLE]


def latency_update(coid: str, latency_ns: int, now: int) -> wire.OrderUpdate:
    return update(coid, "new", tick_recv_ns=now - latency_ns, sent_ns=now)


def test_latency_p99_needs_its_minimum_samples() -> None:
    t, clock = make(Trigger.LATENCY, p99_ms=2, min_samples=100, window_s=60)
    for i in range(99):  # 1 ms each, one of them 5 ms
        t.on_order_update(latency_update(f"o{i}", (5 if i == 50 else 1) * MS, clock.now))
    assert fired(t) == []  # 99 samples
    t.on_order_update(latency_update("o99", 1 * MS, clock.now))
    assert fired(t) == []  # p99 of 100 (nearest rank: the 99th) is 1 ms
    t.on_order_update(latency_update("o50", 9 * MS, clock.now))  # an order counts once
    assert fired(t) == []
    t.on_order_update(latency_update("o100", 2 * MS, clock.now))
    assert fired(t) == []  # the 99th of 101 is 2 ms: at the limit
    t.on_order_update(latency_update("o101", 3 * MS, clock.now))
    assert fired(t) == [Trigger.LATENCY]


def test_latency_samples_leave_the_window() -> None:
    t, clock = make(Trigger.LATENCY, p99_ms=1, min_samples=2, window_s=10)
    t.on_order_update(latency_update("a", 5 * MS, clock.now))
    clock.advance(11 * S)
    t.on_order_update(latency_update("b", 5 * MS, clock.now))
    assert fired(t) == []  # only one sample in the window


# ---- arming ----------------------------------------------------------------------------------------


def test_fires_once_per_arming_and_rearms_on_fresh_evidence() -> None:
    t, _ = make(Trigger.REJECT_RATE, max_count=2, window_s=60)
    for _ in range(3):
        t.on_risk_reject(RejectReason.PRICE_BAND)
    assert fired(t) == [Trigger.REJECT_RATE]
    t.on_risk_reject(RejectReason.PRICE_BAND)
    assert fired(t) == []  # still beyond: not again
    t.rearm()  # the operator reset to ACTIVE: the window starts empty
    assert fired(t) == []
    for _ in range(3):
        t.on_risk_reject(RejectReason.PRICE_BAND)
    assert fired(t) == [Trigger.REJECT_RATE]


def test_rearm_restarts_the_duration_clocks() -> None:
    t, clock = make(Trigger.EXECUTION_UNREACHABLE, after_s=10)
    t.on_execution_heartbeat(heartbeat("ok"))
    clock.advance(11 * S)
    assert fired(t) == [Trigger.EXECUTION_UNREACHABLE]
    t.rearm()
    clock.advance(10 * S)
    assert fired(t) == []  # 10 s since the reset, not 21
    clock.advance(1)
    assert fired(t) == [Trigger.EXECUTION_UNREACHABLE]


def test_a_stall_of_risk_itself_restarts_the_duration_clocks() -> None:
    clock = Clock()
    t = Triggers(KillSwitchConfig.model_validate({"execution_unreachable": {"after_s": 10}}), clock)
    t.on_execution_heartbeat(heartbeat("ok"))
    clock.advance(30 * S)  # risk was suspended: execution's heartbeats wait in the socket
    assert fired(t) == []
    clock.advance(10 * S + 1)  # no heartbeat for 10 s of risk running... evaluated only once
    assert fired(t) == []  # ...so that too was a stall
    for _ in range(10):
        clock.advance(S - 1)
        assert fired(t) == []  # evaluated every ~1 s
    clock.advance(10)
    assert fired(t) == []  # exactly 10 s since the stall ended
    clock.advance(1)
    assert fired(t) == [Trigger.EXECUTION_UNREACHABLE]


def test_an_action_not_stricter_than_the_state_does_nothing() -> None:
    t, _ = make(Trigger.DAILY_LOSS, limit="10", action="reduce_only")
    loss = Exposure(pnl=-dollars("11"), holding=True)
    assert fired(t, loss, TradingState.HALTED) == []
    assert fired(t, loss, TradingState.REDUCE_ONLY) == []
    assert fired(t, loss, ACTIVE) == [Trigger.DAILY_LOSS]  # it had not fired: it does now


def test_several_in_one_evaluation_only_while_each_tightens() -> None:
    cfg = KillSwitchConfig.model_validate(
        {
            **{tr.value: {"enabled": False} for tr in Trigger},
            "daily_loss": {"limit": "10", "action": "reduce_only"},
            "drawdown": {"limit": "5", "action": "reduce_only"},
            "reject_rate": {"max_count": 1},
        }
    )
    t = Triggers(cfg, Clock())
    t.on_risk_reject(RejectReason.PRICE_BAND)
    t.on_risk_reject(RejectReason.PRICE_BAND)
    got = t.evaluate(Exposure(pnl=-dollars("20"), holding=True), ACTIVE)
    assert [(f.trigger, f.action) for f in got] == [
        (Trigger.DAILY_LOSS, TradingState.REDUCE_ONLY),
        (Trigger.REJECT_RATE, TradingState.HALTED),
    ]  # drawdown's reduce_only adds nothing after daily loss's


def test_defaults_are_all_on_with_documented_actions() -> None:
    st = Triggers(KillSwitchConfig(), Clock()).status(FLAT)
    assert set(st) == {t.value for t in Trigger}
    assert all(v["enabled"] and not v["fired"] for v in st.values())
    assert st["daily_loss"]["limit"] == "20000" and st["daily_loss"]["flatten"]
    assert st["drawdown"]["action"] == "reduce_only" and st["latency"]["action"] == "reduce_only"


# ---- the runner: firing changes the state through the owner ----------------------------------------


class FakeExecution:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[int, TradingState, bool]] = []
        self.fail_first = fail_first

    async def tell(self, seq: int, state: TradingState, flatten: bool, deadline_ns: int) -> wire.TripReport:
        self.calls.append((seq, state, flatten))
        ok = len(self.calls) > self.fail_first
        return wire.TripReport(
            state=state, seq=seq, ok=ok, open_orders=0 if ok else -1, positions=0 if ok else -1,
            canceled=2 if ok else 0, closed=1 if ok and flatten else 0, confirm_us=0,
            detail="" if ok else "execution did not answer",
        )  # fmt: skip


def runner_for(tmp_path: Path, cfg: KillSwitchConfig, exposure: Exposure, execution: FakeExecution) -> tuple[
    TriggerRunner, TradingStateOwner, list[Any]
]:  # fmt: skip
    owner = TradingStateOwner(tmp_path, lambda s: None, lambda e: None)
    spawned: list[Any] = []
    runner = TriggerRunner(
        Triggers(cfg, Clock()), owner, lambda: exposure, execution.tell, spawned.append, 0.1
    )
    return runner, owner, spawned


@pytest.mark.parametrize(
    ("action", "flatten"), [("reduce_only", True), ("halted", False)], ids=["reduce_only+flatten", "halted"]
)
def test_runner_changes_state_with_the_configured_action_and_flatten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str, flatten: bool
) -> None:
    monkeypatch.setattr(trigger_runner, "RETRY_S", 0.0)
    cfg = only(Trigger.DAILY_LOSS, limit="10", action=action, flatten=flatten)
    execution = FakeExecution(fail_first=1)
    runner, owner, spawned = runner_for(
        tmp_path, cfg, Exposure(pnl=-dollars("12.5"), holding=True), execution
    )
    before = TRIGGER_FIRED.labels("daily_loss")._value.get()
    assert [f.trigger for f in runner.tick()] == [Trigger.DAILY_LOSS]
    assert owner.state is TradingState(action)
    rec = owner.record
    assert (rec.source, rec.who, rec.flatten) == (TripSource.TRIGGER, "daily_loss", flatten)
    assert "daily loss 12.5 beyond limit 10" in rec.reason
    assert TRIGGER_FIRED.labels("daily_loss")._value.get() == before + 1
    assert runner.tick() == []  # once
    # execution is told (retried until it confirms, here on the second attempt)
    asyncio.run(spawned[0])
    assert execution.calls == [(rec.seq, TradingState(action), flatten)] * 2
    audit = AuditLog(tmp_path).read()
    entry = next(a for a in audit if a["event"] == "trigger")
    assert entry["trigger"] == "daily_loss" and entry["value"] == "12.5" and entry["limit"] == "10"
    result = audit[-1]
    assert result["ok"] and result["attempts"] == 2 and result["closed"] == (1 if flatten else 0)


def test_runner_rearms_when_the_operator_resets(tmp_path: Path) -> None:
    cfg = only(Trigger.DAILY_LOSS, limit="10")
    runner, owner, spawned = runner_for(
        tmp_path, cfg, Exposure(pnl=-dollars("11"), holding=True), FakeExecution()
    )
    assert len(runner.tick()) == 1 and owner.state is TradingState.HALTED
    assert runner.tick() == []
    owner.change(ACTIVE, TripSource.CLI, "cli:op", "checked")
    assert [f.trigger for f in runner.tick()] == [Trigger.DAILY_LOSS]  # the loss is still there
    owner.change(ACTIVE, TripSource.CLI, "cli:op", "checked again")
    runner.tick()  # re-armed
    StateStore(tmp_path).save(owner.record.__class__(**{**_fields(owner.record), "seq": 99}))
    assert runner.tick() == []  # somebody else wrote the state file: risk adopts it before judging
    for coro in spawned:
        coro.close()
