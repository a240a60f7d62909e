"""Configuration that decides trust: every spelling of Alpaca's live host needs the live flag,
run_dir is found from any working folder, the control token falls back to the run folder's file,
and the privileged endpoints exist only where they belong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.config import AlpacaConfig, ConfigError, Settings, is_alpaca_live, load_settings
from services.execution.service import LiveTradingRefused, check_live_guard

LIVE_SPELLINGS = [
    "https://api.alpaca.markets",
    "https://api.alpaca.markets:443",
    "https://API.ALPACA.MARKETS",
    "https://api.alpaca.markets.",
    "https://api.alpaca.markets..",
    "https://user@api.alpaca.markets",
    "https://user:pw@api.alpaca.markets:443/v2",
    "http://api.alpaca.markets:8080",
    "wss://Api.Alpaca.Markets/stream",
]
NOT_LIVE = [
    "https://paper-api.alpaca.markets",
    "https://api.alpaca.markets.evil.com",
    "https://evil.com/api.alpaca.markets",
    "https://api.alpaca.markets@evil.com",
    "ftp://api.alpaca.markets",
    "http://127.0.0.1:8765",
    "",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("ZT_", "APCA_")) or k == "ZEROTICK_CONFIG":
            monkeypatch.delenv(k, raising=False)


@pytest.mark.parametrize("url", LIVE_SPELLINGS)
def test_every_spelling_of_the_live_host_is_live(url: str) -> None:
    assert is_alpaca_live(url)


@pytest.mark.parametrize("url", NOT_LIVE)
def test_look_alikes_and_paper_are_not_live(url: str) -> None:
    assert not is_alpaca_live(url)


@pytest.mark.parametrize("url", [u for u in LIVE_SPELLINGS if u.startswith("http")])
def test_live_base_url_without_the_flag_is_refused(url: str) -> None:
    keys = {"key_id": "k", "secret_key": "s"}
    with pytest.raises(ValueError, match=r"alpaca\.live is false"):
        Settings(alpaca={**keys, "base_url": url})
    with pytest.raises(ValueError, match=r"alpaca\.live is false"):
        Settings(alpaca={**keys, "trade_stream_url": url.replace("http", "ws", 1) + "/stream"})
    assert Settings(alpaca={**keys, "base_url": url, "live": True}).venue == "live"
    # execution checks again when validation was bypassed
    sneaky = Settings.model_construct(
        alpaca=AlpacaConfig.model_construct(
            key_id=SecretStr("k"), secret_key=SecretStr("s"), base_url=url, live=False,
            trade_stream_url=None, stock_stream_url=None, crypto_stream_url=None, stock_feed="iex",
        )
    )  # fmt: skip
    with pytest.raises(LiveTradingRefused):
        check_live_guard(sneaky)


def test_paper_stays_paper_and_a_look_alike_is_custom() -> None:
    keys = {"key_id": "k", "secret_key": "s"}
    assert Settings(alpaca={**keys, "base_url": "https://PAPER-API.alpaca.markets:443"}).venue == "paper"
    evil = Settings(alpaca={**keys, "base_url": "https://api.alpaca.markets.evil.com"})
    assert evil.venue == "custom"
    check_live_guard(evil)  # not live: no flag needed


def test_up_refuses_a_live_spelling_without_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    monkeypatch.setenv("APCA_API_BASE_URL", "https://user@API.alpaca.markets.:443")
    with pytest.raises(ConfigError, match="--live"):
        load_settings()


def test_run_dir_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_dir = tmp_path / "etc"
    cfg_dir.mkdir()
    cfg = cfg_dir / "zt.toml"
    cfg.write_text('[zmq]\nrun_dir = "run"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings(cfg).zmq.run_dir == cfg_dir / "run"
    assert load_settings(Path("..") / "etc" / "zt.toml").zmq.run_dir == cfg_dir / "run"
    # the default run_dir too, when a config file is used
    bare = cfg_dir / "bare.toml"
    bare.write_text("")
    assert load_settings(bare).zmq.run_dir == cfg_dir / "run"
    # absolute stays; no config file: the working folder; an environment override wins
    cfg.write_text(f'[zmq]\nrun_dir = "{tmp_path / "abs"}"\n')
    assert load_settings(cfg).zmq.run_dir == tmp_path / "abs"
    assert load_settings().zmq.run_dir == elsewhere / "run"
    monkeypatch.setenv("ZT_ZMQ__RUN_DIR", str(tmp_path / "from-env"))
    assert load_settings(cfg).zmq.run_dir == tmp_path / "from-env"


def test_control_token_falls_back_to_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(zmq={"run_dir": tmp_path})
    assert s.control_token() == ""
    (tmp_path / "control.token").write_text("from-file\n")
    assert s.control_token() == "from-file"
    assert (
        Settings(zmq={"run_dir": tmp_path}, control={"token": "configured"}).control_token() == "configured"
    )
    monkeypatch.setenv("ZT_CONTROL__TOKEN", "from-env")
    assert Settings(zmq={"run_dir": tmp_path}).control_token() == "from-env"


def test_privileged_endpoints(tmp_path: Path) -> None:
    s = Settings(zmq={"run_dir": tmp_path})
    assert s.zmq.endpoint("execution", "orders") == f"ipc://{tmp_path}/execution.orders"
    assert s.zmq.endpoint("risk", "intents") == f"ipc://{tmp_path}/risk.intents"
    with pytest.raises(ValueError):
        s.zmq.endpoint("signal", "orders")
    tcp = Settings(zmq={"transport": "tcp", "tcp_base_port": 6000, "curve_dir": tmp_path}).zmq
    ports = {
        tcp.endpoint(svc, kind)
        for svc in ("market_data", "signal", "risk", "execution")
        for kind in ("pub", "rpc")
    }
    ports |= {tcp.endpoint("execution", "orders"), tcp.endpoint("risk", "intents")}
    assert len(ports) == 10  # no two sockets share a port
    assert tcp.endpoint("execution", "rpc") == "tcp://127.0.0.1:6007"  # existing numbers unchanged
