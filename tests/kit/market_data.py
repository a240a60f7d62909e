"""Test helpers: an Alpaca-protocol WebSocket venue in a thread, the service as a subprocess, a SUB."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import orjson
import zmq
from websockets.asyncio.server import Server, ServerConnection, serve

from common import wire
from common.config import ZmqConfig

REPO = Path(__file__).resolve().parents[2]
SIM_KEY, SIM_SECRET = "test-key", "test-secret-value"


def _pack(*msgs: dict[str, Any]) -> bytes:
    return msgpack.packb(list(msgs))


class FakeAlpaca:
    """Speaks Alpaca's market-data stream protocol (msgpack): greeting, auth, subscribe ack, data."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.clients: dict[str, set[ServerConnection]] = {}
        self.auth_errors: list[tuple[int, str]] = []  # answered to the next auths, in order
        self.connects: dict[str, int] = {}
        self.subscribes: list[dict[str, Any]] = []
        self._server: Server = self._call(self._serve())
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self) -> Server:
        return await serve(self._handler, "127.0.0.1", 0)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _call(self, coro: Any, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path
        self.connects[path] = self.connects.get(path, 0) + 1
        await ws.send(_pack({"T": "success", "msg": "connected"}))
        auth = msgpack.unpackb(await ws.recv())
        if self.auth_errors:
            code, msg = self.auth_errors.pop(0)
            await ws.send(_pack({"T": "error", "code": code, "msg": msg}))
            await ws.close()
            return
        if auth != {"action": "auth", "key": SIM_KEY, "secret": SIM_SECRET}:
            await ws.send(_pack({"T": "error", "code": 402, "msg": "auth failed"}))
            await ws.close()
            return
        await ws.send(_pack({"T": "success", "msg": "authenticated"}))
        sub = msgpack.unpackb(await ws.recv())
        self.subscribes.append(sub)
        ack = {"T": "subscription", **{k: v for k, v in sub.items() if k != "action"}}
        # registered before the ack goes out: once the service says "subscribed", send() reaches it
        self.clients.setdefault(path, set()).add(ws)
        await ws.send(_pack(ack))
        try:
            await ws.wait_closed()
        finally:
            self.clients[path].discard(ws)

    def send(self, path: str, frame: bytes | str) -> int:
        async def go() -> int:
            conns = list(self.clients.get(path, ()))
            for ws in conns:
                await ws.send(frame)
            return len(conns)

        return self._call(go())

    def ping(self, path: str) -> int:
        """Ping every client on ``path`` and wait for their pongs; how many answered."""

        async def go() -> int:
            waiters = [await ws.ping() for ws in list(self.clients.get(path, ()))]
            await asyncio.wait_for(asyncio.gather(*waiters), 3.0)
            return len(waiters)

        return self._call(go())

    def drop(self, path: str) -> None:
        async def go() -> None:
            for ws in list(self.clients.get(path, ())):
                await ws.close(1011, "dropped by test")

        self._call(go())

    def close(self) -> None:
        self._server.close()
        self._call(self._server.wait_closed())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def write_config(tmp_path: Path, stock_url: str, crypto_url: str, extra: str = "") -> Path:
    cfg = tmp_path / "zerotick.toml"
    cfg.write_text(
        f"""
[alpaca]
stock_stream_url = "{stock_url}"
crypto_stream_url = "{crypto_url}"

[sim]
key_id = "{SIM_KEY}"
secret_key = "{SIM_SECRET}"

[zmq]
run_dir = "{tmp_path / "run"}"

[metrics]
base_port = 0

[log]
level = "INFO"

[market_data]
stocks = ["AAPL", "MSFT"]
crypto = ["BTC/USD"]
book_depth_published = 3
reconnect_min_s = 0.05
reconnect_max_s = 0.5
stale_after_s = 1.0
{extra}
"""
    )
    return cfg


def start_service(cfg: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_"))}
    env["ZEROTICK_CONFIG"] = str(cfg)
    env["PYTHONPATH"] = str(REPO)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.market_data", "--config", str(cfg)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class MdSubscriber:
    """A real SUB socket on the service's PUB endpoint, collecting every message."""

    def __init__(self, run_dir: Path, prefix: bytes = b"md.") -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sock.connect(ZmqConfig(run_dir=run_dir).endpoint("market_data", "pub"))
        self.seen: list[tuple[bytes, Any]] = []

    def _receive(self, timeout_ms: int) -> list[tuple[bytes, Any]]:
        """The messages of the next frame (none if nothing came in ``timeout_ms``), kept in ``seen``."""
        if not self.sock.poll(timeout_ms):
            return []
        topic, msgs = wire.decode_batch(self.sock.recv())
        got = [(topic, m) for m in msgs]
        self.seen.extend(got)
        return got

    def wait_for(self, pred: Callable[[bytes, Any], bool], timeout: float = 15.0, what: str = "") -> Any:
        """Return the first message (from now on) matching ``pred``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for topic, m in self._receive(100):
                if pred(topic, m):
                    return m
        raise AssertionError(
            f"timed out waiting for {what or pred}; saw {[type(m).__name__ for _, m in self.seen[-20:]]}"
        )

    def until_quiet(
        self, pred: Callable[[bytes, Any], bool], quiet_s: float = 1.0, timeout: float = 30.0
    ) -> list[Any]:
        """Every message matching ``pred`` until, after the first, none has come for ``quiet_s`` (a
        replay has ended; feed statuses keep coming, so ``pred`` says what counts)."""
        out: list[Any] = []
        last = time.monotonic()
        deadline = last + timeout
        while not out or time.monotonic() - last < quiet_s:
            assert time.monotonic() < deadline, f"still receiving after {timeout}s; {len(out)} messages"
            got = [m for topic, m in self._receive(100) if pred(topic, m)]
            if got:
                out += got
                last = time.monotonic()
        return out

    def wait_feed(self, feed: str, state: str, timeout: float = 15.0) -> wire.FeedStatus:
        return self.wait_for(
            lambda _t, m: isinstance(m, wire.FeedStatus) and m.feed == feed and m.state == state,
            timeout,
            f"{feed} {state}",
        )

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def rpc_control(run_dir: Path, cmd: str, timeout_ms: int = 5000) -> wire.Reply:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(ZmqConfig(run_dir=run_dir).endpoint("market_data", "rpc"))
        sock.send_multipart([b"\x01" * 8, wire.encode(wire.Control(cmd=cmd))])
        if not sock.poll(timeout_ms):
            raise AssertionError(f"no reply to {cmd}")
        _, body = sock.recv_multipart()
        reply = wire.decode(body)
        assert isinstance(reply, wire.Reply)
        return reply
    finally:
        sock.close(0)
        ctx.term()


def wait_feeds_subscribed(
    run_dir: Path, feeds: tuple[str, ...], sub: MdSubscriber | None = None, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll the service's status (a SUB that joins late can miss the first FeedStatus). With ``sub``,
    also wait until that SUB has joined: one connected before the service bound retries every
    ``RECONNECT_IVL`` (100 ms), longer than the service takes from binding to subscribed, so data
    sent right away could be published before it is there to receive it."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = orjson.loads(rpc_control(run_dir, "status", timeout_ms=500).data)["feeds"]
        except AssertionError:
            continue
        if all(last.get(f, {}).get("state") == "subscribed" for f in feeds):
            if sub is not None:  # every feed's status is republished at least once a second
                sub.wait_for(lambda _t, m: isinstance(m, wire.FeedStatus), 5.0, "any status: the SUB joined")
            return last
        time.sleep(0.05)
    raise AssertionError(f"feeds not subscribed in time: {last}")
