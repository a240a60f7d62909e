"""A bad configuration through the real CLI: exit 2, one line per problem naming where it is, no
traceback, no secret; and ``sim.port = 0`` (ephemeral) running the whole system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kit.deploy import Processes
from tests.kit.system import (
    clean_env,
    free_port,
    kill_pid,
    system_up,
    write_toml,
    zerotick,
)
from tests.kit.waiting import wait_until

SECRET = "s3cr3t-never-printed-42"


def _cfg(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zt.toml"
    path.write_text(f'[zmq]\nrun_dir = "{tmp_path / "run"}"\n{text}')
    return path


def _refused(out: Any, tmp_path: Path) -> list[str]:
    """The CLI refused: exit 2, no traceback, nothing started; its stderr lines."""
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "run" / "supervisord.pid").exists()
    return out.stderr.strip().splitlines()


@pytest.mark.parametrize("command", ["status", "up"])
def test_toml_syntax_error_is_one_line_with_file_line_and_column(tmp_path: Path, command: str) -> None:
    cfg = _cfg(tmp_path, "[risk\nmax_order_qty = 5\n")
    lines = _refused(zerotick(command, "--config", str(cfg), env=clean_env()), tmp_path)
    assert lines == [
        f"config error: {cfg}:3:6: TOML syntax error: Expected ']' at the end of a table declaration"
    ]


def test_unparsable_environment_value_names_the_variable(tmp_path: Path) -> None:
    env = clean_env(ZT_SIGNAL__STRATEGIES="not json", ZT_ZMQ__TRANSPORT="tcp")  # the latter is fine
    lines = _refused(zerotick("status", "--config", str(_cfg(tmp_path, "")), env=env), tmp_path)
    assert len(lines) == 1
    assert lines[0].startswith("config error: environment variable ZT_SIGNAL__STRATEGIES: not valid JSON")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[risk]\nmax_order_qty = "1e-10"\n', "risk.max_order_qty: 0.0000000001 is not exact"),
        ("[risk]\nmax_order_qty = 1e-10\n", "it would become 0"),
        ('[risk.symbols.AAPL]\nmax_position_qty = "2.0000000005"\n', "it would become 2"),
        ('[sim]\nstarting_cash = "0.0000000001"\n', "sim.starting_cash: 0.0000000001 is not exact"),
        ('[kill_switch.drawdown]\nlimit = "0"\n', "kill_switch.drawdown.limit: must be positive"),
    ],
)
def test_amounts_that_do_not_survive_nanos_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    lines = _refused(zerotick("up", "--config", str(_cfg(tmp_path, text)), env=clean_env()), tmp_path)
    assert len(lines) == 1 and lines[0].startswith("config error: ") and expected in lines[0]


def test_one_line_per_field_and_no_secret_echoed(tmp_path: Path) -> None:
    text = f'[alpaca]\nkey_id = 12345\nsecret_key = "{SECRET}"\nsecret_kee = "{SECRET}"\n[risk]\nmax_order_qty = "-1"\n'
    env = clean_env(APCA_API_SECRET_KEY=SECRET)
    out = zerotick("status", "--config", str(_cfg(tmp_path, text)), env=env)
    lines = _refused(out, tmp_path)
    assert SECRET not in out.stdout + out.stderr
    assert sorted(lines) == [
        "config error: alpaca.key_id: Input should be a valid string",
        "config error: alpaca.secret_kee: Extra inputs are not permitted",
        "config error: risk.max_order_qty: must be positive",
    ]


def test_a_service_refuses_port_zero_when_no_port_is_recorded(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "[sim]\nport = 0\n")
    out = zerotick("run", "execution", "--config", str(cfg), env=clean_env())
    lines = _refused(out, tmp_path)
    assert len(lines) == 1 and lines[0].startswith("config error: sim.port: 0 (ephemeral)")


@pytest.mark.timeout(180)
def test_sim_port_zero_runs_the_system_on_a_port_chosen_by_zerotick_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = write_toml(
        tmp_path / "zerotick.toml",
        {
            "sim": {"port": 0, "metrics_port": 0, "stocks": ["AAPL"], "crypto": []},
            "zmq": {"run_dir": str(run_dir)},
            "metrics": {"base_port": 0},
            "market_data": {"stocks": ["AAPL"], "crypto": []},
        },
    )
    with system_up(config, clean_env(), run_dir) as st:
        port = int((run_dir / "sim.port").read_text())
        assert port > 0
        assert st["processes"]["sim"]["rpc"] == "ok"
        execution = st["processes"]["execution"]["service"]
        assert execution["trading_base_url"] == f"http://127.0.0.1:{port}"
        assert st["processes"]["market_data"]["service"]["feeds"]["stocks"]["url"].startswith(
            f"ws://127.0.0.1:{port}/"
        )


def _ctl_status(service: str, config: Path, env: dict[str, str]) -> dict[str, Any]:
    out = zerotick("ctl", service, "status", "--config", str(config), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return orjson.loads(out.stdout)


@pytest.mark.timeout(180)
def test_rejected_keys_show_the_reason_in_status_without_log_floods(tmp_path: Path) -> None:
    """`zerotick up` refuses rejected keys before starting anything; services started on their own
    (`zerotick run`, as each container of the compose deployment is) say why they are not ready, and
    log it once, not per retry."""
    port = free_port()
    venue = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
        text=True,
    )
    run_dir = tmp_path / "run"
    origin = f"127.0.0.1:{port}"
    config = write_toml(
        tmp_path / "zerotick.toml",
        {
            "alpaca": {
                "base_url": f"http://{origin}",
                "stock_stream_url": f"ws://{origin}/v2/iex",
                "crypto_stream_url": f"ws://{origin}/v1beta3/crypto/us",
            },
            "zmq": {"run_dir": str(run_dir)},
            "metrics": {"base_port": 0},
            "market_data": {"stocks": ["AAPL"], "crypto": []},
            "log": {"format": "json"},
        },
    )
    env = clean_env(APCA_API_KEY_ID="PKWRONGKEY", APCA_API_SECRET_KEY=SECRET)
    procs = Processes(tmp_path / "logs")
    try:
        assert venue.stdout is not None and venue.stdout.readline().startswith("zerotick-sim ready")
        up = zerotick("up", "--config", str(config), env=env)
        assert up.returncode == 2, up.stdout + up.stderr
        assert f"Alpaca rejected the API keys (401) at http://{origin}" in up.stderr
        assert SECRET not in up.stdout + up.stderr

        for service in ("execution", "risk", "market_data"):
            procs.start(service, ["run", service, "--config", str(config)], env)
        execution = wait_until(
            lambda: (s := _ctl_status("execution", config, env))["uptime_s"] > 5 and not procs.dead() and s,
            60,
            "execution up for 5 s (risk has asked for its snapshot every second)",
        )
        assert execution["ready"] is False
        assert execution["not_ready_reason"].startswith(
            f"auth_rejected: the venue at 127.0.0.1 rejected the API keys (HTTP 401) at http://{origin}; check APCA_API_KEY_ID/APCA_API_SECRET_KEY"
        )
        assert execution["venue_link"]["kind"] == "auth_rejected"
        md = _ctl_status("market_data", config, env)
        assert md["feeds"]["stocks"]["link"]["kind"] == "auth_rejected"
        assert SECRET not in str(execution) + str(md)
        logs = procs.tails_full()
        assert SECRET not in logs
        assert logs.count("rejected the API keys (HTTP 401)") == 1  # execution: once, not per retry
        assert logs.count("execution's snapshot not usable") == 1  # risk: once, not every second
    finally:
        procs.stop_all()
        kill_pid(venue.pid)
