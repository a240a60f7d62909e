"""Pin every thread of this process to a set of CPUs (``host.cpu_affinity``).

``os.sched_setaffinity(0, …)`` moves only the calling thread (and the threads it creates later), so
each thread already running (the metrics server, ZeroMQ's I/O thread when called late) is moved by
its thread id from ``/proc/self/task``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from common.config import ConfigError


def _available() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    return ",".join(str(c) for c in cpus)


def pin_process(cpus: Iterable[int]) -> set[int]:
    """Pin every thread of this process to ``cpus``; return the set now in force.

    Raises ConfigError (one line, exit 2) when the kernel refuses the set, e.g. a CPU this host or
    this container's cpuset does not have."""
    want = set(cpus)
    try:
        os.sched_setaffinity(0, want)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"host.cpu_affinity: cannot run on CPUs {sorted(want)} here (this process may use {_available()}): "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), want)
        except ProcessLookupError:
            pass  # the thread ended meanwhile
    return os.sched_getaffinity(0)
