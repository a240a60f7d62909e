"""The risk service in the test's own loop with the test playing market_data: a PUB bound on
market_data's endpoint, the subscription through before the test goes on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import zmq

from common import wire
from common.config import Settings
from common.fixed import to_fixed
from common.zmq_io import Publisher
from services.risk.service import RiskService


def quote(symbol: str, mid: str = "100", exch_ns: int | None = None) -> wire.Quote:
    """A quote one cent either side of ``mid``, stamped now unless ``exch_ns`` says otherwise."""
    ts = time.time_ns() if exch_ns is None else exch_ns
    half = to_fixed("0.01")
    return wire.Quote(
        symbol=symbol, bid_px=to_fixed(mid) - half, bid_sz=to_fixed("1"), ask_px=to_fixed(mid) + half,
        ask_sz=to_fixed("1"), exch_ns=ts, recv_ns=ts,
    )  # fmt: skip


def _warm_intent() -> wire.OrderIntent:
    now = time.time_ns()
    return wire.OrderIntent(
        intent_id="warm", strategy="warm", symbol="WARM", side="buy", qty=to_fixed("1"), limit_px=to_fixed("1"),
        signal_ns=now, deadline_ns=now + 10**9,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def risk_fed_by_test(settings: Settings) -> AsyncIterator[tuple[RiskService, Publisher]]:
    """Risk ready, its positions marked loaded (nobody plays execution), and an IBM quote through
    its market-data subscription (a decision on a quote-less symbol drains the socket)."""
    ctx = zmq.Context()
    pub = Publisher(ctx, settings.zmq.bind_endpoint("market_data", "pub"), "test")
    svc = RiskService(settings)
    running = asyncio.get_running_loop().create_task(svc.run_forever())
    await svc.ready.wait()
    try:
        svc.positions_loaded = True
        for _ in range(100):  # until the subscription has reached the publisher
            pub.publish(b"md.q.IBM", [quote("IBM", "10")])
            await asyncio.sleep(0.02)
            svc.decide(_warm_intent())  # drains (no quote of its symbol: refused)
            await asyncio.sleep(0)
            if svc.mid("IBM") is not None:
                break
        assert svc.mid("IBM") is not None, "risk's market-data subscription never came through"
        yield svc, pub
    finally:
        svc.request_stop()
        await running
        pub.close()
        ctx.term()
