"""The repeated-warning helpers, driven by a fake clock."""

from __future__ import annotations

import logging

import pytest

from common.ratelog import ConditionLog, LogLimiter, RateLimitedLog

S = 1_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 10 * S

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * S)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, object]]]:
    return [(r.getMessage(), dict(getattr(r, "fields", {}))) for r in caplog.records]


def test_same_condition_every_second_logs_once_then_a_reminder_with_the_count(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cond = ConditionLog(logging.getLogger("t"), reminder_s=30, clock=clock)
    caplog.set_level(logging.INFO, "t")
    for _ in range(45):  # 45 s of a retry loop reporting once a second
        cond.report("auth_rejected", "keys rejected")
        clock.advance(1)
    got = lines(caplog)
    assert [m for m, _ in got] == ["keys rejected", "keys rejected"]
    assert "repeats" not in got[0][1]
    assert got[1][1]["repeats"] == 29  # the 29 reports between t=0 and t=30 were left out
    assert got[1][1]["ongoing_s"] == 30.0
    assert cond.repeats == 14 and cond.active


def test_a_changed_condition_is_logged_at_once(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    cond = ConditionLog(logging.getLogger("t"), reminder_s=60, clock=clock)
    caplog.set_level(logging.INFO, "t")
    assert cond.report("dns_failure", "cannot resolve")
    clock.advance(1)
    assert not cond.report("dns_failure", "cannot resolve")
    assert cond.report("connection_refused", "refused")
    assert [m for m, _ in lines(caplog)] == ["cannot resolve", "refused"]


def test_clear_logs_recovery_once_and_rearms(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    cond = ConditionLog(logging.getLogger("t"), reminder_s=60, clock=clock)
    caplog.set_level(logging.INFO, "t")
    assert not cond.clear("recovered")  # nothing was wrong: no line
    cond.report("timeout", "no answer")
    clock.advance(5)
    assert cond.clear("recovered")
    assert not cond.clear("recovered")
    assert cond.report("timeout", "no answer")  # the same condition again is news after a recovery
    got = lines(caplog)
    assert [m for m, _ in got] == ["no answer", "recovered", "no answer"]
    assert got[1][1] == {"after_s": 5.0, "was": "timeout"}


def test_rate_limited_log_counts_what_it_suppressed(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    rl = RateLimitedLog(logging.getLogger("t"), interval_s=5, clock=clock)
    caplog.set_level(logging.INFO, "t")
    results = []
    for _ in range(12):
        results.append(rl.warning("bad frame", feed="stocks"))
        clock.advance(1)
    assert results == [True, False, False, False, False, True, False, False, False, False, True, False]
    got = lines(caplog)
    assert [f["suppressed_since_last"] for _, f in got] == [0, 4, 4]


def test_log_limiter_allows_each_key_once_per_interval(clock: FakeClock) -> None:
    limiter = LogLimiter(1.0, clock)
    assert limiter.allow("credentials") and limiter.allow("protocol")
    assert not limiter.allow("credentials")
    clock.advance(0.999)
    assert not limiter.allow("credentials")
    clock.advance(0.001)
    assert limiter.allow("credentials") and limiter.allow("protocol")
    assert not limiter.allow("protocol")
