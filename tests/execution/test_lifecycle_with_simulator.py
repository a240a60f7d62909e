"""Every order life-cycle path of execution against the real simulator (VenueServer on the test's
event loop, its Exchange driven directly so quotes and delayed steps happen exactly when the test
says). Each test checks execution's published events (one gap-free seq, each fill exactly once,
exact quantities and prices) and the venue's own view through the official alpaca-py client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Order
from alpaca.trading.requests import ReplaceOrderRequest

from common import wire
from common.clock import wall_ns
from common.config import SimConfig
from common.fixed import to_fixed
from simulator import app
from simulator.exchange import Exchange
from simulator.models import ReplaceBody
from simulator.rest import TRADE_STREAM_HUB
from tests.kit.execution import Harness, execution_settings, running_execution
from tests.kit.trade_updates import HeldSteps
from tests.kit.waiting import until

pytestmark = pytest.mark.timeout(60)

BID, ASK = "100", "100.05"


class Venue:
    """The simulator seen by the test: its Exchange, held delayed steps, REST and the alpaca-py oracle."""

    def __init__(self, server: app.VenueServer, cfg: SimConfig, held: HeldSteps | None) -> None:
        self.server, self.held = server, held
        assert server.app is not None
        self.exchange: Exchange = server.app[app.EXCHANGE]
        self.oracle = TradingClient(
            cfg.key_id, cfg.secret_key.get_secret_value(), url_override=server.rest_url
        )

    def quote(self, bid: str, ask: str, ask_sz: str = "100") -> None:
        """A new touch, matched synchronously: fills happen before this returns."""
        self.exchange.on_quote("AAPL", Decimal(bid), Decimal("100"), Decimal(ask), Decimal(ask_sz), 0)

    def release(self) -> int:
        """End every pending acknowledgement delay now (ack, cancel, replace)."""
        assert self.held is not None
        return self.held.release()

    async def post(self, path: str, doc: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession() as s, s.post(self.server.rest_url + path, json=doc or {}) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def order(self, coid: str) -> Order:
        found = await asyncio.to_thread(self.oracle.get_order_by_client_id, coid)
        assert isinstance(found, Order)
        return found

    async def posts_logged(self, coid: str) -> list[int]:
        """HTTP status of every POST /v2/orders the venue answered for this client_order_id."""
        async with aiohttp.ClientSession() as s, s.get(self.server.rest_url + "/sim/orders/log") as r:
            log = await r.json()
        return [e["status_code"] for e in log if e["method"] == "POST" and e["client_order_id"] == coid]


async def submit(h: Harness, coid: str, qty: str, px: str, tif: str = "day") -> wire.OrderAck:
    now = wall_ns()
    intent = wire.OrderIntent(
        intent_id=coid, strategy="s1", symbol="AAPL", side="buy", qty=to_fixed(qty), limit_px=to_fixed(px),
        tif=tif, tick_recv_ns=now, signal_ns=now, deadline_ns=now + 10_000_000_000,  # type: ignore[arg-type]
    )  # fmt: skip
    ack = await h.orders.request(wire.OrderRequest(client_order_id=coid, intent=intent, risk_ns=now))
    assert isinstance(ack, wire.OrderAck) and ack.accepted, ack
    return ack


async def cancel(h: Harness, coid: str) -> None:
    reply = await h.orders.request(wire.CancelRequest(client_order_id=coid))
    assert isinstance(reply, wire.Reply) and reply.ok, reply


def status(h: Harness, coid: str) -> str:
    """The status of the newest OrderUpdate received (the subscriber lags execution's own state)."""
    statuses = h.statuses(coid)
    return statuses[-1] if statuses else ""


def fills_of(h: Harness, coid: str) -> list[tuple[int, int]]:
    return [(f.qty, f.px) for f in h.fills(coid)]


def fx(*pairs: tuple[str, str]) -> list[tuple[int, int]]:
    return [(to_fixed(q), to_fixed(p)) for q, p in pairs]


def check_event_stream(h: Harness) -> None:
    """Every event execution published arrived, in seq order with no gap, and no fill twice."""
    seqs = [e.seq for e in h.events]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == h.svc.events.last_seq
    fills = [e for e in h.events if isinstance(e, wire.Fill)]
    assert len({(f.client_order_id, f.exec_id) for f in fills}) == len(fills)
    by_order: dict[str, list[wire.Fill]] = {}
    for f in fills:
        by_order.setdefault(f.client_order_id, []).append(f)
    for order_fills in by_order.values():
        cum = 0
        for f in order_fills:
            cum += f.qty
            assert f.qty > 0 and f.cum_qty == cum


async def venue_agrees(h: Harness, venue: Venue, coid: str) -> Order:
    """The venue's order matches what execution tracks and published for it."""
    order = await venue.order(coid)
    tracked = h.svc.tracker.orders[coid]
    assert tracked.status == order.status.value == h.statuses(coid)[-1]
    assert tracked.venue_order_id == str(order.id)
    fills = h.fills(coid)
    assert sum(f.qty for f in fills) == tracked.filled_qty == to_fixed(order.filled_qty or "0")
    if fills:
        notional = sum(f.qty * f.px for f in fills)  # exact: the test's prices average without rounding
        assert notional == to_fixed(order.filled_qty or "0") * to_fixed(order.filled_avg_price or "0")
    return order


Scenario = Callable[[Harness, Venue], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, ack_delay_ms: float = 0, http_timeout_s: float = 2.0) -> None:
    """Start the venue (with held delayed steps when ``ack_delay_ms``) and execution, run the scenario,
    then check execution's event stream as a whole."""

    async def main() -> None:
        cfg = SimConfig(
            port=0,
            message_rate=0,
            feed_start_paused=True,
            rate_limit_per_min=100_000,
            ack_delay_ms=ack_delay_ms,
        )
        server = app.VenueServer(cfg)
        await server.start()
        held = HeldSteps() if ack_delay_ms else None
        venue = Venue(server, cfg, held)
        if held is not None:
            venue.exchange.scheduler = held  # the test ends each delay: no race with the clock
        venue.quote(BID, ASK)
        settings = execution_settings(
            tmp_path / "run",
            sim={"port": server.port, "message_rate": 0},
            execution={
                "http_timeout_s": http_timeout_s,
                "rate_limit_per_min": 100_000,
                "rate_limit_burst": 1_000,
            },
        )
        try:
            async with running_execution(settings) as h:
                await scenario(h, venue)
                check_event_stream(h)
        finally:
            await server.stop()

    asyncio.run(main())


# ---- 1. acknowledgement delay: pending_new, pending_cancel, pending_replace --------------------


def test_pending_new_then_new_then_partial_fills_then_filled(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-a.1", qty="5", px="99")
        await until(lambda: status(h, "zt-a.1") == "pending_new")
        venue.quote("98.9", "99", ask_sz="2")  # crosses, but an order not yet acknowledged cannot fill
        pending = await venue.order("zt-a.1")
        assert (pending.status.value, pending.filled_qty) == ("pending_new", "0")
        venue.quote(BID, ASK)
        assert venue.release() == 1
        await until(lambda: status(h, "zt-a.1") == "new")
        venue.quote("98.9", "99", ask_sz="3")
        await until(lambda: len(h.fills("zt-a.1")) == 1)
        venue.quote("98.4", "98.5", ask_sz="1")
        await until(lambda: len(h.fills("zt-a.1")) == 2)
        venue.quote("98.9", "99", ask_sz="10")
        await until(lambda: status(h, "zt-a.1") == "filled")
        assert h.statuses("zt-a.1") == [
            "pending_new",
            "new",
            "partially_filled",
            "partially_filled",
            "filled",
        ]
        assert fills_of(h, "zt-a.1") == fx(("3", "99"), ("1", "98.5"), ("1", "99"))
        assert (await venue_agrees(h, venue, "zt-a.1")).filled_avg_price == "98.9"
        # every update carries the moment the POST was written: risk's tick-to-order samples
        updates = [e for e in h.events if isinstance(e, wire.OrderUpdate) and e.client_order_id == "zt-a.1"]
        assert len({u.sent_ns for u in updates}) == 1 and updates[0].sent_ns >= updates[0].tick_recv_ns > 0

    run(tmp_path, scenario, ack_delay_ms=50)


def test_cancel_while_pending_cancel_races_a_partial_and_a_complete_fill(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        # a partial fill lands while the cancel is pending: the cancel still wins for the rest
        await submit(h, "zt-c.1", qty="5", px="99")
        await until(lambda: status(h, "zt-c.1") == "pending_new")
        assert venue.release() == 1
        await until(lambda: status(h, "zt-c.1") == "new")
        await cancel(h, "zt-c.1")
        await until(lambda: status(h, "zt-c.1") == "pending_cancel")
        venue.quote("98.9", "99", ask_sz="3")
        await until(lambda: len(h.fills("zt-c.1")) == 1)
        assert status(h, "zt-c.1") == "pending_cancel"
        assert venue.release() == 1
        await until(lambda: status(h, "zt-c.1") == "canceled")
        assert h.statuses("zt-c.1") == ["pending_new", "new", "pending_cancel", "pending_cancel", "canceled"]
        assert fills_of(h, "zt-c.1") == fx(("3", "99"))
        assert (await venue_agrees(h, venue, "zt-c.1")).canceled_at is not None

        # the whole order fills while the cancel is pending: the late cancel changes nothing
        venue.quote(BID, ASK)
        await submit(h, "zt-c.2", qty="2", px="99")
        await until(lambda: status(h, "zt-c.2") == "pending_new")
        assert venue.release() == 1
        await until(lambda: status(h, "zt-c.2") == "new")
        await cancel(h, "zt-c.2")
        await until(lambda: status(h, "zt-c.2") == "pending_cancel")
        venue.quote("98.9", "99", ask_sz="10")
        await until(lambda: status(h, "zt-c.2") == "filled")
        assert venue.release() == 1
        assert h.statuses("zt-c.2") == ["pending_new", "new", "pending_cancel", "filled"]
        assert fills_of(h, "zt-c.2") == fx(("2", "99"))
        assert (await venue_agrees(h, venue, "zt-c.2")).canceled_at is None
        assert h.svc.open_orders() == 0

    run(tmp_path, scenario, ack_delay_ms=50)


def test_replace_through_pending_replace_tracks_the_new_order_and_its_fills(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-r.1", qty="5", px="99")
        await until(lambda: status(h, "zt-r.1") == "pending_new")
        assert venue.release() == 1
        await until(lambda: status(h, "zt-r.1") == "new")
        venue.quote("98.9", "99", ask_sz="2")
        await until(lambda: len(h.fills("zt-r.1")) == 1)
        venue.quote(BID, ASK)

        old_id = h.svc.tracker.orders["zt-r.1"].venue_order_id
        change = ReplaceOrderRequest(qty=3, limit_price=98.5, client_order_id="zt-r.1b")
        new = await asyncio.to_thread(venue.oracle.replace_order_by_id, old_id, change)
        assert isinstance(new, Order) and new.status.value == "pending_new"
        await until(lambda: status(h, "zt-r.1") == "pending_replace")
        venue.quote("98.9", "99", ask_sz="1")  # the old order still works while the replace is pending
        await until(lambda: len(h.fills("zt-r.1")) == 2)
        assert venue.release() == 1
        await until(lambda: status(h, "zt-r.1") == "replaced" and status(h, "zt-r.1b") == "new")
        venue.quote("98.4", "98.5", ask_sz="10")
        await until(lambda: status(h, "zt-r.1b") == "filled")

        assert h.statuses("zt-r.1") == [
            "pending_new", "new", "partially_filled", "pending_replace", "pending_replace", "replaced",
        ]  # fmt: skip
        assert fills_of(h, "zt-r.1") == fx(("2", "99"), ("1", "99"))
        assert h.svc.tracker.orders["zt-r.1"].replaced_by == str(new.id)
        replacement = h.svc.tracker.orders["zt-r.1b"]
        assert (replacement.replaces, replacement.strategy, replacement.qty) == (old_id, "s1", to_fixed(3))
        assert h.statuses("zt-r.1b") == ["new", "filled"]
        [fill] = h.fills("zt-r.1b")
        assert (fill.qty, fill.px, fill.strategy, fill.venue_order_id) == (
            to_fixed(3), to_fixed("98.5"), "s1", str(new.id)
        )  # fmt: skip
        old = await venue_agrees(h, venue, "zt-r.1")
        assert str(old.replaced_by) == str(new.id)
        assert str((await venue_agrees(h, venue, "zt-r.1b")).replaces) == old_id

    run(tmp_path, scenario, ack_delay_ms=50)


def test_replace_too_late_because_the_old_order_filled_rejects_the_replacement(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-r.2", qty="2", px="99")
        await until(lambda: status(h, "zt-r.2") == "pending_new")
        assert venue.release() == 1
        await until(lambda: status(h, "zt-r.2") == "new")
        old_id = h.svc.tracker.orders["zt-r.2"].venue_order_id
        change = ReplaceOrderRequest(limit_price=98.5, client_order_id="zt-r.2b")
        await asyncio.to_thread(venue.oracle.replace_order_by_id, old_id, change)
        await until(lambda: status(h, "zt-r.2") == "pending_replace")
        venue.quote("98.9", "99", ask_sz="10")  # the old order fills before the replace takes effect
        await until(lambda: status(h, "zt-r.2") == "filled")
        assert venue.release() == 1
        await until(lambda: status(h, "zt-r.2b") == "rejected")
        assert h.statuses("zt-r.2") == ["pending_new", "new", "pending_replace", "filled"]
        assert fills_of(h, "zt-r.2") == fx(("2", "99"))
        assert h.fills("zt-r.2b") == [] and h.svc.tracker.orders["zt-r.2b"].strategy == "s1"
        await venue_agrees(h, venue, "zt-r.2")
        await venue_agrees(h, venue, "zt-r.2b")
        assert h.svc.open_orders() == 0

    run(tmp_path, scenario, ack_delay_ms=50)


# ---- 2. asynchronous rejection ---------------------------------------------------------------


def test_asynchronous_rejection_ends_rejected_without_a_fill(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await venue.post("/sim/faults/reject", {"count": 1, "reason": "symbol halted"})
        await submit(h, "zt-j.1", qty="2", px=ASK)  # marketable: it would fill if it were not rejected
        await until(lambda: status(h, "zt-j.1") == "rejected")
        assert h.statuses("zt-j.1") == ["pending_new", "rejected"]

        def rejected() -> list[wire.OrderUpdate]:
            return [e for e in h.events if isinstance(e, wire.OrderUpdate) and e.status == "rejected"]

        await until(lambda: bool(rejected()))
        assert rejected()[-1].reason == "symbol halted"  # the venue's reason reaches risk and the strategy
        assert h.fills("zt-j.1") == []
        order = await venue_agrees(h, venue, "zt-j.1")
        assert order.failed_at is not None and h.svc.open_orders() == 0

        await submit(h, "zt-j.2", qty="1", px=ASK)  # the fault is used up
        await until(lambda: status(h, "zt-j.2") == "filled")
        await venue_agrees(h, venue, "zt-j.2")

    run(tmp_path, scenario)


# ---- 3. trading session -----------------------------------------------------------------------


def test_session_close_expires_day_orders_and_gtc_ones_fill_after_the_open(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-d.1", qty="2", px="99", tif="day")
        await submit(h, "zt-g.1", qty="1", px="99", tif="gtc")
        await until(lambda: status(h, "zt-d.1") == "new" and status(h, "zt-g.1") == "new")
        closed = await venue.post("/sim/session/close")
        assert closed == {"is_open": False, "expired": [h.svc.tracker.orders["zt-d.1"].venue_order_id]}
        await until(lambda: status(h, "zt-d.1") == "expired")
        venue.quote("98.4", "98.5", ask_sz="10")  # crosses the gtc order, which does not trade while closed
        await submit(h, "zt-q.1", qty="3", px="99", tif="day")  # queued for the next session
        await until(lambda: status(h, "zt-q.1") == "accepted")
        assert (await venue.order("zt-g.1")).filled_qty == "0" and status(h, "zt-g.1") == "new"

        await venue.post("/sim/session/open")
        await until(lambda: status(h, "zt-g.1") == "filled" and status(h, "zt-q.1") == "filled")
        assert h.statuses("zt-d.1") == ["new", "expired"]
        assert h.statuses("zt-g.1") == ["new", "filled"]
        assert h.statuses("zt-q.1") == ["accepted", "new", "filled"]
        assert h.fills("zt-d.1") == []
        assert fills_of(h, "zt-g.1") == fx(("1", "98.5"))
        assert fills_of(h, "zt-q.1") == fx(("3", "98.5"))
        for coid in ("zt-d.1", "zt-g.1", "zt-q.1"):
            await venue_agrees(h, venue, coid)

    run(tmp_path, scenario)


# ---- 4. a POST whose reply is lost after the venue placed the order --------------------------


@pytest.mark.parametrize("http_status", [504, 500, 429])
def test_lost_reply_after_the_order_was_placed_makes_one_order_filled_once(
    tmp_path: Path, http_status: int
) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        fault = {
            "status": http_status,
            "count": 1,
            "after_apply": True,
            "paths": "/v2/orders",
            "method": "POST",
        }
        await venue.post("/sim/faults/rest", fault)
        await submit(h, "zt-l.1", qty="2", px=ASK)
        await until(lambda: status(h, "zt-l.1") == "filled")
        assert await venue.posts_logged("zt-l.1") == [http_status]  # one POST, adopted by lookup
        assert h.statuses("zt-l.1")[-1] == "filled" and "submit_failed" not in h.statuses("zt-l.1")
        assert fills_of(h, "zt-l.1") == fx(("2", ASK))
        await venue_agrees(h, venue, "zt-l.1")
        assert len([o for o in h.svc.tracker.orders.values() if o.symbol == "AAPL"]) == 1

    run(tmp_path, scenario)


# ---- 5. a POST that stalls past execution's http timeout ---------------------------------------

HTTP_TIMEOUT_S = 0.15


def test_post_placed_at_once_but_answered_after_the_timeout_is_adopted(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        fault = {"count": 1, "delay_ms": 600, "after_apply": True, "method": "POST", "paths": "/v2/orders"}
        await venue.post("/sim/faults/rest", fault)
        await submit(h, "zt-t.1", qty="2", px=ASK)
        await until(lambda: status(h, "zt-t.1") == "filled")
        assert "unknown" not in h.statuses("zt-t.1")  # the lookup right after the timeout found it
        assert [s[0] for s in h.svc.journal.submits] == ["zt-t.1"]
        assert fills_of(h, "zt-t.1") == fx(("2", ASK))
        await wait_for_posts(venue, "zt-t.1", 1)  # the stalled reply went out, to nobody
        assert await venue.posts_logged("zt-t.1") == [200]
        await venue_agrees(h, venue, "zt-t.1")

    run(tmp_path, scenario, http_timeout_s=HTTP_TIMEOUT_S)


def test_posts_that_land_after_the_timeout_make_one_order_which_execution_tracks(tmp_path: Path) -> None:
    """All three POSTs time out and lookups say 404 while they are still on their way in: the
    order is ``unknown`` (not failed: the settle window), then the first POST lands, execution
    adopts it from the stream and the two later POSTs are refused by the venue as duplicates."""

    async def scenario(h: Harness, venue: Venue) -> None:
        fault = {"count": 3, "delay_ms": 1500, "after_apply": False, "method": "POST", "paths": "/v2/orders"}
        await venue.post("/sim/faults/rest", fault)
        await submit(h, "zt-t.2", qty="2", px=ASK)
        await until(lambda: status(h, "zt-t.2") == "unknown")
        assert [s[0] for s in h.svc.journal.submits].count("zt-t.2") == 3
        with pytest.raises(APIError) as absent:
            await venue.order("zt-t.2")  # not at the venue yet, and execution did not give up on it
        assert absent.value.status_code == 404
        await until(lambda: status(h, "zt-t.2") == "filled")
        statuses = h.statuses("zt-t.2")
        assert statuses[0] == "unknown" and statuses[-1] == "filled" and "submit_failed" not in statuses
        assert fills_of(h, "zt-t.2") == fx(("2", ASK))
        await wait_for_posts(venue, "zt-t.2", 3)
        assert await venue.posts_logged("zt-t.2") == [200, 422, 422]  # later POSTs: duplicate id
        await venue_agrees(h, venue, "zt-t.2")

    run(tmp_path, scenario, http_timeout_s=HTTP_TIMEOUT_S)


def test_post_landing_after_execution_gave_up_revives_the_order_with_its_fill(tmp_path: Path) -> None:
    """Past the settle window a 404 means "not placed" (submit_failed); if the POST lands even
    later, the venue's word wins: the order is tracked again and its fill counted once."""

    async def scenario(h: Harness, venue: Venue) -> None:
        h.svc.placer.settle_s = 0.3  # instead of max(2 x http timeout, 2 s): give up before the POST lands
        fault = {"count": 3, "delay_ms": 2000, "after_apply": False, "method": "POST", "paths": "/v2/orders"}
        await venue.post("/sim/faults/rest", fault)
        await submit(h, "zt-t.3", qty="2", px=ASK)
        await until(lambda: status(h, "zt-t.3") == "submit_failed")
        assert h.statuses("zt-t.3") == ["unknown", "submit_failed"]
        await until(lambda: status(h, "zt-t.3") == "filled")
        statuses = h.statuses("zt-t.3")
        assert statuses[:2] == ["unknown", "submit_failed"] and statuses[-1] == "filled"
        assert fills_of(h, "zt-t.3") == fx(("2", ASK))
        await wait_for_posts(venue, "zt-t.3", 3)
        assert await venue.posts_logged("zt-t.3") == [200, 422, 422]
        await venue_agrees(h, venue, "zt-t.3")

    run(tmp_path, scenario, http_timeout_s=HTTP_TIMEOUT_S)


async def wait_for_posts(venue: Venue, coid: str, n: int) -> None:
    for _ in range(300):
        if len(await venue.posts_logged(coid)) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the venue did not answer {n} POSTs for {coid}")


# ---- 6. trade_updates dropped while fills happen -----------------------------------------------


def test_fills_while_trade_updates_are_dropped_come_once_from_the_reconcile(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-x.1", qty="5", px="99", tif="gtc")
        await until(lambda: status(h, "zt-x.1") == "new")
        connects = h.svc.stream.connects
        hub = venue.server.app[TRADE_STREAM_HUB]  # type: ignore[index]
        assert (await venue.post("/sim/faults/streams/drop"))["trade_dropped"] == 1
        await until(lambda: not h.svc.stream.connected and hub.listeners == 0)
        # synchronous with the check above: nobody listens while these two partial fills happen
        venue.quote("98.9", "99", ask_sz="2")
        venue.quote("98.4", "98.5", ask_sz="2")
        await until(lambda: h.svc.stream.connects > connects and len(h.fills("zt-x.1")) == 1)
        assert fills_of(h, "zt-x.1") == fx(("4", "98.75"))  # both executions, priced from the averages

        def updates() -> list[wire.OrderUpdate]:
            return [e for e in h.events if isinstance(e, wire.OrderUpdate) and e.client_order_id == "zt-x.1"]

        # the Fill is published just before its OrderUpdate: wait for that one to arrive as well
        await until(lambda: updates()[-1].event == "reconciled")
        assert updates()[-1].status == "partially_filled"
        await until(lambda: h.svc.stream.connected)

        venue.quote("98.9", "99", ask_sz="10")  # the rest, on the reconnected stream
        await until(lambda: status(h, "zt-x.1") == "filled")
        await asyncio.sleep(0.1)  # a duplicate from a late reconcile would show by now
        assert fills_of(h, "zt-x.1") == fx(("4", "98.75"), ("1", "99"))
        assert h.statuses("zt-x.1") == ["new", "partially_filled", "filled"]
        await venue_agrees(h, venue, "zt-x.1")

    run(tmp_path, scenario)


def test_replace_and_its_fill_while_trade_updates_are_dropped_are_reconciled_once(tmp_path: Path) -> None:
    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-x.2", qty="4", px="99", tif="gtc")
        await until(lambda: status(h, "zt-x.2") == "new")
        old_id = h.svc.tracker.orders["zt-x.2"].venue_order_id
        connects = h.svc.stream.connects
        hub = venue.server.app[TRADE_STREAM_HUB]  # type: ignore[index]
        assert (await venue.post("/sim/faults/streams/drop"))["trade_dropped"] == 1
        await until(lambda: not h.svc.stream.connected and hub.listeners == 0)
        # nobody listens: a partial fill, a replace of the rest, and the replacement's fill
        venue.quote("98.9", "99", ask_sz="1")
        change = ReplaceBody(qty=Decimal(3), limit_price=Decimal("98.5"), client_order_id="zt-x.2b")
        new = venue.exchange.replace(old_id, change)
        venue.quote("98.4", "98.5", ask_sz="10")
        await until(lambda: status(h, "zt-x.2") == "replaced" and status(h, "zt-x.2b") == "filled")
        assert h.svc.stream.connects > connects and h.svc.tracker.orders["zt-x.2"].replaced_by == new.id
        # in the order it happened: the old order's fill and end, then the replacement and its fill
        seen = [
            (e.client_order_id, type(e).__name__) for e in h.events if e.client_order_id.startswith("zt-x.2")
        ]
        assert seen == [
            ("zt-x.2", "OrderUpdate"), ("zt-x.2", "Fill"), ("zt-x.2", "OrderUpdate"),
            ("zt-x.2b", "Fill"), ("zt-x.2b", "OrderUpdate"),
        ]  # fmt: skip
        assert fills_of(h, "zt-x.2") == fx(("1", "99"))
        assert fills_of(h, "zt-x.2b") == fx(("3", "98.5"))
        replacement = h.svc.tracker.orders["zt-x.2b"]
        assert (replacement.replaces, replacement.strategy) == (old_id, "s1")
        await asyncio.sleep(0.1)  # a duplicate from a late reconcile would show by now
        assert len(h.fills("zt-x.2")) == len(h.fills("zt-x.2b")) == 1
        await venue_agrees(h, venue, "zt-x.2")
        await venue_agrees(h, venue, "zt-x.2b")

    run(tmp_path, scenario)


# ---- the simulator's delay fault itself ---------------------------------------------------------


def test_rest_fault_without_a_status_needs_a_delay() -> None:
    async def main() -> list[int]:
        server = app.VenueServer(SimConfig(port=0, message_rate=0, feed_start_paused=True))
        await server.start()
        try:
            bodies = [{"count": 1}, {"count": 1, "delay_ms": 0}, {"count": 1, "delay_ms": 5, "method": "PUT"}]
            codes = []
            async with aiohttp.ClientSession() as s:
                for body in [*bodies, {"count": 1, "delay_ms": 5, "method": "POST"}]:
                    async with s.post(server.rest_url + "/sim/faults/rest", json=body) as r:
                        codes.append(r.status)
            return codes
        finally:
            await server.stop()

    assert asyncio.run(main()) == [422, 422, 422, 200]
