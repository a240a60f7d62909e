"""The risk service against a fake execution on real sockets: it approves nothing before it knows
positions and the open orders behind them (both in execution's snapshot), ignores a snapshot from
before an execution restart,
survives unusable snapshots, keeps a live order's quantity when an intent is repeated, and rejects
out-of-range or ageless intents instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from common import topics, wire
from common.config import Settings
from common.enums import RejectReason
from common.fixed import to_fixed
from common.peer_link import credentials
from common.zmq_io import RpcClient, RpcUnavailable
from services.risk.service import RiskService
from tests.kit.fake_execution import FakeExecution, run_risk
from tests.kit.waiting import until


def f(x: str) -> int:
    return to_fixed(x)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 50, "request_timeout_ms": 1000},
        metrics={"base_port": 0},
        risk={"max_order_qty": 1000, "max_order_notional": 10**7, "max_position_qty": 500},
    )


def _quote() -> wire.Quote:
    now = time.time_ns()
    return wire.Quote(
        symbol="AAPL", bid_px=f("99.99"), bid_sz=f("1"), ask_px=f("100.01"), ask_sz=f("1"), exch_ns=now, recv_ns=now
    )  # fmt: skip


def _intent(iid: str, qty: str = "1", side: str = "buy", **kw: Any) -> wire.OrderIntent:
    now = time.time_ns()
    fields: dict[str, Any] = {"signal_ns": now, "deadline_ns": now + 10**9, "limit_px": f("100"), **kw}
    return wire.OrderIntent(
        intent_id=iid, strategy="t", symbol="AAPL", side=side, qty=f(qty) if isinstance(qty, str) else qty,
        **fields,
    )  # fmt: skip


def _open_order(coid: str, qty: str) -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=0, client_order_id=coid, venue_order_id="v-" + coid, strategy="t", symbol="AAPL", side="buy",
        status="new", event="new", qty=f(qty), filled_qty=0, filled_avg_px=0, limit_px=f("100"), reason="",
        venue_ns=1, recv_ns=1,
    )  # fmt: skip


def _run(
    tmp_path: Path,
    prepare: Callable[[FakeExecution], None],
    scenario: Callable[[FakeExecution, RiskService], Awaitable[None]],
) -> None:
    async def quoted(ex: FakeExecution, risk: RiskService) -> None:
        risk.risk.on_quote(_quote())
        await scenario(ex, risk)

    run_risk(_settings(tmp_path), quoted, prepare=prepare, until_positions=False)


def test_no_approval_until_the_open_orders_behind_the_snapshot_are_known(tmp_path: Path) -> None:
    gate = asyncio.Event()

    def prepare(ex: FakeExecution) -> None:
        ex.record(_open_order("zt-old.1", "400"), publish=False)  # open before risk started
        ex.positions_gates = [gate]  # the snapshot is slow

    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: ex.positions_requests == 1, "the snapshot request")
        early = risk.decide(_intent("a", "200"))  # 400 open + 200 > 500: must not pass unseen
        assert (early.approved, early.reason) == (False, RejectReason.NOT_READY.value)
        assert risk.heartbeat_state() == "not_ready"  # what `zerotick status` shows meanwhile
        gate.set()
        await until(lambda: risk.trading_ready, "the snapshot with its open orders")
        assert risk.heartbeat_state() == "active"
        assert risk.decide(_intent("b", "200")).reason == RejectReason.MAX_POSITION.value
        assert risk.decide(_intent("c", "100")).approved

    _run(tmp_path, prepare, scenario)


def test_a_snapshot_from_before_an_execution_restart_is_ignored(tmp_path: Path) -> None:
    old_gate = asyncio.Event()

    def prepare(ex: FakeExecution) -> None:
        # the old process's snapshot: 300 long as of seq 40; it answers late
        ex.positions = [wire.Position(symbol="AAPL", qty=f("300"), avg_px=f("100"), realized_pnl=0, ts_ns=1)]
        ex.as_of = 40
        ex.positions_gates = [old_gate]

    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: ex.positions_requests == 1, "the first positions request")
        await asyncio.sleep(0.2)  # the receiver knows the old pid
        clients = len(risk._clients)
        # execution restarts: a new pid, flat, an empty event log
        ex.pid += 1
        ex.positions, ex.as_of = [], None
        await until(lambda: ex.positions_requests == 2, "a positions request to the new execution")
        await until(lambda: risk.positions_loaded, "the new snapshot")
        old_gate.set()  # now the old process's answer arrives
        await asyncio.sleep(0.2)
        assert risk.risk.positions.qty("AAPL") == 0
        assert risk.status()["positions_as_of_seq"] == 0
        assert len(risk._clients) == clients  # no new socket per restart
        risk.risk.on_quote(_quote())  # the scenario may outlast the quote's allowed age
        assert risk.decide(_intent("a", "500")).approved

    _run(tmp_path, prepare, scenario)


def test_unusable_positions_replies_are_retried_not_fatal(tmp_path: Path) -> None:
    def prepare(ex: FakeExecution) -> None:
        ex.as_of = -1  # not a sequenced snapshot

    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: ex.positions_requests >= 1, "a positions request")
        await asyncio.sleep(0.1)
        assert not risk.positions_loaded
        ex.as_of, ex.bad_positions_reply = None, wire.Reply(ok=False, detail="not ready")
        await until(lambda: ex.positions_requests >= 2, "a retry")
        await asyncio.sleep(0.1)
        assert not risk.positions_loaded
        ex.bad_positions_reply = None
        await until(lambda: risk.trading_ready, "a usable snapshot", timeout_s=6)

    _run(tmp_path, prepare, scenario)


def test_a_repeated_intent_does_not_release_the_live_order(tmp_path: Path) -> None:
    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: risk.trading_ready, "readiness")
        first = risk.decide(_intent("dup", "200"))
        assert first.approved
        again = risk.decide(_intent("dup", "200"))
        assert (again.approved, again.reason) == (False, RejectReason.DUPLICATE.value)
        await until(lambda: first.client_order_id in ex.orders, "the order at execution")
        await asyncio.sleep(0.1)  # any acks are in
        assert risk.risk.pending_by_symbol() == {"AAPL": {"buy": f("200"), "sell": 0}}
        assert risk.decide(_intent("next", "350")).reason == RejectReason.MAX_POSITION.value

    _run(tmp_path, lambda ex: None, scenario)


def test_out_of_range_and_ageless_intents_are_rejected_cleanly(tmp_path: Path) -> None:
    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: risk.trading_ready, "readiness")
        now = time.time_ns()
        huge = risk.decide(_intent("q", 2**64 - 1))
        huge_px = risk.decide(_intent("p", "1", limit_px=2**63))
        ageless = risk.decide(_intent("n", "1", signal_ns=0, deadline_ns=0))
        old = risk.decide(_intent("o", "1", signal_ns=now - 5 * 10**9, deadline_ns=now + 10**12))
        future = risk.decide(_intent("fu", "1", signal_ns=now + 10**12, deadline_ns=now + 10**13))
        reasons = [d.reason for d in (huge, huge_px, ageless, old, future)]
        assert (
            reasons
            == [RejectReason.BAD_ORDER.value, RejectReason.BAD_ORDER.value] + [RejectReason.EXPIRED.value] * 3
        )
        assert ex.orders == {}
        # the same over the wire: an answer, not an error reply
        client = RpcClient(
            risk.ctx, risk.loop, risk.settings.zmq.endpoint("risk", "intents"), "test", "risk",
            setup=credentials(risk.settings, "signal"),
        )  # fmt: skip
        await asyncio.sleep(0.1)
        reply = await client.request(_intent("w", 2**64 - 1))
        client.close()
        assert isinstance(reply, wire.RiskDecision) and reply.reason == RejectReason.BAD_ORDER.value

    _run(tmp_path, lambda ex: None, scenario)


def test_intents_only_from_signal_on_the_intents_socket(tmp_path: Path) -> None:
    """The issue's case: an OrderIntent under any strategy name from a process that is not signal."""

    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: risk.trading_ready, "readiness")
        general = risk.client("risk")  # the general socket anyone can reach
        await asyncio.sleep(0.1)
        reply = await general.request(_intent("rogue", "1"))
        general.close()
        assert isinstance(reply, wire.Reply) and not reply.ok and "only from signal" in reply.detail
        impostor = RpcClient(
            risk.ctx, risk.loop, risk.settings.zmq.endpoint("risk", "intents"), "test", "risk",
            setup=credentials(risk.settings, "execution"),
        )  # fmt: skip
        await asyncio.sleep(0.3)
        with pytest.raises(RpcUnavailable):  # its handshake never completes: nothing is delivered
            await impostor.request(_intent("rogue2", "1"))
        impostor.close()
        assert sum(risk.decisions.values()) == 0 and ex.orders == {}

    _run(tmp_path, lambda ex: None, scenario)


