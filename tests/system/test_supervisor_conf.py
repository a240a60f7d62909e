"""The generated supervisord configuration: programs, order, no secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import Settings
from zerotick.supervisor import START_RETRIES, START_SECS, Layout, log_tail, programs, render_conf


def _priorities(conf: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"\[program:(\w+)\][^\[]*?priority=(\d+)", conf, re.S)}


def test_sim_venue_all_programs_in_safe_start_stop_order(tmp_path: Path) -> None:
    s = Settings(zmq={"run_dir": tmp_path})
    conf = render_conf(s, Layout(tmp_path), tmp_path / "zt.toml")
    prio = _priorities(conf)
    assert set(prio) == {"sim", "market_data", "signal", "risk", "execution"}
    # started in ascending order, stopped in descending: signal stops first, execution after risk, venue last
    assert prio["sim"] < prio["execution"] < prio["risk"] < prio["signal"]
    assert f"--config {tmp_path / 'zt.toml'}" in conf
    assert "umask=077" in conf  # logs and sockets supervisord creates are owner-only


def test_keys_mean_no_embedded_venue_and_no_secret_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "PKREALKEY")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "very-secret-value")
    s = Settings(zmq={"run_dir": tmp_path})
    conf = render_conf(s, Layout(tmp_path), None)
    assert "sim" not in programs(s)
    assert "very-secret-value" not in conf and "PKREALKEY" not in conf


def test_idle_poll_program_only_when_configured(tmp_path: Path) -> None:
    assert "idle_poll" not in programs(Settings(zmq={"run_dir": tmp_path}))
    s = Settings(zmq={"run_dir": tmp_path}, host={"idle_poll": True})
    assert programs(s)[0] == "idle_poll"
    conf = render_conf(s, Layout(tmp_path), None)
    assert "-m zerotick.idle_poll" in conf
    assert _priorities(conf)["idle_poll"] < _priorities(conf)["sim"]


@pytest.mark.skipif(
    not os.access("/dev/cpu_dma_latency", os.W_OK), reason="needs root and /dev/cpu_dma_latency"
)
def test_idle_poll_holds_the_latency_request_until_stopped() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zerotick.idle_poll"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "holding /dev/cpu_dma_latency at 0" in proc.stdout.readline()
        fds = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        assert "/dev/cpu_dma_latency" in fds
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_program_that_dies_at_start_is_given_up_after_a_few_tries(tmp_path: Path) -> None:
    conf = render_conf(Settings(zmq={"run_dir": tmp_path}), Layout(tmp_path), None)
    assert START_SECS >= 5 and 1 <= START_RETRIES <= 3  # longer than an import; FATAL in seconds, not never
    assert conf.count(f"startsecs={START_SECS}\n") == conf.count("[program:")
    assert conf.count(f"startretries={START_RETRIES}\n") == conf.count("[program:")
    assert "nodaemon=true" in conf  # `zerotick up` starts it in its own session and knows its pid


def test_log_tail_keeps_what_went_wrong(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "risk.log").write_text(
        '{"level": "INFO", "msg": "service ready"}\n'
        '{"level": "ERROR", "msg": "venue unreachable", "exc": "Traceback...\\nOSError: refused"}\n'
        '{"level": "INFO", "msg": "service stopping"}\n'
        "Traceback (most recent call last):\n"
        "ValueError: bad\n"
    )
    assert log_tail(Layout(tmp_path), "risk", max_lines=3) == [
        "venue unreachable: OSError: refused",
        "Traceback (most recent call last):",
        "ValueError: bad",
    ]
    assert log_tail(Layout(tmp_path), "signal") == []  # no log yet
