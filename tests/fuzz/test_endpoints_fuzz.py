"""Fuzz every ZeroMQ endpoint of signal and risk (in-process, real sockets): market data on
market_data's PUB, order events and heartbeats on execution's PUB (live and by replay), and
requests on both rpc ROUTERs; malformed bytes and well-formed messages carrying out-of-range
numbers (negative exch_ns, 2^64-1 prices, qty beyond int64). Afterwards: no task died or failed,
no strategy was disabled, both services still answer, and the order-event sequence is caught up."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import uvloop
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import topics, wire
from common.config import Settings
from services.risk.service import RiskService
from services.signal.service import SignalService
from services.signal.strategy import Intents, Strategy
from tests.kit.fake_execution import FakeExecution

EXAMPLES = 60
NOW = time.time_ns()


class Recorder(Strategy):
    """Sees every quote; remembers the last sentinel it saw (so the test knows a batch went through)."""

    def configure(self, params: dict[str, Any]) -> None:
        super().configure(params)
        self.quotes = 0
        self.sentinel = 0

    def on_quote(self, q: wire.Quote) -> Intents:
        self.quotes += 1
        if q.symbol == "SENTINEL":
            self.sentinel = q.ask_sz
        return None

    def on_fill(self, fill: wire.Fill) -> Intents:
        return None


wide_ints = st.one_of(
    st.sampled_from([0, 1, -1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), NOW, -NOW]),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(0, 10**12),
)
texts = st.text(max_size=12)


def _strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    if tp is int:
        return wide_ints
    if tp is str:
        return texts
    if tp is bool:
        return st.booleans()
    if tp is bytes:
        return st.binary(max_size=16)
    if isinstance(tp, type) and issubclass(tp, str):  # a str-Enum of common.enums
        return st.sampled_from(list(tp))
    if tp == (int | None):
        return st.one_of(st.none(), wide_ints)
    if tp == list[tuple[int, int]]:
        return st.lists(st.tuples(wide_ints, wide_ints), max_size=3)
    if tp == dict[str, str]:
        return st.dictionaries(texts, texts, max_size=2)
    return st.nothing()


def _messages(tp: type) -> st.SearchStrategy[Any]:
    fields = {f.name: _strategy_for(f.type) for f in msgspec.structs.fields(tp)}
    if "symbol" in fields:  # mostly the symbols the strategies trade, so they see the odd values
        fields["symbol"] = st.one_of(st.sampled_from(["AAPL", "AAPL", "AAPL", "BTC/USD"]), texts)
    return st.builds(tp, **fields)


MD_TOPICS = {
    wire.Quote: topics.MD_QUOTE,
    wire.Trade: topics.MD_TRADE,
    wire.Bar: topics.MD_BAR,
    wire.Book: topics.MD_BOOK,
}
md_msgs = st.one_of(*(_messages(t) for t in MD_TOPICS))
ex_msgs = st.one_of(
    _messages(wire.OrderUpdate), _messages(wire.Fill), _messages(wire.Heartbeat), _messages(wire.Account)
)
requests = st.one_of(
    _messages(wire.Control),
    _messages(wire.OrderIntent),
    _messages(wire.Replay),
    _messages(wire.SetTradingState),
)


def _frame(topic: bytes, msgs: list[Any]) -> bytes:
    return wire.encode_batch(topic, msgs)


def _md_topic(m: Any) -> bytes:
    return topics.sym(MD_TOPICS[type(m)], m.symbol if m.symbol else "AAPL")


def _ex_topic(m: Any) -> bytes:
    if isinstance(m, wire.Heartbeat):
        return topics.heartbeat("execution")
    if isinstance(m, wire.Account):
        return topics.ACCOUNT
    prefix = topics.EX_FILL if isinstance(m, wire.Fill) else topics.EX_UPDATE
    return topics.sym(prefix, m.symbol or "AAPL")


actions = st.one_of(
    st.tuples(
        st.just("md"), st.lists(md_msgs, min_size=1, max_size=4).map(lambda ms: _frame(_md_topic(ms[0]), ms))
    ),
    st.tuples(st.just("md"), st.binary(max_size=40).map(lambda b: b"md.q.AAPL\0\x01" + b)),
    st.tuples(st.just("md"), st.binary(max_size=40)),
    st.tuples(st.just("ex"), ex_msgs.map(lambda m: _frame(_ex_topic(m), [m]))),
    st.tuples(st.just("ex"), st.binary(max_size=40).map(lambda b: b"ex.f.AAPL\0" + b)),
    st.tuples(st.just("ex_log"), st.one_of(_messages(wire.OrderUpdate), _messages(wire.Fill))),
    st.tuples(st.sampled_from(["signal_rpc", "risk_rpc"]), requests.map(wire.encode)),
    st.tuples(st.sampled_from(["signal_rpc", "risk_rpc"]), st.binary(max_size=40)),
)


def test_every_endpoint_survives_malformed_and_out_of_range_messages(tmp_path: Path) -> None:
    cfg = Settings(
        zmq={"run_dir": tmp_path, "heartbeat_interval_ms": 50, "request_timeout_ms": 500},
        metrics={"base_port": 0},
        signal={"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"]},
            {"name": "ma", "kind": "ma_cross", "symbols": ["AAPL"]},
            {"name": "rec", "kind": f"{__name__}:Recorder"},
        ]},
    )  # fmt: skip
    loop = uvloop.new_event_loop()
    unretrieved: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    ctx = zmq.Context.instance()
    z = cfg.zmq
    counts = {"inputs": 0}

    async def up() -> tuple[FakeExecution, RiskService, SignalService, list[asyncio.Task[None]]]:
        ex = FakeExecution(cfg)
        risk = RiskService(cfg)
        sig = SignalService(cfg)
        tasks = [loop.create_task(s.run_forever()) for s in (ex, risk, sig)]
        await risk.ready.wait()
        return ex, risk, sig, tasks

    md_pub = ctx.socket(zmq.PUB)
    md_pub.setsockopt(zmq.LINGER, 0)
    md_pub.bind(z.endpoint("market_data", "pub"))
    ex, risk, sig, tasks = loop.run_until_complete(up())
    dealers = {}
    for name, svc in (("signal_rpc", "signal"), ("risk_rpc", "risk")):
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(z.endpoint(svc, "rpc"))
        dealers[name] = d
    rec = sig.host.slots["rec"].strategy
    assert isinstance(rec, Recorder)

    async def through(marker: int) -> None:
        """A sentinel quote after the inputs: once the recorder saw it, the md inputs were handled."""
        sentinel = wire.Quote(
            symbol="SENTINEL",
            bid_px=1,
            bid_sz=1,
            ask_px=2,
            ask_sz=marker,
            exch_ns=time.time_ns(),
            recv_ns=time.time_ns(),
        )
        for _ in range(400):
            md_pub.send(_frame(b"md.q.SENTINEL", [sentinel]))
            await asyncio.sleep(0.005)
            if rec.sentinel == marker:
                return
        raise AssertionError("signal stopped handling market data")

    loop.run_until_complete(through(1))  # subscriptions are up

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.lists(actions, min_size=1, max_size=8))
    def one(batch: list[tuple[str, Any]]) -> None:
        for target, payload in batch:
            counts["inputs"] += 1
            if target == "md":
                md_pub.send(payload)
            elif target == "ex":
                ex.pub.sock.send(payload)
            elif target == "ex_log":
                ex.record(payload)
            else:
                dealers[target].send_multipart([os.urandom(8), payload])
        loop.run_until_complete(through(counts["inputs"] + 1))

    one()

    async def settle() -> None:
        for _ in range(300):
            if sig._events and risk._events and sig._events.last_seq == risk._events.last_seq == len(ex.log):
                return
            await asyncio.sleep(0.01)

    loop.run_until_complete(settle())

    async def answers(d: zmq.Socket) -> bool:
        while d.poll(0):
            d.recv_multipart()  # replies to the fuzz requests
        d.send_multipart([b"12345678", wire.encode(wire.Control(cmd="ping"))])
        for _ in range(200):
            if d.poll(0):
                reply = wire.decode(d.recv_multipart()[-1])
                return isinstance(reply, wire.Reply) and reply.ok
            await asyncio.sleep(0.01)
        return False

    for name, d in dealers.items():
        assert loop.run_until_complete(answers(d)), f"{name} stopped answering"

    try:
        disabled = {n: s.error for n, s in sig.host.slots.items() if not s.enabled}
        task_status = {svc.name: svc.tasks.status() for svc in (sig, risk)}
        print(
            f"endpoint fuzz: {counts['inputs']} inputs; dropped out of range: signal {sig.inbound.rejected},"
            f" risk {risk.inbound.rejected}; order events {len(ex.log)}; quotes seen {rec.quotes};"
            f" intents sent {sig.intents_sent}; event handler errors: risk {risk._events.handler_errors}"
        )
        assert disabled == {}
        for svc, status in task_status.items():
            for name, t in status.items():
                assert t["failures"] == 0, (svc, name, t)
                assert t["running"] or name not in (
                    "heartbeats",
                    "strategy_timer",
                    "trading_state_beacon",
                    "kill_switch_triggers",
                ), (svc, name)
        assert not any(t.done() for t in tasks), "a service stopped"
        assert unretrieved == [], unretrieved[:3]
        assert sig._events is not None and risk._events is not None
        assert sig._events.last_seq == risk._events.last_seq == len(ex.log)
        assert sig.inbound.rejected > 0 and risk.inbound.rejected > 0
    finally:
        for svc in (sig, risk, ex):
            svc.request_stop()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        for d in dealers.values():
            d.close(0)
        md_pub.close(0)
        loop.close()
