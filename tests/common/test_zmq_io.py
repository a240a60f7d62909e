"""Real ZeroMQ sockets on a real event loop: PUB/SUB batches, request/reply timeouts, bad frames."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop
import zmq

from common import wire
from common.zmq_io import Publisher, RpcClient, RpcServer, RpcTimeout, RpcUnavailable, Subscriber


def _ep(tmp_path: Path, name: str) -> str:
    return f"ipc://{tmp_path}/{name}"


def _quote(i: int) -> wire.Quote:
    return wire.Quote(symbol="AAPL", bid_px=i, bid_sz=1, ask_px=i + 1, ask_sz=1, exch_ns=i, recv_ns=i)


def test_pub_sub_delivers_batches_in_order_and_skips_malformed(tmp_path: Path) -> None:
    async def main() -> list[wire.Quote]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        got: list[wire.Quote] = []
        done = asyncio.Event()

        def on_batch(topic: bytes, msgs: list[wire.Quote]) -> None:
            assert topic == b"md.q.AAPL"
            got.extend(msgs)
            if len(got) >= 3000:
                done.set()

        pub = Publisher(ctx, _ep(tmp_path, "p"), "test")
        sub = Subscriber(ctx, loop, [_ep(tmp_path, "p")], [b"md.q."], on_batch, "test")
        await asyncio.sleep(0.2)  # slow joiner
        pub.sock.send(b"md.q.AAPL\x00\x01garbage")  # malformed: must be skipped, not fatal
        pub.publish(b"md.t.AAPL", [_quote(-1)])  # filtered out by topic
        for i in range(1000):
            pub.publish(b"md.q.AAPL", [_quote(3 * i), _quote(3 * i + 1), _quote(3 * i + 2)])
        await asyncio.wait_for(done.wait(), 5)
        sub.close()
        pub.close()
        ctx.term()
        return got

    got = uvloop.run(main())
    assert [q.bid_px for q in got] == list(range(3000))


def test_rpc_round_trip_sync_and_async_handlers(tmp_path: Path) -> None:
    async def main() -> tuple[object, object, object]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()

        def handler(msg: object) -> object:
            if isinstance(msg, wire.Replay):

                async def later() -> wire.Reply:
                    await asyncio.sleep(0.01)
                    return wire.Reply(ok=True, detail=f"after {msg.after_seq}")

                return later()
            if isinstance(msg, wire.Control) and msg.cmd == "boom":
                raise RuntimeError("handler bug")
            return wire.Reply(ok=True, detail="sync")

        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), handler, "test")
        cli = RpcClient(ctx, loop, _ep(tmp_path, "r"), "test", "peer", timeout_ms=2000, heartbeat_ms=0)
        await asyncio.sleep(0.1)
        r1 = await cli.request(wire.Control(cmd="x"))
        r2 = await cli.request(wire.Replay(after_seq=5))
        r3 = await cli.request(wire.Control(cmd="boom"))
        cli.close()
        srv.close()
        ctx.term()
        return r1, r2, r3

    r1, r2, r3 = uvloop.run(main())
    assert r1 == wire.Reply(ok=True, detail="sync")
    assert r2 == wire.Reply(ok=True, detail="after 5")
    assert isinstance(r3, wire.Reply) and not r3.ok and "handler bug" in r3.detail


def test_rpc_bad_request_gets_clear_error(tmp_path: Path) -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), lambda m: wire.Reply(ok=True, detail=""), "test")
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(_ep(tmp_path, "r"))
        dealer.send_multipart([b"id", b"\x01not-msgpack"])
        for _ in range(100):
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK)
                break
            except zmq.Again:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("no reply")
        dealer.close(0)
        srv.close()
        ctx.term()
        return frames

    frames = uvloop.run(main())
    assert frames[0] == b"id"
    reply = wire.decode(frames[1])
    assert isinstance(reply, wire.Reply) and not reply.ok and "bad request" in reply.detail


def test_rpc_unavailable_when_no_peer_and_timeout_when_peer_silent(tmp_path: Path) -> None:
    async def main() -> tuple[type, type, bool]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        cli = RpcClient(ctx, loop, _ep(tmp_path, "nobody"), "test", "peer", timeout_ms=100, heartbeat_ms=0)
        fut = cli.request(wire.Control(cmd="ping"))
        assert fut.done()  # fails at once, never queued for a later peer
        try:
            await fut
        except Exception as exc:
            e1: type = type(exc)
        # a peer that accepts but never answers
        silent = ctx.socket(zmq.ROUTER)
        silent.bind(_ep(tmp_path, "silent"))
        cli2 = RpcClient(ctx, loop, _ep(tmp_path, "silent"), "test", "peer", timeout_ms=100, heartbeat_ms=0)
        await asyncio.sleep(0.1)
        try:
            await asyncio.wait_for(cli2.request(wire.Control(cmd="ping")), 5)
        except Exception as exc:
            e2: type = type(exc)
        alive = cli2.alive
        for c in (cli, cli2):
            c.close()
        silent.close(0)
        ctx.term()
        return e1, e2, alive

    e1, e2, alive = uvloop.run(main())
    assert e1 is RpcUnavailable
    assert e2 is RpcTimeout
    assert alive is False


@pytest.mark.timeout(30)
def test_heartbeat_tracks_liveness(tmp_path: Path) -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), lambda m: wire.Reply(ok=True, detail="pong"), "test")
        cli = RpcClient(ctx, loop, _ep(tmp_path, "r"), "test", "peer", timeout_ms=100, heartbeat_ms=50,
                        dead_after_ms=300)  # fmt: skip
        await asyncio.sleep(0.3)
        up = cli.alive
        srv.close()
        await asyncio.sleep(0.8)
        down = cli.alive
        cli.close()
        ctx.term()
        return up, down

    up, down = uvloop.run(main())
    assert up is True
    assert down is False
