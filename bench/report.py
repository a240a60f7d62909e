"""Shared output of the system benchmarks: a percentile table (p50/p90/p99/max with n) with each
series' target beside it, and a one-line note on the host's load while the series ran."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.wire_to_wire import percentile


def loadavg() -> str:
    """The 1/5/15-minute load averages (the machine is shared: they qualify every figure)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def host_note(start_load: str) -> str:
    return f"host: {os.cpu_count()} cpus, loadavg {start_load} at the start, {loadavg()} at the end"


@dataclass
class Series:
    """One measured series: samples in ``unit`` (successes only) and the trials that failed."""

    name: str
    unit: str = "ms"
    target: str = ""
    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def row(self) -> str:
        s = sorted(self.samples)
        if not s:
            cells = "  ".join(f"{'-':>8}" for _ in range(4))
        else:
            vals = (percentile(s, 0.5), percentile(s, 0.9), percentile(s, 0.99), s[-1])
            cells = "  ".join(f"{v:8.1f}" for v in vals)
        return f"  {self.name:<44} {len(s):>4} {len(self.failures):>6}  {cells}  {self.unit:<4} {self.target}"


def table(series: Sequence[Series]) -> str:
    head = f"  {'series':<44} {'n':>4} {'failed':>6}  {'p50':>8}  {'p90':>8}  {'p99':>8}  {'max':>8}  unit target"
    lines = [head] + [s.row() for s in series]
    for s in series:
        lines += [f"  FAILED {s.name}: {why}" for why in s.failures]
    return "\n".join(lines)
