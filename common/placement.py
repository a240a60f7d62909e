"""Where and how urgently a service's threads run: ``host.cpu_affinity`` and ``host.nice``.

Both are per thread in Linux: ``os.sched_setaffinity(0, …)`` and ``setpriority`` move only the
calling thread (and the threads it creates later), so each thread already running (the metrics
server, ZeroMQ's I/O thread when called late) is set by its thread id from ``/proc/self/task``.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable

from common.config import ConfigError


def _threads(pid: int | str = "self") -> list[int]:
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


def pin_threads(pid: int | str, cpus: set[int]) -> None:
    """Every thread of process ``pid`` onto ``cpus`` (what `taskset -a -p` does)."""
    for tid in _threads(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            pass  # the thread ended meanwhile


def lowest_niceness_allowed() -> int:
    """The lowest niceness this user may set: -20 for root; else the current value, or lower as far
    as RLIMIT_NICE allows (20 - its soft limit)."""
    if os.geteuid() == 0:
        return -20
    floor = 20 - resource.getrlimit(resource.RLIMIT_NICE)[0]
    return max(min(floor, os.getpriority(os.PRIO_PROCESS, 0)), -20)


def _available() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    return ",".join(str(c) for c in cpus)


def check_cpus(cpus: Iterable[int]) -> None:
    """Raise ConfigError (one line, exit 2) unless this process may run on every CPU in ``cpus``
    (a CPU this host or this container's cpuset does not have)."""
    want, usable = set(cpus), os.sched_getaffinity(0)
    if want - usable:
        raise ConfigError(
            f"host.cpu_affinity: cannot run on CPUs {sorted(want - usable)} here (this process may use {_available()})"
        )


def pin_process(cpus: Iterable[int]) -> set[int]:
    """Pin every thread of this process to ``cpus``; return the set now in force.

    Raises ConfigError (one line, exit 2) when the kernel refuses the set, e.g. a CPU this host or
    this container's cpuset does not have."""
    want = set(cpus)
    check_cpus(want)  # the kernel would take a set with one usable CPU in it and drop the rest
    try:
        os.sched_setaffinity(0, want)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"host.cpu_affinity: cannot run on CPUs {sorted(want)} here (this process may use {_available()}): "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    pin_threads("self", want)
    return os.sched_getaffinity(0)


def renice_process(nice: int) -> int:
    """Give every thread of this process the niceness ``nice``; return the one now in force.

    Raises ConfigError when the kernel refuses it (below the current value without CAP_SYS_NICE)."""
    for tid in _threads():
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue
        except OSError as exc:
            raise ConfigError(
                f"host.nice: cannot set niceness {nice} here (now {os.getpriority(os.PRIO_PROCESS, 0)}): "
                f"{exc.strerror or exc}; a niceness below 0 needs root or CAP_SYS_NICE"
            ) from None
    return os.getpriority(os.PRIO_PROCESS, 0)
