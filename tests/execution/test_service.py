"""The execution service end to end over real ZeroMQ sockets, against the tiny in-test venue:
orders in, fills out on the sequenced path, no duplicate orders, reconcile after a stream outage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
import zmq
from pydantic import SecretStr

from common import wire
from common.clock import wall_ns
from common.config import LIVE_BASE_URL, AlpacaConfig, Settings
from common.fixed import to_fixed
from common.peer_link import credentials
from common.zmq_io import RpcClient, RpcUnavailable
from services.execution.service import LiveTradingRefused, check_live_guard
from tests.kit.execution import Harness, execution_settings, running_execution
from tests.kit.tiny_venue import KEY, SECRET, Fault, TinyVenue
from tests.kit.waiting import until

pytestmark = pytest.mark.timeout(60)


def make_settings(run_dir: Path, venue: TinyVenue) -> Settings:
    return execution_settings(
        run_dir,
        alpaca={
            "key_id": KEY,
            "secret_key": SECRET,
            "base_url": venue.url,
            "trade_stream_url": venue.stream_url,
        },
    )


def run(
    tmp_path: Path,
    scenario: Callable[[Harness], Awaitable[None]],
    faults: list[Fault] | None = None,
    before_start: Callable[[TinyVenue], None] | None = None,
) -> None:
    async def main() -> None:
        venue = TinyVenue(faults=faults or [])
        await venue.start()
        if before_start is not None:
            before_start(venue)
        try:
            async with running_execution(make_settings(tmp_path / "run", venue), venue) as h:
                await scenario(h)
        finally:
            await venue.stop()

    asyncio.run(main())


def test_order_fills_arrive_as_sequenced_fill_events(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        ack = await h.order("zt-a.1")
        assert ack.accepted and ack.detail == "queued"
        await until(lambda: "zt-a.1" in h.venue.orders and h.svc.tracker.orders["zt-a.1"].status == "new")
        await h.venue.fill("zt-a.1", "40", "100")
        await h.venue.fill("zt-a.1", "60", "101.5")
        await until(lambda: len(h.fills("zt-a.1")) == 2 and "filled" in h.statuses("zt-a.1"))
        f1, f2 = h.fills("zt-a.1")
        assert (f1.qty, f1.px, f2.qty, f2.px) == (
            to_fixed(40),
            to_fixed(100),
            to_fixed(60),
            to_fixed("101.5"),
        )
        assert f2.cum_qty == to_fixed(100) and f2.position_qty == to_fixed(100) and f2.strategy == "s1"
        # a replayed update (the venue sends the final fill again) makes no second Fill
        await h.venue.push("fill", h.venue.orders["zt-a.1"], qty="60", price="101.5")
        dup = await h.order("zt-a.1")
        assert not dup.accepted and "duplicate" in dup.detail
        assert len(h.venue.posts) == 1
        # Replay serves the same gap-free sequence the subscriber saw
        reply = await h.rpc.request(wire.Replay(after_seq=0))
        replayed = wire.decode_list(reply.data)
        assert [e.seq for e in replayed] == list(range(1, h.svc.last_event_seq() + 1))
        await until(lambda: len(h.events) == len(replayed))
        assert replayed == h.events
        assert len(h.fills("zt-a.1")) == 2
        orders = orjson.loads((await h.rpc.request(wire.Control(cmd="orders"))).data)
        assert [(o["client_order_id"], o["status"], o["filled_qty"]) for o in orders] == [
            ("zt-a.1", "filled", "100")
        ]

    run(tmp_path, scenario)


def test_lost_post_reply_gives_exactly_one_venue_order(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        assert (await h.order("zt-b.1", qty="10")).accepted
        await until(lambda: h.svc.tracker.orders["zt-b.1"].venue_order_id != "")
        await h.venue.fill("zt-b.1", "10", "99")
        await until(lambda: "filled" in h.statuses("zt-b.1"))
        await asyncio.sleep(0.1)
        assert len(h.venue.orders) == 1 and len(h.venue.posts) == 1 and h.venue.lookups >= 1
        assert [f.qty for f in h.fills("zt-b.1")] == [to_fixed(10)]

    run(tmp_path, scenario, faults=[Fault(504, after_apply=True)])


def test_venue_rejection_is_published(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.venue.faults.append(Fault(403, after_apply=False))
        assert (await h.order("zt-c.1")).accepted  # queued; the venue refuses it afterwards
        await until(lambda: "submit_failed" in h.statuses("zt-c.1"))
        update = next(e for e in h.events if isinstance(e, wire.OrderUpdate) and e.status == "submit_failed")
        assert "403" in update.reason and update.event == "submit_failed"
        refused = await h.order("zt-c.2", qty="0")
        assert not refused.accepted and "qty" in refused.detail

    run(tmp_path, scenario)


def test_stream_outage_is_reconciled(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        for coid in ("zt-d.1", "zt-d.2"):
            assert (await h.order(coid, qty="10")).accepted
        await until(lambda: all(h.svc.tracker.orders[c].status == "new" for c in ("zt-d.1", "zt-d.2")))
        before = h.svc.reconciler.reconciles
        h.venue.stream_open = False
        await h.venue.drop_streams()
        await until(lambda: not h.svc.stream.connected)
        # while disconnected: one order fills completely, the other partially; no updates reach us
        await h.venue.fill("zt-d.1", "10", "50", push=False)
        await h.venue.fill("zt-d.2", "4", "51", push=False)
        h.venue.stream_open = True
        await until(lambda: h.svc.reconciler.reconciles > before and len(h.fills("zt-d.2")) == 1)
        await until(lambda: len(h.fills("zt-d.1")) == 1)
        assert (h.fills("zt-d.1")[0].qty, h.fills("zt-d.1")[0].px) == (to_fixed(10), to_fixed(50))
        assert (h.fills("zt-d.2")[0].qty, h.fills("zt-d.2")[0].px) == (to_fixed(4), to_fixed(51))
        assert h.svc.tracker.orders["zt-d.1"].status == "filled"
        assert h.svc.tracker.orders["zt-d.2"].status == "partially_filled"
        # the rest of zt-d.2 arrives on the restored stream as usual
        await h.venue.fill("zt-d.2", "6", "52")
        await until(lambda: len(h.fills("zt-d.2")) == 2)
        assert h.fills("zt-d.2")[1].qty == to_fixed(6)

    run(tmp_path, scenario)


def test_positions_and_cancel_all_controls(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.venue.positions = [{"symbol": "MSFT", "qty": "3", "side": "short", "avg_entry_price": "400.25"}]
        reply = await h.rpc.request(wire.Control(cmd="venue_positions"))
        assert isinstance(reply, wire.PositionsSnapshot) and reply.as_of_seq == -1
        [pos] = reply.positions
        assert isinstance(pos, wire.Position) and (pos.symbol, pos.qty, pos.avg_px) == (
            "MSFT", to_fixed(-3), to_fixed("400.25"),
        )  # fmt: skip
        # the sequenced book: (empty) venue positions at start plus our own fills, as of a seq
        assert (await h.order("zt-e.0")).accepted
        await until(lambda: h.svc.tracker.orders["zt-e.0"].status == "new")
        await h.venue.fill("zt-e.0", "4", "50")
        await until(lambda: len(h.fills("zt-e.0")) == 1)
        reply = await h.rpc.request(wire.Control(cmd="positions"))
        assert isinstance(reply, wire.PositionsSnapshot) and reply.as_of_seq == h.svc.events.last_seq
        [book] = reply.positions
        assert isinstance(book, wire.Position) and (book.symbol, book.qty) == ("AAPL", to_fixed(4))
        assert (await h.order("zt-e.1")).accepted
        await until(lambda: h.svc.tracker.orders["zt-e.1"].status == "new")
        reply = await h.control("cancel_all")
        assert reply.ok and len(orjson.loads(reply.data)) == 2  # zt-e.0 is only partially filled
        await until(lambda: "canceled" in h.statuses("zt-e.1") and "canceled" in h.statuses("zt-e.0"))
        status = orjson.loads((await h.rpc.request(wire.Control(cmd="status"))).data)
        assert status["ready"] and status["trade_stream_connected"] and status["orders_open"] == 0
        unknown = await h.control("launch")
        assert not unknown.ok and "bad request" in unknown.detail  # not in the command vocabulary
        # a command not declared read-only needs the token before it is even looked up
        tokenless = await h.rpc.request(wire.Control(cmd="cancel_all"))
        assert not tokenless.ok and "control token" in tokenless.detail

    run(tmp_path, scenario)


def test_live_guard_refuses_live_url_without_the_live_flag() -> None:
    check_live_guard(Settings(alpaca={"key_id": "k", "secret_key": "s", "live": True}))  # explicitly allowed
    # config validation already refuses this; the service checks again in case validation was bypassed
    sneaky = Settings.model_construct(
        alpaca=AlpacaConfig.model_construct(
            key_id=SecretStr("k"), secret_key=SecretStr("s"), base_url=LIVE_BASE_URL, live=False,
            trade_stream_url=None,
        )
    )  # fmt: skip
    with pytest.raises(LiveTradingRefused, match="LIVE"):
        check_live_guard(sneaky)


def test_replace_tracks_the_new_order_under_its_own_client_id(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        assert (await h.order("zt-f.1", qty="10", px="100")).accepted
        await until(lambda: h.svc.tracker.orders["zt-f.1"].status == "new")
        old = h.venue.orders["zt-f.1"]
        new = {**old, "id": "5f2a0c1e-0000-4000-8000-00000000abcd", "client_order_id": "venue-made-id"}
        new.update(status="new", limit_price="101", replaces=old["id"])
        old.update(status="replaced", replaced_by=new["id"])
        h.venue.orders["venue-made-id"] = new
        await h.venue.push("replaced", old)
        await h.venue.push("new", new)
        await until(
            lambda: "venue-made-id" in h.svc.tracker.orders and h.statuses("venue-made-id") == ["new"]
        )
        assert h.svc.tracker.orders["zt-f.1"].status == "replaced" and h.svc.tracker.orders["zt-f.1"].terminal
        replacement = h.svc.tracker.orders["venue-made-id"]
        assert replacement.strategy == "s1" and replacement.replaces == old["id"]
        assert replacement.limit_px == to_fixed(101)
        await h.venue.fill("venue-made-id", "10", "101")
        await until(lambda: len(h.fills("venue-made-id")) == 1)
        assert h.fills("venue-made-id")[0].strategy == "s1" and not h.fills("zt-f.1")

    run(tmp_path, scenario)


def test_fill_between_the_startup_positions_and_orders_reads_is_neither_lost_nor_doubled(
    tmp_path: Path,
) -> None:
    def seed(venue: TinyVenue) -> None:
        venue.place("old-run.1", "10")

        async def fill_after_positions_read(_: int) -> None:
            if venue.positions_calls == 1 and venue.orders["old-run.1"]["filled_qty"] == "0":
                await venue.fill("old-run.1", "4", "50", push=False)
                venue.positions = [{"symbol": "AAPL", "qty": "4", "side": "long", "avg_entry_price": "50"}]

        venue.list_hook = fill_after_positions_read

    async def scenario(h: Harness) -> None:
        # the venue holds 4 AAPL: the book must say so, with no Fill for what is already in it
        assert h.svc.tracker.positions.qty("AAPL") == to_fixed(4) and not h.fills("old-run.1")
        await h.venue.fill("old-run.1", "6", "51")
        await until(lambda: len(h.fills("old-run.1")) == 1)
        assert h.fills("old-run.1")[0].qty == to_fixed(6) and h.svc.tracker.positions.qty("AAPL") == to_fixed(
            10
        )

    run(tmp_path, scenario, before_start=seed)


def test_order_created_and_filled_elsewhere_during_a_stream_outage_is_adopted(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        before = h.svc.reconciler.reconciles
        h.venue.stream_open = False
        await h.venue.drop_streams()
        await until(lambda: not h.svc.stream.connected)
        h.venue.place("by-hand.1", "3", side="sell")
        await h.venue.fill("by-hand.1", "3", "77", push=False)  # closed before we hear of it
        h.venue.stream_open = True
        await until(lambda: h.svc.reconciler.reconciles > before and len(h.fills("by-hand.1")) == 1)
        fill = h.fills("by-hand.1")[0]
        assert (fill.side, fill.qty, fill.px) == ("sell", to_fixed(3), to_fixed(77))
        assert h.svc.tracker.positions.qty("AAPL") == to_fixed(-3)

    run(tmp_path, scenario)


def test_late_duplicate_update_of_a_forgotten_order_is_not_counted_again(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.svc.tracker.max_tracked = 2
        for n in range(3):
            coid = f"zt-g.{n}"
            assert (await h.order(coid, qty="1")).accepted
            await until(lambda c=coid: h.svc.tracker.orders[c].status == "new")
            await h.venue.fill(coid, "1", "10")
            await until(lambda c=coid: len(h.fills(c)) == 1)
        assert "zt-g.0" not in h.svc.tracker.orders  # pruned
        await h.venue.push("fill", h.venue.orders["zt-g.0"], qty="1", price="10")  # replayed by the venue
        assert (await h.order("zt-g.9", qty="1")).accepted  # a marker event after the duplicate
        await until(lambda: "new" in h.statuses("zt-g.9"))
        assert len(h.fills("zt-g.0")) == 1 and h.svc.tracker.positions.qty("AAPL") == to_fixed(3)

    run(tmp_path, scenario)


def test_unusable_fill_update_is_recovered_by_reconcile(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        assert (await h.order("zt-h.1", qty="10")).accepted
        await until(lambda: h.svc.tracker.orders["zt-h.1"].status == "new")
        order = await h.venue.fill("zt-h.1", "10", "42", push=False)
        broken = {**order, "filled_avg_price": "n/a"}
        await h.venue.push("fill", broken, qty="10", price="42")
        await until(lambda: len(h.fills("zt-h.1")) == 1 and "filled" in h.statuses("zt-h.1"))
        assert (h.fills("zt-h.1")[0].qty, h.fills("zt-h.1")[0].px) == (to_fixed(10), to_fixed(42))
        assert h.svc.stream.bad_frames >= 1

    run(tmp_path, scenario)


def test_bad_symbol_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        now = wall_ns()
        for sym in ("", "aapl", "AAPL;DROP", "A" * 40):
            intent = wire.OrderIntent(
                intent_id=f"x{len(sym)}{sym[:2]}", strategy="s1", symbol=sym, side="buy", qty=to_fixed(1),
                limit_px=to_fixed(10), signal_ns=now, deadline_ns=now + 5_000_000_000,
            )  # fmt: skip
            ack = await h.orders.request(
                wire.OrderRequest(client_order_id=f"zt-{intent.intent_id}", intent=intent, risk_ns=now)
            )
            assert not ack.accepted and "symbol" in ack.detail, sym
        assert not h.venue.posts

    run(tmp_path, scenario)


def test_orders_only_from_risk_on_the_orders_socket(tmp_path: Path) -> None:
    """The issue's case: a direct OrderRequest for 50 shares from a process that is not risk."""

    async def scenario(h: Harness) -> None:
        now = wall_ns()
        intent = wire.OrderIntent(
            intent_id="rogue.1", strategy="s1", symbol="AAPL", side="buy", qty=to_fixed(50),
            limit_px=to_fixed(10), signal_ns=now, deadline_ns=now + 5_000_000_000,
        )  # fmt: skip
        request = wire.OrderRequest(client_order_id="zt-rogue.1", intent=intent, risk_ns=now)
        reply = await h.rpc.request(request)  # the general socket anyone can reach
        assert isinstance(reply, wire.Reply) and not reply.ok and "only from risk" in reply.detail
        impostor = RpcClient(
            zmq.Context.instance(), asyncio.get_running_loop(), h.svc.settings.zmq.endpoint("execution", "orders"),
            "test", "execution", timeout_ms=300, setup=credentials(h.svc.settings, "signal"),
        )  # fmt: skip
        await asyncio.sleep(0.3)
        with pytest.raises(RpcUnavailable):  # its handshake never completes: nothing is delivered
            await impostor.request(request)
        impostor.close()
        assert "zt-rogue.1" not in h.svc.tracker.orders and not h.venue.posts
        cancel = await h.rpc.request(wire.CancelRequest(client_order_id="", all=True))
        assert not cancel.ok and "only from risk" in cancel.detail

    run(tmp_path, scenario)


