"""The floor of zerotick's design: four processes and the same ZeroMQ hops, with nothing else in them.

    market_data --PUB/SUB--> signal --DEALER/ROUTER--> risk --DEALER/ROUTER--> execution --POST-->
              +--PUB/SUB (every quote, read paced and before each decision)--> risk

Each role is its own process on uvloop, its ZeroMQ sockets drained from the loop's reader callback
(risk's quote socket on a timer and before each decision, as zerotick's) with zerotick's own reads
and sends (``common.zmq_io``: the fastest way measured, docs/architecture.md "Measured baselines");
the WebSocket in is zerotick's client (``FeedConnection``), the pre-built POST out the minimal
client's (bench/minimal_client.py). No decoding beyond the quote's ask, no checks, no journal, no
metrics: what is left is what four processes and three hops cost on this host. The suite runs it
next to zerotick with the same CPU placement (``--cpus``, and each role's niceness from ``--nice``
in the order market_data, signal, risk, execution).

    python -m bench.pipeline_floor REST_URL STOCK_WS_URL KEY SECRET PROBE_SYMBOL RUN_DIR
        [--cpus 1] [--nice 0,-5,-10,-15] [OTHER_SYMBOL ...]

Prints ``pipeline floor ready pids=<md>,<signal>,<risk>,<execution>`` once every role is up.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgpack
import uvloop
import zmq

from bench.minimal_client import drain, order_head, order_request
from common.config import RiskConfig
from common.enums import FeedState
from common.placement import pin_process, renice_process
from common.zmq_io import recv_frames, send_frames
from services.market_data import decode as d
from services.market_data.alpaca_ws import FeedConnection

ROLES = ("market_data", "signal", "risk", "execution")
QUOTE_DRAIN_S = RiskConfig.model_fields["quote_drain_ms"].default / 1000


def _endpoints(run_dir: Path) -> dict[str, str]:
    return {"pub": f"ipc://{run_dir}/floor-md.pub", "risk": f"ipc://{run_dir}/floor-risk.rpc",
            "exec": f"ipc://{run_dir}/floor-exec.rpc"}  # fmt: skip


def _on_readable(
    loop: asyncio.AbstractEventLoop, sock: zmq.Socket, handle: Callable[[list[bytes]], None]
) -> None:
    """Drain ``sock`` from the loop's reader callback while a message waits (its FD is
    edge-triggered), read as zerotick's drains read (``common.zmq_io.recv_frames``)."""
    items = [(sock, zmq.POLLIN)]

    def drain_sock() -> None:
        while zmq.zmq_poll(items, 0):
            handle(recv_frames(sock))

    loop.add_reader(sock.getsockopt(zmq.FD), drain_sock)
    loop.call_soon(drain_sock)


async def _market_data(args: argparse.Namespace, ctx: zmq.Context, ep: dict[str, str]) -> None:
    """zerotick's WebSocket client (``FeedConnection``: frames from the read callback, binary frames
    past websockets' parser) with no work: each symbol's asks in a frame go out on the PUB in one
    message, as zerotick publishes one message per topic per frame."""
    pub = ctx.socket(zmq.PUB)
    pub.bind(ep["pub"])
    unpack = msgpack.unpackb
    subscribed = asyncio.Event()

    def on_frame(frame: bytes | str, recv_ns: int) -> list[d._Rec]:
        assert isinstance(frame, bytes)
        controls = False
        asks: dict[str, list[bytes]] = {}
        for msg in unpack(frame):
            if msg.get("T") == "q":
                asks.setdefault(msg["S"], []).append(str(msg["ap"]).encode())
            else:
                controls = True
        for symbol, batch in asks.items():  # one message per symbol per frame, as zerotick's topics
            pub.send(symbol.encode() + b" " + b",".join(batch), zmq.NOBLOCK)
        return d.decode_frame(frame)[0] if controls else []

    def on_state(state: FeedState, detail: str) -> None:
        if state is FeedState.SUBSCRIBED:
            subscribed.set()

    conn = FeedConnection(
        "stocks", args.stock_ws, (args.key, args.secret), {"quotes": [args.symbol, *args.others]},
        on_frame, on_state, 0.1, 1.0,
    )  # fmt: skip
    task = asyncio.get_running_loop().create_task(conn.run())
    await subscribed.wait()
    print("ready", flush=True)
    await task


