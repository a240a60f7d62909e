"""Window math: counter deltas and rates across resets, quantiles from histogram bucket deltas."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from zerotick.top import stats
from zerotick.top.promtext import parse

INF = math.inf


def test_rate_is_growth_per_second_and_none_without_two_values() -> None:
    assert stats.rate(100, 160, 2.0) == 30.0
    assert stats.rate(None, 160, 2.0) is None
    assert stats.rate(100, None, 2.0) is None
    assert stats.rate(100, 160, 0.0) is None


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    assert stats.counter_delta(500, 40) == 40
    assert stats.rate(500, 40, 4.0) == 10.0


def test_bucket_delta_keeps_only_the_window() -> None:
    before = {0.001: 10, 0.01: 20, INF: 20}
    after = {0.001: 10, 0.01: 25, INF: 30}
    assert stats.bucket_delta(before, after) == {0.001: 0, 0.01: 5, INF: 10}
    assert stats.observations(stats.bucket_delta(before, after)) == 10


def test_bucket_delta_after_a_restart_is_everything_since() -> None:
    before = {0.001: 100, INF: 100}
    after = {0.001: 3, INF: 4}
    assert stats.bucket_delta(before, after) == after
    assert stats.bucket_delta({}, after) == after


def test_quantile_interpolates_inside_its_bucket() -> None:
    # 100 observations: 50 in (0, 1 ms], 40 in (1 ms, 2 ms], 10 in (2 ms, 4 ms]
    buckets = {0.001: 50, 0.002: 90, 0.004: 100, INF: 100}
    assert stats.quantile(0.5, buckets) == pytest.approx(0.001)
    assert stats.quantile(0.25, buckets) == pytest.approx(0.0005)
    assert stats.quantile(0.7, buckets) == pytest.approx(0.0015)
    assert stats.quantile(0.99, buckets) == pytest.approx(0.0038)


def test_quantile_skips_empty_buckets_and_caps_at_the_highest_bound() -> None:
    assert stats.quantile(0.5, {0.001: 0, 0.002: 0, 0.004: 10, INF: 10}) == pytest.approx(0.003)
    # everything above the last finite bound: the answer is "at least" that bound
    assert stats.quantile(0.99, {0.001: 0, 0.004: 1, INF: 100}) == 0.004


def test_quantile_of_nothing_is_none_and_a_bad_q_is_refused() -> None:
    assert stats.quantile(0.5, {}) is None
    assert stats.quantile(0.5, {0.001: 0, INF: 0}) is None
    with pytest.raises(ValueError):
        stats.quantile(1.5, {INF: 1})


def test_percentiles_of_the_window_from_two_real_scrapes() -> None:
    """What the dashboard does: two expositions of the same histogram, the quantile of their difference.
    The first scrape's slow observations are outside the window and must not move the p99."""
    registry = CollectorRegistry()
    h = Histogram("zt_stage_latency_seconds", "x", ["service", "stage"], registry=registry,
                  buckets=(100e-6, 200e-6, 500e-6, 1e-3, 1.0))  # fmt: skip
    for _ in range(50):
        h.labels("risk", "risk_check").observe(0.5)  # slow, before the window
    before = parse(generate_latest(registry).decode())
    for _ in range(99):
        h.labels("risk", "risk_check").observe(150e-6)
    h.labels("risk", "risk_check").observe(700e-6)
    after = parse(generate_latest(registry).decode())

    match = {"service": "risk", "stage": "risk_check"}
    window = stats.bucket_delta(
        before.buckets("zt_stage_latency_seconds", **match),
        after.buckets("zt_stage_latency_seconds", **match),
    )
    assert stats.observations(window) == 100
    assert 100e-6 < stats.quantile(0.5, window) <= 200e-6  # type: ignore[operator]
    assert 100e-6 < stats.quantile(0.99, window) <= 200e-6  # type: ignore[operator]
    assert 500e-6 < stats.quantile(0.999, window) <= 1e-3  # type: ignore[operator]
    # since start (no window) the slow half dominates the p99
    since_start = after.buckets("zt_stage_latency_seconds", **match)
    assert stats.quantile(0.99, since_start) > 0.1  # type: ignore[operator]
