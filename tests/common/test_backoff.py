from __future__ import annotations

import random

import pytest

from common.backoff import Backoff


def test_exponential_with_equal_jitter_capped_and_reset() -> None:
    b = Backoff(0.5, 4.0, random.Random(1))
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for cap in caps:
        d = b.next_delay()
        assert cap / 2 <= d <= cap
    b.reset()
    assert 0.25 <= b.next_delay() <= 0.5


def test_longest_waits_the_maximum_and_jitter_spreads() -> None:
    b = Backoff(0.5, 30.0, random.Random(2))
    delays = [b.next_delay(longest=True) for _ in range(50)]
    assert all(15.0 <= d <= 30.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 40  # jittered, so clients do not reconnect in lockstep


def test_invalid_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