def _dealer(loop: asyncio.AbstractEventLoop, ctx: zmq.Context, endpoint: str) -> Callable[[bytes], None]:
    """A DEALER to ``endpoint`` whose answers are read and dropped; returns its send."""
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    items = [(sock, zmq.POLLIN)]

    def drain_answers() -> None:
        while zmq.zmq_poll(items, 0):
            recv_frames(sock)

    def send(payload: bytes) -> None:
        sock.send(payload, zmq.NOBLOCK)
        loop.call_soon(drain_answers)  # the send may have swallowed the reader's edge

    loop.add_reader(sock.getsockopt(zmq.FD), drain_answers)
    return send


async def _signal(args: argparse.Namespace, ctx: zmq.Context, ep: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    sub = ctx.socket(zmq.SUB)
    sub.connect(ep["pub"])
    sub.setsockopt(zmq.SUBSCRIBE, args.symbol.encode() + b" ")
    to_risk = _dealer(loop, ctx, ep["risk"])
    _on_readable(loop, sub, lambda frames: to_risk(frames[0].rsplit(b",", 1)[-1].rsplit(b" ", 1)[-1]))
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _risk(args: argparse.Namespace, ctx: zmq.Context, ep: dict[str, str]) -> None:
    """Like zerotick's risk it subscribes to every quote, reads them paced (every
    ``QUOTE_DRAIN_S``: risk.quote_drain_ms's default) and reads what waits before each decision;
    what it reads it drops."""
    loop = asyncio.get_running_loop()
    router = ctx.socket(zmq.ROUTER)
    router.bind(ep["risk"])
    to_execution = _dealer(loop, ctx, ep["exec"])
    quotes = ctx.socket(zmq.SUB)
    quotes.connect(ep["pub"])
    quotes.setsockopt(zmq.SUBSCRIBE, b"")
    waiting = [(quotes, zmq.POLLIN)]

    def drain_quotes() -> None:
        while zmq.zmq_poll(waiting, 0):
            recv_frames(quotes)

    def paced() -> None:
        loop.call_later(QUOTE_DRAIN_S, paced)
        drain_quotes()

    def on_intent(frames: list[bytes]) -> None:
        drain_quotes()
        to_execution(frames[-1])  # the order first, then the answer to signal
        send_frames(router, [frames[0], b"ok"])

    loop.call_later(QUOTE_DRAIN_S, paced)

    _on_readable(loop, router, on_intent)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _execution(args: argparse.Namespace, ctx: zmq.Context, ep: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    url = urlsplit(args.rest)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    drainer = asyncio.create_task(drain(reader))
    head = order_head(host, port, args.key, args.secret)
    router = ctx.socket(zmq.ROUTER)
    router.bind(ep["exec"])
    n = 0

    def on_order(frames: list[bytes]) -> None:
        nonlocal n
        n += 1
        writer.write(order_request(head, args.symbol, frames[-1].decode(), n))
        send_frames(router, [frames[0], b"ack"])

    _on_readable(loop, router, on_order)
    print("ready", flush=True)
    await drainer


def role_main(args: argparse.Namespace) -> None:
    if args.cpus:
        pin_process(int(c) for c in args.cpus.split(","))
    nice = int(args.nice.split(",")[ROLES.index(args.role)]) if args.nice else 0
    if nice:
        renice_process(nice)
    ctx = zmq.Context()
    run = {"market_data": _market_data, "signal": _signal, "risk": _risk, "execution": _execution}[args.role]
    uvloop.run(run(args, ctx, _endpoints(Path(args.run_dir))))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("rest", "stock_ws", "key", "secret", "symbol", "run_dir"):
        p.add_argument(name)
    p.add_argument("others", nargs="*")
    p.add_argument("--cpus", default="", help="comma-separated CPUs for every role")
    p.add_argument("--nice", default="", help="niceness per role: market_data,signal,risk,execution")
    p.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        role_main(args)
        return
    base = [sys.executable, "-m", "bench.pipeline_floor", *sys.argv[1:]] if argv is None else None
    assert base is not None, "the launcher runs as a program"
    # the binders first, so the connecting side finds them; market_data last: it starts the flow
    procs = {}
    for role in ("execution", "risk", "signal", "market_data"):
        procs[role] = subprocess.Popen([*base, "--role", role], stdout=subprocess.PIPE, text=True)
        assert procs[role].stdout is not None
        if procs[role].stdout.readline().strip() != "ready":
            for proc in procs.values():
                proc.kill()
            raise SystemExit(f"pipeline floor: {role} did not start")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"pipeline floor ready pids={','.join(str(procs[r].pid) for r in ROLES)}", flush=True)
    try:
        for proc in procs.values():
            proc.wait()
    finally:
        for proc in procs.values():
            proc.kill()


if __name__ == "__main__":
    main()
