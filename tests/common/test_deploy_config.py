"""Addresses per service: each binds one host and is reached at another (zmq.hosts.<service>,
sim.connect_host); defaults keep the single-host ipc layout; environment overrides reach the nested
tables; tcp without CURVE keys is refused at load time with what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.config import SERVICES, ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("ZT_", "APCA_")) or k == "ZEROTICK_CONFIG":
            monkeypatch.delenv(k, raising=False)


def test_defaults_are_one_host_over_ipc(tmp_path: Path) -> None:
    z = Settings(zmq={"run_dir": tmp_path}).zmq
    for svc in SERVICES:
        for kind in ("pub", "rpc"):
            assert z.endpoint(svc, kind) == z.bind_endpoint(svc, kind) == f"ipc://{tmp_path}/{svc}.{kind}"
    tcp = Settings(zmq={"transport": "tcp", "curve_dir": tmp_path, "tcp_base_port": 7000}).zmq
    assert tcp.bind_endpoint("risk", "intents") == tcp.endpoint("risk", "intents") == "tcp://127.0.0.1:7010"


def test_each_service_binds_one_host_and_is_reached_at_another(tmp_path: Path) -> None:
    cfg = tmp_path / "zt.toml"
    cfg.write_text(
        '[zmq]\ntransport = "tcp"\ncurve_dir = "keys"\ntcp_base_port = 6000\ntcp_host = "10.0.0.9"\n'
        '[zmq.hosts.risk]\nbind = "0.0.0.0"\nconnect = "risk"\n'
        '[zmq.hosts.execution]\nconnect = "exec.example"\n'
        '[zmq.hosts.signal]\nbind = "::"\nconnect = "fd00::2"\n'
    )
    z = load_settings(cfg).zmq
    assert z.curve_dir == tmp_path / "keys"  # relative to the config file, like run_dir
    assert z.bind_endpoint("risk", "rpc") == "tcp://0.0.0.0:6005"
    assert z.endpoint("risk", "rpc") == "tcp://risk:6005"
    assert z.endpoint("risk", "intents") == "tcp://risk:6010"
    assert z.bind_endpoint("execution", "orders") == "tcp://10.0.0.9:6011"  # no bind of its own
    assert z.endpoint("execution", "orders") == "tcp://exec.example:6011"
    assert z.bind_endpoint("signal", "pub") == "tcp://[::]:6002"
    assert z.endpoint("signal", "pub") == "tcp://[fd00::2]:6002"
    assert z.endpoint("market_data", "pub") == z.bind_endpoint("market_data", "pub") == "tcp://10.0.0.9:6000"


def test_environment_overrides_reach_the_nested_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "zt.toml"
    cfg.write_text('[zmq]\ntransport = "tcp"\ncurve_dir = "keys"\n[zmq.hosts.risk]\nconnect = "risk"\n')
    monkeypatch.setenv("ZT_ZMQ__HOSTS__RISK__CONNECT", "10.77.0.2")
    monkeypatch.setenv("ZT_ZMQ__HOSTS__EXECUTION__BIND", "0.0.0.0")
    monkeypatch.setenv("ZT_ZMQ__CURVE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ZT_SIM__CONNECT_HOST", "venue")
    s = load_settings(cfg)
    assert s.zmq.connect_host("risk") == "10.77.0.2"
    assert s.zmq.bind_host("execution") == "0.0.0.0"
    assert s.zmq.curve_dir == tmp_path / "elsewhere"
    assert s.trading_base_url() == "http://venue:8765"


def test_the_venue_binds_one_host_and_is_reached_at_another() -> None:
    assert Settings().trading_base_url() == "http://127.0.0.1:8765"  # unchanged default
    s = Settings(sim={"host": "0.0.0.0", "connect_host": "venue", "port": 8765})
    assert s.trading_base_url() == "http://venue:8765"
    assert s.trade_stream_url() == "ws://venue:8765/stream"
    assert s.stock_stream_url() == "ws://venue:8765/v2/iex"
    assert s.crypto_stream_url() == "ws://venue:8765/v1beta3/crypto/us"
    assert Settings(sim={"connect_host": "fd00::1"}).trading_base_url() == "http://[fd00::1]:8765"


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[zmq.hosts.riks]\nbind = "0.0.0.0"\n', "zmq.hosts.riks"),  # not a service
        ("[zmq.hosts.risk]\nport = 1\n", "zmq.hosts.risk.port"),  # not a key of a host
        ('[sim]\nconnect = "venue"\n', "sim.connect"),
    ],
)
def test_unknown_keys_are_refused(tmp_path: Path, toml: str, field: str) -> None:
    cfg = tmp_path / "zt.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_settings(cfg)


def test_tcp_without_keys_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "zt.toml"
    cfg.write_text('[zmq]\ntransport = "tcp"\n')
    with pytest.raises(ConfigError, match=r"zerotick keys generate") as err:
        load_settings(cfg)
    assert "zmq" in str(err.value) and "curve_dir" in str(err.value)
