"""Token bucket with an injected clock: deterministic."""

from __future__ import annotations

import asyncio

import pytest

from services.execution.venue.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_min=120, burst=3, clock=clock)  # 2 tokens/s
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_take() and not bucket.try_take()
    clock.now += 60  # refill never exceeds the burst
    assert bucket.tokens == pytest.approx(3)


def test_acquire_waits_when_affordable_and_refuses_when_not() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_min=60, burst=1, clock=clock)  # 1 token/s
    assert bucket.try_take()

    async def scenario() -> tuple[bool, bool]:
        refused = await bucket.acquire(max_wait_s=0.5)  # needs 1 s: refused at once, nothing taken
        real_sleep = asyncio.sleep

        async def advancing_sleep(seconds: float) -> None:
            clock.now += seconds
            await real_sleep(0)

        asyncio.sleep = advancing_sleep  # type: ignore[assignment]
        try:
            granted = await bucket.acquire(max_wait_s=2.0)
        finally:
            asyncio.sleep = real_sleep  # type: ignore[assignment]
        return refused, granted

    refused, granted = asyncio.run(scenario())
    assert refused is False and granted is True
    assert clock.now == pytest.approx(1001.0)
    assert bucket.tokens == pytest.approx(0)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_a_newcomer_never_takes_the_token_a_waiter_is_waiting_for() -> None:
    async def scenario() -> tuple[bool, bool]:
        clock = FakeClock()
        bucket = TokenBucket(rate_per_min=600, burst=1, clock=clock)  # 10 tokens/s
        assert bucket.try_take()
        waiter = asyncio.get_running_loop().create_task(bucket.acquire(1.0))
        await asyncio.sleep(0.01)  # the waiter is now sleeping for its token
        clock.now += 1.0  # a token is available
        newcomer = await bucket.acquire(0.0)
        return newcomer, await waiter

    newcomer, waiter = asyncio.run(scenario())
    assert waiter is True and newcomer is False


def test_waiting_is_bounded_even_if_the_clock_stalls() -> None:
    async def scenario() -> bool:
        bucket = TokenBucket(rate_per_min=600, burst=1, clock=FakeClock())  # the clock never moves
        assert bucket.try_take()
        return await asyncio.wait_for(bucket.acquire(0.3), 5)

    assert asyncio.run(scenario()) is False
