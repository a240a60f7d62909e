"""`zerotick up`, start to finish: refuse while anything runs on the run folder, check everything that
can be checked before starting anything (``zerotick.preflight``), start supervisord, wait until every
program is ready or one has failed, and on any failure stop everything it started (verified by pid)
before it says why.

Exit codes: 0 every program ready; 1 already running; 2 the configuration or a pre-flight check
refused (nothing was started); 3 started, but a program failed or was not ready in time (everything
was stopped again)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common.config import Settings
from common.private_files import ensure_private_dir
from common.service import AlreadyRunning, RunLock
from zerotick import preflight, procs, supervisor
from zerotick.status import DEAD_STATES, collect_status

EXIT_OK = 0
EXIT_ALREADY_RUNNING = 1
EXIT_REFUSED = 2
EXIT_START_FAILED = 3
POLL_S = 0.25


def _say(line: str) -> None:
    print(f"zerotick up: {line}", file=sys.stderr)


def _redactor(settings: Settings) -> list[str]:
    secrets = [
        settings.sim.secret_key,
        settings.alpaca.key_id,
        settings.alpaca.secret_key,
        settings.control.token,
    ]
    return [s.get_secret_value() for s in secrets if s is not None and len(s.get_secret_value()) >= 4]


def _redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def up(settings: Settings, layout: supervisor.Layout, config_file: Path | None, wait_s: float) -> int:
    run_dir = layout.run_dir
    try:
        ensure_private_dir(run_dir)
    except OSError as exc:
        _say(f"cannot create run folder {run_dir}: {exc.strerror}")
        return EXIT_REFUSED
    try:
        lock = RunLock(run_dir, "up", log_refusal=False)  # one `up` at a time on a run folder
    except AlreadyRunning as exc:
        _say(f"already running (pid {exc.holder}: another `zerotick up` is starting on {run_dir})")
        return EXIT_ALREADY_RUNNING
    except OSError as exc:
        _say(f"cannot write to run folder {run_dir}: {exc.strerror}")
        return EXIT_REFUSED
    try:
        if (sup := supervisor.find_supervisord(layout)) is not None:
            _say(f"already running (pid {sup.pid}: supervisord of {run_dir}); `zerotick down` first")
            return EXIT_ALREADY_RUNNING
        if strays := procs.programs_on(run_dir):
            pids = ", ".join(str(p.pid) for p in strays)
            _say(
                f"already running (pid {pids}: programs on {run_dir} without supervisord); `zerotick down` first"
            )
            return EXIT_ALREADY_RUNNING
        problems = preflight.check(settings, config_file)
        if problems:
            secrets = _redactor(settings)
            for problem in problems:
                _say(_redact(problem, secrets))
            _say("nothing was started")
            return EXIT_REFUSED
        return _start(settings, layout, config_file, wait_s)
    finally:
        lock.release()


def _start(settings: Settings, layout: supervisor.Layout, config_file: Path | None, wait_s: float) -> int:
    sup: subprocess.Popen[bytes] | None = None
    try:
        supervisor.prepare(settings, layout, config_file)
        sup = supervisor.spawn(layout)
        supervisor.wait_answering(layout, sup)
        failures = wait_ready(settings, layout, sup, wait_s)
    except supervisor.StartError as exc:
        failures = [str(exc)]
    except OSError as exc:
        failures = [f"cannot start in run folder {layout.run_dir}: {exc.strerror or exc}"]
    except KeyboardInterrupt:
        failures = ["interrupted"]
    if not failures:
        return EXIT_OK
    known = []
    if sup is not None and (p := procs.proc(sup.pid)) is not None:
        known = [p, *procs.descendants(sup.pid)]
    stopped = supervisor.stop(layout, known=known)
    if sup is not None:
        sup.wait()  # reaped: no zombie of ours stays behind
    secrets = _redactor(settings)
    for failure in failures:
        _say(_redact(failure, secrets))
    left = [p.pid for p in stopped if p.alive()]
    if left:
        _say(f"could not stop pids {left}")
    else:
        _say(f"stopped everything it started ({len(stopped)} processes)")
    return EXIT_START_FAILED


def wait_ready(
    settings: Settings, layout: supervisor.Layout, sup: subprocess.Popen[bytes], wait_s: float
) -> list[str]:
    """Until every program is ready (empty list), or why not: a program supervisord gave up on
    (FATAL after START_RETRIES quick failures, or exited), supervisord itself gone, or programs still
    not ready after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        if sup.poll() is not None:
            return [f"supervisord exited ({sup.returncode}); see {layout.logs}/supervisord.log"]
        st = collect_status(settings, timeout_ms=300)
        rows = st["processes"]
        dead = [
            f"{name} failed to start: {r['reason']}"
            for name, r in rows.items()
            if r["supervisor"] in DEAD_STATES
        ]
        if dead:
            return dead
        if st["all_ready"]:
            return []
        if time.monotonic() > deadline:
            return [
                f"{name} not ready after {wait_s:g}s: {r['reason'] or r['supervisor']}"
                for name, r in rows.items()
                if not r["ready"]
            ]
        time.sleep(POLL_S)
