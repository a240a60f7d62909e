"""What qualifies every benchmark figure on a shared machine: CPU model, load, steal time, and the
memory of the processes measured (resident set, and whether numba is loaded in them)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat, in clock ticks."""

    total: int
    steal: int
    idle: int

    @classmethod
    def now(cls) -> CpuTimes:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return cls(0, 0, 0)
        # user nice system idle iowait irq softirq steal (guest time is already inside user)
        total = sum(fields[:8])
        steal = fields[7] if len(fields) > 7 else 0
        return cls(total, steal, fields[3] + (fields[4] if len(fields) > 4 else 0))

    def since(self, earlier: CpuTimes) -> dict[str, float]:
        """Steal and busy time between two readings, in % of all CPU time."""
        span = self.total - earlier.total
        if span <= 0:
            return {"steal_pct": 0.0, "busy_pct": 0.0}
        return {
            "steal_pct": round(100 * (self.steal - earlier.steal) / span, 2),
            "busy_pct": round(100 * (span - (self.idle - earlier.idle)) / span, 2),
        }


def code_version() -> dict[str, object]:
    """The commit the measured code is at, and whether the work tree differed from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "modified": None}
    return {"commit": commit, "modified": bool(changes.strip())}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) ``pid`` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    """Resident set size (VmRSS) of ``pid`` in KiB, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def loads_numba(pid: int) -> bool | None:
    """Whether numba's compiled extension is mapped into ``pid`` (so the process imported numba)."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return any("/numba/" in line for line in maps)
    except OSError:
        return None


def process_memory(pids: dict[str, int]) -> dict[str, dict[str, object]]:
    return {
        name: {"pid": pid, "rss_mib": _mib(rss_kib(pid)), "numba": loads_numba(pid)}
        for name, pid in pids.items()
    }


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def host_info() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "loadavg": loadavg(),
    }
