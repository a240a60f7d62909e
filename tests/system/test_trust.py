"""Trust boundaries of a running system: the CLI finds it from any working folder, the run folder and
everything in it are owner-only, and a control command with a wrong token is refused."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest

from tests.kit.system import clean_env, free_port, kill_pid, read_logs, write_toml, zerotick
from tests.kit.waiting import wait_until
from zerotick.supervisor import Layout, process_info, supervisord_pid


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.timeout(240)
def test_cli_finds_the_system_from_any_folder_and_the_run_folder_is_owner_only(tmp_path: Path) -> None:
    etc, here, there = tmp_path / "etc", tmp_path / "here", tmp_path / "there"
    for d in (etc, here, there):
        d.mkdir()
    config = write_toml(
        etc / "zt.toml",
        {
            "sim": {"port": free_port(), "metrics_port": 0, "stocks": ["AAPL"], "crypto": ["BTC/USD"],
                    "message_rate": 5.0},
            "zmq": {"run_dir": "run"},  # relative: to the config file's folder
            "metrics": {"base_port": 0},
            "market_data": {"stocks": ["AAPL"], "crypto": ["BTC/USD"]},
        },
    )  # fmt: skip
    run_dir = etc / "run"
    env = clean_env()
    rel_config = str(Path("..") / "etc" / "zt.toml")
    pids: set[int] = set()
    try:
        up = zerotick("up", "--config", rel_config, env=env, cwd=here)
        assert up.returncode == 0, up.stdout + up.stderr

        def all_up() -> dict[str, object] | None:
            out = zerotick("status", "--json", "--config", str(config), env=env, cwd=there)
            st = orjson.loads(out.stdout)
            return st if st["all_up"] else None

        try:
            st = wait_until(all_up, 90, "every process up, seen from another folder")
        except AssertionError:
            print(read_logs(run_dir))
            raise
        pids.update(p["pid"] for p in process_info(Layout(run_dir)).values() if p["pid"])
        assert st["supervisord_pid"] == supervisord_pid(Layout(run_dir))

        # owner-only: the folder, the secrets, the sockets, the generated config and every log
        assert _mode(run_dir) == 0o700 and _mode(run_dir / "logs") == 0o700
        for name in ("control.token", "peer.key", "supervisord.conf", "execution.orders", "risk.intents",
                     "execution.rpc", "supervisor.sock"):  # fmt: skip
            assert _mode(run_dir / name) & 0o077 == 0, name
        logs = list((run_dir / "logs").glob("*.log"))
        assert logs and all(_mode(f) & 0o077 == 0 for f in logs)

        # the CLI reads the generated token; a wrong one is refused and not echoed
        ok = zerotick("ctl", "execution", "cancel_all", "--config", str(config), env=env, cwd=there)
        assert ok.returncode == 0, ok.stderr
        wrong_env = clean_env(ZT_CONTROL__TOKEN="not-the-token")
        wrong = zerotick("ctl", "execution", "cancel_all", "--config", str(config), env=wrong_env, cwd=there)
        assert wrong.returncode == 1 and "control token" in wrong.stderr
        token = (run_dir / "control.token").read_text().strip()
        assert token not in wrong.stdout + wrong.stderr + read_logs(run_dir)
        assert "not-the-token" not in read_logs(run_dir)

        down = zerotick("down", "--config", str(config), env=env, cwd=there)
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
        assert supervisord_pid(Layout(run_dir)) is None
    finally:
        kill_pid(supervisord_pid(Layout(run_dir)))
        for pid in pids:
            kill_pid(pid)
