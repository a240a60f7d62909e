"""Real ZeroMQ sockets on a real event loop: PUB/SUB batches, request/reply timeouts, bad frames."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop
import zmq
from prometheus_client import REGISTRY

from common import wire
from common.enums import ControlCmd
from common.metrics import RPC_OUTCOMES, ZMQ_DROPS
from common.zmq_io import (
    Publisher,
    RpcClient,
    RpcError,
    RpcServer,
    RpcTimeout,
    RpcUnavailable,
    Subscriber,
)


def _req(name: str) -> wire.Control:
    """A request the transport carries; the name travels in ``args`` (commands are a closed set)."""
    return wire.Control(cmd=ControlCmd.STATUS, args={"name": name})


def _name(msg: Any) -> str:
    return str(msg.args.get("name", "")) if isinstance(msg, wire.Control) else ""


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


def test_a_paced_subscriber_reads_on_its_period_or_when_asked_not_on_every_frame(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        got: list[int] = []
        pub = Publisher(ctx, _ep(tmp_path, "p"), "test")
        sub = Subscriber(
            ctx, loop, [_ep(tmp_path, "p")], [b"md.q."], lambda t, msgs: got.extend(q.bid_px for q in msgs),
            "test", conflate=(b"md.q.",), paced_s=2.0,
        )  # fmt: skip
        await asyncio.sleep(0.2)  # slow joiner; the first period ends 2 s after the subscriber started
        pub.publish(b"md.q.AAPL", [_quote(1)])
        pub.publish(b"md.q.AAPL", [_quote(2)])
        await asyncio.sleep(0.1)
        assert got == []  # waiting in the socket: no reader callback
        sub.drain()
        assert got == [2]  # asked for: the newest (the older frame was superseded, counted)
        assert sub.topics[b"md.q.AAPL"].conflated == 1
        pub.publish(b"md.q.AAPL", [_quote(3)])
        for _ in range(40):
            if got == [2, 3]:
                break
            await asyncio.sleep(0.1)
        assert got == [2, 3]  # read by the period
        sub.close()
        pub.close()
        ctx.term()

    uvloop.run(main())


def test_drain_for_hands_over_one_topic_now_and_the_rest_after_the_callback_in_order(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        got: list[tuple[bytes, int]] = []

        def on_batch(topic: bytes, msgs: list[wire.Quote]) -> None:
            got.extend((topic, q.bid_px) for q in msgs)

        pub = Publisher(ctx, _ep(tmp_path, "p"), "test")
        sub = Subscriber(
            ctx, loop, [_ep(tmp_path, "p")], [b"md.q.", b"md.t."], on_batch, "test",
            conflate=(b"md.q.",), paced_s=60.0,
        )  # fmt: skip
        await asyncio.sleep(0.2)  # slow joiner
        for topic, px in ((b"md.t.MSFT", 1), (b"md.q.AAPL", 2), (b"md.q.MSFT", 3), (b"md.q.AAPL", 4), (b"md.t.MSFT", 5)):  # fmt: skip
            pub.publish(topic, [_quote(px)])
        await asyncio.sleep(0.1)
        assert got == []
        sub.drain_for(b"md.q.AAPL")
        assert got == [(b"md.q.AAPL", 4)]  # at once: its newest frame (the older one superseded)
        assert sub.topics[b"md.q.AAPL"].conflated == 1
        # the rest waits for the end of this callback; a drain before then keeps each topic's order
        pub.publish(b"md.t.MSFT", [_quote(6)])
        time.sleep(0.1)  # noqa: ASYNC251 - blocking on purpose: the deferred hand-over must not run yet
        sub.drain()
        assert got[1:] == [(b"md.t.MSFT", 1), (b"md.q.MSFT", 3), (b"md.t.MSFT", 5), (b"md.t.MSFT", 6)]
        await asyncio.sleep(0.05)
        assert len(got) == 5  # the deferred hand-over found nothing left: nothing twice
        # nothing waiting on the topic asked for: the others still arrive, right after the callback
        pub.publish(b"md.q.MSFT", [_quote(7)])
        time.sleep(0.1)  # noqa: ASYNC251 - the frame arrives, the loop runs nothing meanwhile
        sub.drain_for(b"md.q.AAPL")
        assert len(got) == 5
        await asyncio.sleep(0)
        assert got[5:] == [(b"md.q.MSFT", 7)]
        sub.close()
        pub.close()
        ctx.term()

    uvloop.run(main())


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
            if isinstance(msg, wire.Control) and _name(msg) == "boom":
                raise RuntimeError("handler bug")
            return wire.Reply(ok=True, detail="sync")

        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), handler, "test")
        cli = RpcClient(ctx, loop, _ep(tmp_path, "r"), "test", "peer", timeout_ms=2000, heartbeat_ms=0)
        await asyncio.sleep(0.1)
        r1 = await cli.request(_req("x"))
        r2 = await cli.request(wire.Replay(after_seq=5))
        r3 = await cli.request(_req("boom"))
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


async def _recv(sock: zmq.Socket, within_s: float = 5.0) -> list[bytes]:
    for _ in range(int(within_s * 100)):
        try:
            return sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            await asyncio.sleep(0.01)
    raise AssertionError("no reply")


def test_every_request_is_answered_even_when_malformed_or_the_handler_misbehaves(tmp_path: Path) -> None:
    """Wrong frame counts, a handler returning None or a non-wire object, a reply that cannot be
    encoded: each gets an error Reply at once instead of leaving the caller to time out."""

    async def main() -> tuple[list[bytes], list[object]]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()

        def handler(msg: object) -> object:
            assert isinstance(msg, wire.Control)
            return {
                "none": None,
                "dict": {"ok": True},
                "huge": _huge_quote(),
            }.get(_name(msg), wire.Reply(ok=True, detail="fine"))

        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), handler, "test")
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(_ep(tmp_path, "r"))
        raw.send(wire.encode(_req("x")))  # no request-id frame
        frames = await _recv(raw)
        cli = RpcClient(ctx, loop, _ep(tmp_path, "r"), "test", "peer", timeout_ms=3000, heartbeat_ms=0)
        await asyncio.sleep(0.05)
        replies = [await cli.request(_req(c)) for c in ("none", "dict", "huge", "ok")]
        raw.close(0)
        cli.close()
        srv.close()
        ctx.term()
        return frames, replies

    frames, replies = uvloop.run(main())
    assert frames[0] == b""
    first = wire.decode(frames[1])
    assert isinstance(first, wire.Reply) and not first.ok and "expected 2 frames" in first.detail
    *errors, fine = replies
    assert all(isinstance(r, wire.Reply) and not r.ok and "not encodable" in r.detail for r in errors)
    assert fine == wire.Reply(ok=True, detail="fine")


def _huge_quote() -> wire.Quote:
    return wire.Quote(symbol="X", bid_px=2**70, bid_sz=1, ask_px=1, ask_sz=1, exch_ns=0, recv_ns=0)


def test_a_request_that_cannot_be_sent_fails_its_future_instead_of_raising(tmp_path: Path) -> None:
    async def main() -> list[type]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), lambda m: wire.Reply(ok=True, detail=""), "test")
        cli = RpcClient(ctx, loop, _ep(tmp_path, "r"), "test", "peer", timeout_ms=2000, heartbeat_ms=0)
        await asyncio.sleep(0.05)
        unencodable = cli.request(_huge_quote())
        pending = cli.request(_req("slow"))  # in flight when the client closes
        cli.close()
        after_close = cli.request(wire.Control(cmd="ping"))
        kinds: list[type] = []
        for fut in (unencodable, pending, after_close):
            assert fut.done()
            exc = fut.exception()
            assert exc is not None
            kinds.append(type(exc))
        srv.close()
        ctx.term()
        return kinds

    kinds = uvloop.run(main())
    assert kinds[0] is RpcError
    assert kinds[1:] == [RpcUnavailable, RpcUnavailable]


def test_requests_made_inside_reader_callbacks_and_pipelined_replies_are_never_stranded(
    tmp_path: Path,
) -> None:
    """A server that, inside its reader callback, asks a second server over another DEALER and
    answers later; thousands of pipelined requests all come back (edge-triggered FDs re-checked)."""

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        back = RpcServer(
            ctx, loop, _ep(tmp_path, "b"), lambda m: wire.Reply(ok=True, detail=_name(m)), "test"
        )
        to_back = RpcClient(ctx, loop, _ep(tmp_path, "b"), "test", "back", timeout_ms=5000, heartbeat_ms=0)

        def front_handler(msg: object) -> object:
            assert isinstance(msg, wire.Control)
            return to_back.request(msg)  # sent from within front's reader callback

        front = RpcServer(ctx, loop, _ep(tmp_path, "f"), front_handler, "test")
        cli = RpcClient(ctx, loop, _ep(tmp_path, "f"), "test", "front", timeout_ms=5000, heartbeat_ms=0)
        try:
            await asyncio.sleep(0.05)
            futs = [cli.request(_req(str(i))) for i in range(3000)]
            replies = await asyncio.wait_for(asyncio.gather(*futs), 20)
        finally:
            for c in (cli, to_back):
                c.close()
            for s in (front, back):
                s.close()
            ctx.term()
        return list(replies)

    replies = uvloop.run(main())
    assert [r.detail for r in replies] == [str(i) for i in range(3000)]  # type: ignore[attr-defined]


def test_a_late_reply_after_the_timeout_is_counted_not_delivered(tmp_path: Path) -> None:
    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()

        async def slow() -> wire.Reply:
            await asyncio.sleep(0.3)
            return wire.Reply(ok=True, detail="late")

        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), lambda m: slow(), "test")
        cli = RpcClient(ctx, loop, _ep(tmp_path, "r"), "test", "late-peer", timeout_ms=100, heartbeat_ms=0)
        await asyncio.sleep(0.05)
        outcomes: list[str] = []
        fut = cli.request(_req("x"))
        fut.add_done_callback(lambda f: outcomes.append(type(f.exception()).__name__))
        await asyncio.sleep(0.6)  # the reply arrived after the timeout
        late = RPC_OUTCOMES.labels("test", "late-peer", "late_reply")._value.get()
        cli.close()
        srv.close()
        ctx.term()
        return outcomes, late

    outcomes, late = uvloop.run(main())
    assert outcomes == ["RpcTimeout"]
    assert late == 1


def test_replies_to_a_burst_beyond_the_queue_limits_wait_and_all_arrive(tmp_path: Path) -> None:
    """Tiny HWMs force the server's reply queue full: replies wait in its outbox, none is dropped
    (a dropped reply would report an order that was sent on as a timeout)."""

    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()

        async def later(msg: wire.Control) -> wire.Reply:
            await asyncio.sleep(0)
            return wire.Reply(ok=True, detail=_name(msg))

        srv = RpcServer(ctx, loop, _ep(tmp_path, "r"), later, "burst", hwm=10)  # type: ignore[arg-type]
        cli = RpcClient(
            ctx, loop, _ep(tmp_path, "r"), "burst", "peer", timeout_ms=10_000, heartbeat_ms=0, rcvhwm=10
        )
        try:
            await asyncio.sleep(0.05)
            futs = [cli.request(_req(str(i))) for i in range(2000)]
            replies = await asyncio.wait_for(asyncio.gather(*futs), 20)
            waited = ZMQ_DROPS.labels("burst", "rpc")._value.get()
        finally:
            cli.close()
            srv.close()
            ctx.term()
        return [r.detail for r in replies], waited

    details, dropped = uvloop.run(main())
    assert details == [str(i) for i in range(2000)]
    assert dropped == 0


def test_messages_are_counted_per_topic_family_on_both_sides(tmp_path: Path) -> None:
    published, received = "zt_zmq_published_total", "zt_zmq_received_total"

    def count(name: str, service: str, topic: str) -> float:
        return REGISTRY.get_sample_value(name, {"service": service, "topic": topic}) or 0.0

    before = {
        "pub": count(published, "famtest-pub", "md.q"),
        "pub_t": count(published, "famtest-pub", "md.t"),
        "sub": count(received, "famtest-sub", "md.q"),
    }

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        got: list[Any] = []
        done = asyncio.Event()

        def on_batch(topic: bytes, msgs: list[Any]) -> None:
            got.extend(msgs)
            if len(got) >= 5:
                done.set()

        pub = Publisher(ctx, _ep(tmp_path, "p"), "famtest-pub")
        sub = Subscriber(ctx, loop, [_ep(tmp_path, "p")], [b"md.q."], on_batch, "famtest-sub")
        await asyncio.sleep(0.2)  # slow joiner
        pub.publish(b"md.q.AAPL", [_quote(1), _quote(2), _quote(3)])
        pub.publish(b"md.q.MSFT", [_quote(4), _quote(5)])
        pub.publish(b"md.t.AAPL", [_quote(6)])  # published, not subscribed
        await asyncio.wait_for(done.wait(), 5)
        sub.close()
        pub.close()
        ctx.term()

    uvloop.run(main())
    assert count(published, "famtest-pub", "md.q") - before["pub"] == 5
    assert count(published, "famtest-pub", "md.t") - before["pub_t"] == 1
    assert count(received, "famtest-sub", "md.q") - before["sub"] == 5