def test_buying_power_comes_from_executions_account_snapshots(tmp_path: Path) -> None:
    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: risk.trading_ready, "readiness")
        assert risk.status()["buying_power"] is None  # unknown: the check is skipped
        assert risk.decide(_intent("a", "30")).approved  # $3,000 with no account known yet
        account = wire.Account(cash=f("2500"), buying_power=f("2500"), equity=f("2500"), last_equity=f("2500"),
                               ts_ns=time.time_ns())  # fmt: skip
        ex.pub.publish(topics.ACCOUNT, [account])
        await until(lambda: risk.status()["buying_power"] == "2500", "the account snapshot")
        over = risk.decide(_intent("b", "26"))  # $2,600 > $2,500
        assert (over.approved, over.reason) == (False, RejectReason.BUYING_POWER.value)
        assert risk.decide(_intent("c", "24")).approved
        older = wire.Account(
            cash=0, buying_power=f("1000000"), equity=0, last_equity=0, ts_ns=account.ts_ns - 1
        )
        ex.pub.publish(topics.ACCOUNT, [older])  # out of order: ignored
        await asyncio.sleep(0.1)
        assert risk.status()["buying_power"] == "2500"

    _run(tmp_path, lambda ex: None, scenario)


def test_an_approval_goes_to_execution_and_is_published_on_the_next_loop_turn(tmp_path: Path) -> None:
    """The order request and the reply go first; the rk.rd publication and the metrics follow
    (``call_soon``): nothing is lost by deferring them."""

    async def scenario(ex: FakeExecution, risk: RiskService) -> None:
        await until(lambda: risk.trading_ready, "readiness")
        published: list[wire.RiskDecision] = []
        publish = risk.pub.publish

        def recording(topic: bytes, msgs: list[Any]) -> None:
            if topic == topics.RK_DECISION:
                published.extend(msgs)
            publish(topic, msgs)

        risk.pub.publish = recording  # type: ignore[method-assign]
        approved = risk.decide(_intent("pub-1"))
        rejected = risk.decide(_intent("pub-2", "5000"))
        assert approved.approved and not rejected.approved
        assert risk.decisions["ok"] == 1 and risk.decisions[RejectReason.MAX_ORDER_QTY.value] == 1
        await asyncio.sleep(0)
        assert published == [approved, rejected]
        await until(lambda: approved.client_order_id in ex.orders, "the order at execution")

    _run(tmp_path, lambda ex: None, scenario)
