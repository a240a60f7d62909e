"""Test helpers: a real alpaca-py TradingStream collecting trade updates, held delayed steps, /sim calls."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import requests
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream

from tests.kit.trading_venue import KEY, SECRET, SimServer
from tests.kit.waiting import wait_until


class Updates:
    """alpaca-py's TradingStream on a thread; every parsed TradeUpdate lands in a queue."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim
        self.received: queue.Queue[TradeUpdate] = queue.Queue()
        self.stream = TradingStream(KEY, SECRET, url_override=sim.ws_url)
        self.stream.subscribe_trade_updates(self._on_update)
        self._thread = threading.Thread(target=self.stream.run, name="trading-stream", daemon=True)

    async def _on_update(self, update: TradeUpdate) -> None:
        self.received.put(update)

    def start(self) -> Updates:
        self._thread.start()
        wait_until(lambda: self.sim.hub.listeners == 1, 10, "the trade stream listening")
        return self

    def take(self, n: int) -> list[TradeUpdate]:
        return [self.received.get(timeout=10) for _ in range(n)]

    def stop(self) -> None:
        self.stream.stop()
        self.sim.call_async(self.sim.hub.drop_all())  # wakes the client's 5 s recv wait at once
        self._thread.join(10)


def by_order(updates: list[TradeUpdate]) -> dict[str, list[str]]:
    """Event names per order id, in arrival order."""
    out: dict[str, list[str]] = {}
    for u in updates:
        out.setdefault(str(u.order.id), []).append(
            str(u.event.value if hasattr(u.event, "value") else u.event)
        )
    return out


class HeldSteps:
    """An Exchange scheduler that keeps every delayed step until the test releases them (no sleeps)."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []

    def __call__(self, delay_s: float, step: Callable[[], None]) -> None:
        self.steps.append(step)

    def release(self) -> int:
        steps, self.steps = self.steps, []
        for step in steps:
            step()
        return len(steps)


def sim_post(sim: SimServer, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(sim.base_url + path, json=body, timeout=5)
