"""The CLI's answers when things are wrong: clear messages, non-zero exits, nothing started."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.kit.system import clean_env, write_toml, zerotick


def _cfg(tmp_path: Path, **extra: object) -> Path:
    return write_toml(tmp_path / "zt.toml", {"zmq": {"run_dir": str(tmp_path / "run")}, **extra})  # type: ignore[arg-type]


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    out = zerotick("status", "--json", "--config", str(_cfg(tmp_path)), env=clean_env())
    assert out.returncode == 1
    st = orjson.loads(out.stdout)
    assert st["all_up"] is False and st["supervisord_pid"] is None
    assert all(p["supervisor"] == "NOT RUNNING" and not p["up"] for p in st["processes"].values())


def test_bad_config_value_is_refused_naming_the_field(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, risk={"max_order_qty": "-5"})
    out = zerotick("up", "--config", str(cfg), env=clean_env())
    assert out.returncode == 2
    assert "risk.max_order_qty" in out.stderr
    assert not (tmp_path / "run" / "supervisord.pid").exists()


def test_unknown_strategy_kind_is_refused_at_start(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, signal={"strategies": [{"name": "x", "kind": "nope", "symbols": ["AAPL"]}]})
    out = zerotick("run", "signal", "--config", str(cfg), env=clean_env(), timeout=60)
    assert out.returncode != 0
    assert "unknown strategy kind 'nope'" in out.stderr


def test_live_needs_the_explicit_flag(tmp_path: Path) -> None:
    env = clean_env(APCA_API_KEY_ID="AKXXXX", APCA_API_SECRET_KEY="not-a-real-secret", ZT_ALPACA__LIVE="true")
    out = zerotick("up", "--config", str(_cfg(tmp_path)), env=env)
    assert out.returncode == 2
    assert "--live" in out.stderr
    assert "not-a-real-secret" not in out.stdout + out.stderr


def test_control_of_a_stopped_service_fails_cleanly(tmp_path: Path) -> None:
    out = zerotick(
        "ctl", "risk", "status", "--timeout-ms", "200", "--config", str(_cfg(tmp_path)), env=clean_env()
    )
    assert out.returncode == 1
    assert "risk:" in out.stderr
    bad = zerotick("ctl", "risk", "status", "oops", "--config", str(_cfg(tmp_path)), env=clean_env())
    assert bad.returncode == 2 and "key=value" in bad.stderr
