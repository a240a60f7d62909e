"""Real signal and risk processes; the test plays market_data (a PUB) and execution (a ROUTER).
When risk stops answering (SIGSTOP), signal reports risk_timeout rejections and stays responsive;
after SIGCONT, decisions flow again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq
from zmq.auth.thread import ThreadAuthenticator

from common import wire
from common.auth import peer_password
from common.config import ZmqConfig
from common.fixed import to_fixed
from common.private_files import create_secret

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[zmq]
run_dir = "{run_dir}"
request_timeout_ms = 200
heartbeat_interval_ms = 100

[metrics]
base_port = 0

[risk]
intent_max_age_ms = 1000

[[signal.strategies]]
name = "probe1"
kind = "probe"
symbols = ["AAPL"]
"""


class FakeExecution(threading.Thread):
    """ROUTERs on execution's rpc endpoint and on its orders endpoint (where only risk, with its
    credentials, gets in): acks every order, replays nothing, has no positions."""

    def __init__(self, ctx: zmq.Context, z: ZmqConfig, risk_password: bytes) -> None:
        super().__init__(daemon=True)
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_plain(domain="*", passwords={"risk": risk_password.decode()})
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(z.endpoint("execution", "rpc"))
        self.orders_sock = ctx.socket(zmq.ROUTER)
        self.orders_sock.setsockopt(zmq.LINGER, 0)
        self.orders_sock.setsockopt(zmq.PLAIN_SERVER, 1)
        self.orders_sock.bind(z.endpoint("execution", "orders"))
        self.orders: list[wire.OrderRequest] = []
        self._stop_flag = threading.Event()

    def answer(self, msg: Any) -> Any:
        if isinstance(msg, wire.OrderRequest):
            self.orders.append(msg)
            return wire.OrderAck(
                client_order_id=msg.client_order_id, accepted=True, detail="", ts_ns=time.time_ns()
            )
        if isinstance(msg, wire.Replay):
            return wire.Reply(ok=True, detail="", data=wire.encode_list([]))
        if isinstance(msg, wire.Control) and msg.cmd == "positions":
            return wire.PositionsSnapshot(as_of_seq=0, positions=[])
        return wire.Reply(ok=True, detail="pong")

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.orders_sock, zmq.POLLIN)
        while not self._stop_flag.is_set():
            for sock, _ in poller.poll(50):
                ident, req_id, body = sock.recv_multipart()
                sock.send_multipart([ident, req_id, wire.encode(self.answer(wire.decode(body)))])
        self.sock.close(0)
        self.orders_sock.close(0)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)
        self.auth.stop()


def _start(module: str, config: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ZEROTICK_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    name = module.rsplit(".", 1)[-1]
    with open(log_dir / f"{name}.out", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def test_signal_reports_risk_timeout_and_recovers(tmp_path: Path, ctx: zmq.Context) -> None:
    config = tmp_path / "zerotick.toml"
    config.write_text(CONFIG.format(run_dir=tmp_path))
    z = ZmqConfig(run_dir=tmp_path)

    md = ctx.socket(zmq.PUB)
    md.setsockopt(zmq.LINGER, 0)
    md.bind(z.endpoint("market_data", "pub"))
    secret = create_secret(tmp_path / "peer.key")
    execution = FakeExecution(ctx, z, peer_password(secret, "risk"))
    execution.start()
    control = ctx.socket(zmq.DEALER)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(z.endpoint("signal", "rpc"))

    risk = _start("services.risk", config, tmp_path)
    sig = _start("services.signal", config, tmp_path)
    req_ids = iter(range(1, 1_000_000))

    def status() -> dict[str, Any] | None:
        req_id = next(req_ids).to_bytes(8, "little")
        control.send_multipart([req_id, wire.encode(wire.Control(cmd="status"))])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if control.poll(100):
                rid, body = control.recv_multipart()
                if rid == req_id:
                    reply = wire.decode(body)
                    assert isinstance(reply, wire.Reply) and reply.ok
                    return orjson.loads(reply.data)
        return None

    def publish_quote() -> None:
        now = time.time_ns()
        q = wire.Quote(
            symbol="AAPL",
            bid_px=to_fixed("189.99"),
            bid_sz=to_fixed(100),
            ask_px=to_fixed("190.01"),
            ask_sz=to_fixed(100),
            exch_ns=now,
            recv_ns=now,
        )
        md.send(wire.encode_batch(b"md.q.AAPL", [q]))

    def feed_until(
        cond: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            for name, proc in (("risk", risk), ("signal", sig)):
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited: " + (tmp_path / f"{name}.out").read_text()[-2000:])
            publish_quote()
            last = status()
            if last is not None and cond(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status: {last}")

    try:
        before = feed_until(lambda s: s["decisions"].get("approved", 0) >= 1, "a first approved decision")
        assert execution.orders, "risk forwarded nothing to execution"
        order = execution.orders[0]
        assert order.intent.strategy == "probe1" and order.intent.limit_px == to_fixed("190.01")

        os.kill(risk.pid, signal.SIGSTOP)
        stalled = feed_until(lambda s: s["decisions"].get("risk_timeout", 0) >= 1, "a risk_timeout rejection")
        assert stalled["strategies"]["probe1"]["enabled"] is True
        assert stalled["intents_sent"] > before["intents_sent"]

        os.kill(risk.pid, signal.SIGCONT)
        approved_then = stalled["decisions"].get("approved", 0)
        after = feed_until(
            lambda s: s["decisions"].get("approved", 0) > approved_then, "approvals after SIGCONT"
        )
        assert after["decisions"]["risk_timeout"] >= 1
    finally:
        _stop(sig)
        _stop(risk)
        execution.stop()
