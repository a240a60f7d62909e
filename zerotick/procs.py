"""Processes as the kernel sees them (/proc): who is alive, who descends from whom, who runs on a run
folder. A process is identified by (pid, start time), so a pid the kernel hands out again after a
process ended is never taken for the old one."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# what supervisord runs for zerotick: `python -m services.<name>`, `-m simulator`, `-m zerotick.idle_poll`
PROGRAM_MODULES = ("services.", "simulator", "zerotick.idle_poll")


@dataclass(frozen=True)
class Proc:
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: when it started, in clock ticks since boot

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[2] != "Z" and stat[21] == str(self.start_ticks)


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat split into fields (the command name, which may hold spaces, as one)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    head, _, tail = raw.rpartition(")")
    pid_part, _, comm = head.partition(" (")
    return [pid_part, comm, *tail.split()]


def proc(pid: int) -> Proc | None:
    """The live process ``pid`` (None when there is none, or only its zombie)."""
    stat = _stat(pid)
    if stat is None or stat[2] == "Z":
        return None
    return Proc(pid, int(stat[21]))


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(PROC / str(pid) / "cwd"))
    except OSError:
        return None


def all_pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def descendants(root: int) -> list[Proc]:
    """Every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        stat = _stat(pid)
        if stat is not None and stat[2] != "Z":
            children.setdefault(int(stat[3]), []).append(pid)
    out: list[Proc] = []
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        if (p := proc(pid)) is not None:
            out.append(p)
        todo.extend(children.get(pid, ()))
    return out


def is_program_on(pid: int, run_dir: Path) -> bool:
    """A zerotick program (service, venue, idle_poll) working in ``run_dir``: what supervisord starts
    there, and what stays behind if supervisord itself is killed."""
    if cwd(pid) != run_dir:
        return False
    args = cmdline(pid)
    return any(
        a == "-m" and i + 1 < len(args) and args[i + 1].startswith(PROGRAM_MODULES)
        for i, a in enumerate(args)
    )


def programs_on(run_dir: Path) -> list[Proc]:
    return [p for pid in all_pids() if is_program_on(pid, run_dir) and (p := proc(pid)) is not None]


def signal_all(procs: Iterable[Proc], sig: int) -> None:
    for p in procs:
        if p.alive():
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass


def wait_gone(procs: Iterable[Proc], timeout_s: float) -> list[Proc]:
    """Wait until every one has ended; returns those still alive at the deadline."""
    left = [p for p in procs if p.alive()]
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if p.alive()]
    return left


def end(procs: Iterable[Proc], term_wait_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL whatever is still there after ``term_wait_s``; returns once all are gone."""
    left = [p for p in procs if p.alive()]
    signal_all(left, signal.SIGTERM)
    left = wait_gone(left, term_wait_s)
    signal_all(left, signal.SIGKILL)
    wait_gone(left, 10.0)