def test_the_post_is_written_before_the_order_request_is_answered(tmp_path: Path) -> None:
    """The critical path: with a kept-alive connection idle, the handler journals and writes the
    POST itself; the ack (which may hand the CPU to risk) and the placement task come after."""

    async def scenario(h: Harness) -> None:
        assert (await h.order("zt-w.1")).accepted  # the venue connection is open and idle after it
        await until(lambda: h.svc.tracker.orders["zt-w.1"].status == "new")
        now = wall_ns()
        intent = wire.OrderIntent(
            intent_id="zt-w.2", strategy="s1", symbol="AAPL", side="buy", qty=to_fixed(1),
            limit_px=to_fixed(100), tick_recv_ns=now, signal_ns=now, deadline_ns=now + 5_000_000_000,
        )  # fmt: skip
        ack = h.svc.handle(wire.OrderRequest(client_order_id="zt-w.2", intent=intent, risk_ns=now))
        order = h.svc.tracker.orders["zt-w.2"]
        assert isinstance(ack, wire.OrderAck) and ack.accepted
        assert order.sent_ns > 0 and h.svc.placer.posts_in_flight == 1  # written, not answered yet
        assert [s[0] for s in h.svc.journal.submits][-1] == "zt-w.2"
        await until(lambda: order.status == "new" and h.svc.placer.posts_in_flight == 0)
        assert [p["client_order_id"] for p in h.venue.posts].count("zt-w.2") == 1

    run(tmp_path, scenario)
