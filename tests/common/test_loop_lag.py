"""The event-loop lag probe: it records how much later than asked its timer fires, keeps measuring
when recording fails (logged and counted), and sees a loop that a callback blocks."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from common.loop_lag import LoopLagProbe
from tests.kit.waiting import until

INTERVAL_S = 0.1
INTERVAL_NS = 100_000_000


class FakeTime:
    """A clock that a sleep moves by the interval plus the next scripted overshoot; once the script
    is used up the sleep is cancelled, which ends the probe."""

    def __init__(self, overshoots_ns: list[int]) -> None:
        self.now = 1_000
        self.overshoots = list(overshoots_ns)

    def clock(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if not self.overshoots:
            raise asyncio.CancelledError
        self.now += int(seconds * 1e9) + self.overshoots.pop(0)


def _run(probe: LoopLagProbe) -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(probe.run())


def test_records_how_late_each_timer_fires() -> None:
    script = [0, 20_000, 3_000_000, 250_000_000]
    fake = FakeTime(script)
    seen: list[float] = []
    probe = LoopLagProbe("lagtest", INTERVAL_S, seen.append, fake.sleep, fake.clock)
    _run(probe)
    assert seen == [ns / 1e9 for ns in script]
    assert probe.samples == len(script) and probe.max_lag_s == 0.25


def test_an_early_wakeup_is_no_negative_lag() -> None:
    fake = FakeTime([-5_000])
    seen: list[float] = []
    _run(LoopLagProbe("lagtest", INTERVAL_S, seen.append, fake.sleep, fake.clock))
    assert seen == [0.0]


def test_keeps_measuring_when_recording_fails() -> None:
    fake = FakeTime([1_000, 2_000, 3_000, 4_000, 5_000])
    seen: list[float] = []
    calls = 0

    def observe(lag_s: float) -> None:  # the first two recordings fail
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ValueError("broken metric")
        seen.append(lag_s)

    failures = "zt_task_failures_total"
    labels = {"service": "lagfail", "task": "loop_lag"}
    before = REGISTRY.get_sample_value(failures, labels) or 0.0
    probe = LoopLagProbe("lagfail", INTERVAL_S, observe, fake.sleep, fake.clock)
    _run(probe)
    assert probe.errors == 2 and probe.samples == 3
    assert seen == [3e-6, 4e-6, 5e-6]
    assert REGISTRY.get_sample_value(failures, labels) == before + 2


def test_sees_a_callback_that_blocks_the_loop() -> None:
    """A 50 ms block overlaps at least one 10 ms timer, which then fires at least 40 ms late."""
    seen: list[float] = []

    async def scenario() -> None:
        probe = LoopLagProbe("lagreal", 0.01, seen.append)
        task = asyncio.get_running_loop().create_task(probe.run())
        await until(lambda: seen, "a first measurement")
        done = asyncio.Event()

        def block() -> None:
            time.sleep(0.05)
            done.set()

        asyncio.get_running_loop().call_soon(block)
        await done.wait()
        count = len(seen)
        await until(lambda: len(seen) >= count + 2, "measurements after the block")
        task.cancel()

    asyncio.run(scenario())
    assert max(seen) >= 0.04
