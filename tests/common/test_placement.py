"""host.cpu_affinity: validated in the config, applied to every thread of a service process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from common.config import ConfigError, load_settings
from common.placement import check_cpus, pin_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "message"),
    [([], "empty list"), ([-1], "0..4095"), ([5000], "0..4095"), ([0, 0], "listed twice")],
)
def test_bad_affinity_is_refused_with_the_field(value: list[int], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(host={"cpu_affinity": value})
    assert "host.cpu_affinity" in str(exc.value) and message in str(exc.value)


def test_every_thread_already_running_is_moved() -> None:
    """In a child process: a thread started before the pin ends up on the pinned CPU too."""
    cpu = max(os.sched_getaffinity(0))
    code = textwrap.dedent(f"""
        import os, threading, time
        from common.placement import check_cpus, pin_process
        started = threading.Event()
        seen = {{}}
        def worker():
            started.set()
            time.sleep(0.3)
            seen["cpus"] = os.sched_getaffinity(0)
        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        now = pin_process([{cpu}])
        t.join()
        late = []
        t2 = threading.Thread(target=lambda: late.append(os.sched_getaffinity(0)))
        t2.start(); t2.join()
        print(sorted(now), sorted(seen["cpus"]), sorted(late[0]))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"[{cpu}]"] * 3


@pytest.mark.parametrize("call", [pin_process, check_cpus])
def test_a_cpu_this_process_may_not_use_is_a_config_error(call: Callable[[list[int]], object]) -> None:
    """check_cpus at start (a service refuses at once), pin_process once started: neither changes
    anything when it refuses."""
    missing = max(os.sched_getaffinity(0)) + 64
    before = os.sched_getaffinity(0)
    with pytest.raises(ConfigError) as exc:
        call([min(before), missing])
    assert str(exc.value).startswith("host.cpu_affinity: cannot run on CPUs [")
    assert str(missing) in str(exc.value)
    assert os.sched_getaffinity(0) == before
    check_cpus(sorted(before))  # what it may use passes


@pytest.mark.parametrize("value", [-21, 20])
def test_nice_out_of_range_is_refused_with_the_field(value: int) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(host={"nice": {"risk": value}})
    assert "host.nice.risk" in str(exc.value)


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30,
    )  # fmt: skip


def test_every_thread_gets_the_niceness() -> None:
    out = _child("""
        import os, threading, time
        from common.placement import renice_process
        started = threading.Event()
        seen = {}
        def worker():
            started.set()
            time.sleep(0.3)
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        now = renice_process(7)
        t.join()
        print(now, seen["nice"])
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7", "7"]


def test_a_niceness_the_kernel_refuses_is_a_config_error() -> None:
    """Lowering niceness needs CAP_SYS_NICE: an unprivileged process (root drops to nobody) is refused."""
    out = _child("""
        import os
        from common.config import ConfigError
        from common.placement import renice_process
        if os.geteuid() == 0:
            os.setresuid(65534, 65534, 65534)
        try:
            renice_process(-5)
        except ConfigError as exc:
            print(exc)
        print("now", os.getpriority(os.PRIO_PROCESS, 0))
    """)
    assert out.returncode == 0, out.stderr
    first, last = out.stdout.splitlines()
    assert first.startswith("host.nice: cannot set niceness -5 here (now 0)") and "CAP_SYS_NICE" in first
    assert last == "now 0"
