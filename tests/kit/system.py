"""Helpers for whole-system tests: free ports, a config file, the CLI, polling, cleanup by PID."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from tests.kit.waiting import wait_until
from zerotick.supervisor import Layout, supervisord_pid

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


# Below Linux's ephemeral range (32768-60999 by default): a port handed out here stays free until
# the program it is for binds it, since no outgoing connection takes it as its source port meanwhile
# (with bind(0) a test's own HTTP requests could, and a service then failed with EADDRINUSE).
_LISTEN_PORTS = range(20_000, 32_768)


def free_port() -> int:
    for _ in range(500):
        port = random.choice(_LISTEN_PORTS)
        if _bindable(port):
            return port
    raise AssertionError("no free port below the ephemeral range")


def free_port_block(n: int, avoid: tuple[int, ...] = (), host: str = "127.0.0.1") -> int:
    """A base port such that base .. base+n-1 are all free on ``host`` now and none is in ``avoid``."""
    for _ in range(100):
        base = free_port()
        ports = range(base, base + n)
        if not set(avoid) & set(ports) and all(_bindable(p, host) for p in ports):
            return base
    raise AssertionError(f"no {n} consecutive free ports")


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def write_toml(path: Path, doc: dict[str, Any]) -> Path:
    lines: list[str] = []
    for section, body in doc.items():
        if section == "signal" and "strategies" in body:
            for strat in body["strategies"]:
                lines.append("[[signal.strategies]]")
                lines.extend(f"{k} = {toml_value(v)}" for k, v in strat.items())
            body = {k: v for k, v in body.items() if k != "strategies"}
        if body:
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in body.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_")) and k != "ZEROTICK_CONFIG"
    }
    env.update(extra)
    return env


def zerotick(
    *args: str, env: dict[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerotick.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def status_json(config: Path, env: dict[str, str]) -> dict[str, Any]:
    out = zerotick("status", "--json", "--config", str(config), env=env)
    return orjson.loads(out.stdout)


def kill_pid(pid: int | None, sig: int = signal.SIGTERM, wait_s: float = 10) -> None:
    if not pid:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_logs(run_dir: Path) -> str:
    out = []
    for f in sorted((run_dir / "logs").glob("*.log")):
        out.append(f"===== {f.name}\n" + f.read_text(errors="replace")[-4000:])
    return "\n".join(out)


@contextmanager
def system_up(config: Path, env: dict[str, str], run_dir: Path) -> Iterator[dict[str, Any]]:
    """`zerotick up` with ``config``; yields `status --json` once every process is up and answering.
    Afterwards `zerotick down`, and every process it saw is stopped by its PID."""
    pids: set[int] = set()
    try:
        up = zerotick("up", "--config", str(config), env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        try:
            st = wait_until(
                lambda: (s := status_json(config, env))["all_up"] and s, 90, "every process up and answering"
            )
        except AssertionError:
            print(read_logs(run_dir))
            raise
        pids.update(p["pid"] for p in st["processes"].values() if p["pid"])
        yield st
    finally:
        sup = supervisord_pid(Layout(run_dir))
        for pid in (sup, *pids):  # a SIGSTOPped (hung) process cannot stop until it is continued
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        down = zerotick("down", "--config", str(config), env=env)
        kill_pid(sup)
        for pid in pids:  # supervisord stops them; any straggler is stopped by its PID
            kill_pid(pid)
        assert down.returncode == 0, down.stderr


def processes_pointing_at(folder: Path) -> list[int]:
    """Live processes (not zombies) whose working folder or command line is in ``folder``."""
    found = []
    text = str(folder)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                continue
            where = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if where == text or where.startswith(text + "/") or text in cmdline:
            found.append(int(entry.name))
    return found


def recorded_pids(run_dir: Path) -> list[int]:
    """The pids the run folder records: supervisord's pid file and every `<name>.lock`."""
    pids = []
    for f in [run_dir / "supervisord.pid", *run_dir.glob("*.lock")]:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(f.read_text().strip()))
    return pids


def assert_nothing_left(folder: Path, run_dir: Path) -> None:
    """No process of the test's run: none the run folder records is alive on it, and none works in or
    names ``folder`` (the test's temporary folder)."""
    alive = [
        pid
        for pid in recorded_pids(run_dir)
        if Path(f"/proc/{pid}").exists() and pid in processes_pointing_at(folder)
    ]
    assert not alive, f"recorded pids still running: {alive}"
    assert not processes_pointing_at(folder), f"processes left on {folder}: {processes_pointing_at(folder)}"
