"""`zerotick up`'s pre-flight check of host.cpu_affinity and host.nice (zerotick/preflight.py)."""

from __future__ import annotations

import os
import resource

import pytest

from common.config import Settings
from zerotick import preflight


def _settings(tmp_path: object, **host: object) -> Settings:
    return Settings(zmq={"run_dir": tmp_path}, host=host)


def test_what_this_host_can_give_passes(tmp_path: object) -> None:
    usable = sorted(os.sched_getaffinity(0))
    assert preflight.placement(_settings(tmp_path, cpu_affinity=usable[-1:], nice={"signal": 5})) == []


def test_a_cpu_outside_this_process_cpuset_is_named(tmp_path: object) -> None:
    usable = sorted(os.sched_getaffinity(0))
    missing = usable[-1] + 1
    (line,) = preflight.placement(_settings(tmp_path, cpu_affinity=[usable[0], missing]))
    assert line == (
        f"host.cpu_affinity: CPU {missing} is not available here "
        f"(this process may use {','.join(map(str, usable))})"
    )


@pytest.mark.parametrize(("rlimit_nice", "may"), [(0, 0), (25, -5)])
def test_a_niceness_an_unprivileged_user_may_not_take_is_named(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, rlimit_nice: int, may: int
) -> None:
    """Unprivileged, niceness goes down to 20 - RLIMIT_NICE (never below where it is now otherwise)."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getpriority", lambda which, who: 0)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (rlimit_nice, rlimit_nice))
    (line,) = preflight.placement(_settings(tmp_path, nice={"execution": -15, "risk": -10}))
    assert line == f"host.nice: niceness -15 needs root or CAP_SYS_NICE (this user may go down to {may})"
    assert preflight.placement(_settings(tmp_path, nice={"execution": may})) == []


def test_root_may_take_any_niceness(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert preflight.placement(_settings(tmp_path, nice={"execution": -20})) == []
