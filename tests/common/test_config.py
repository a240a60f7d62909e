from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith(("ZT_", "APCA_")) or k == "ZEROTICK_CONFIG":
            monkeypatch.delenv(k, raising=False)


def test_defaults_trade_the_simulator() -> None:
    s = load_settings()
    assert s.venue == "sim"
    assert s.trading_base_url() == "http://127.0.0.1:8765"
    assert s.trade_stream_url() == "ws://127.0.0.1:8765/stream"
    assert s.stock_stream_url() == "ws://127.0.0.1:8765/v2/iex"
    assert s.crypto_stream_url() == "ws://127.0.0.1:8765/v1beta3/crypto/us"


def test_alpaca_env_names_select_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "PKTESTKEY")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "supersecretvalue")
    s = load_settings()
    assert s.venue == "paper"
    assert s.trading_base_url() == "https://paper-api.alpaca.markets"
    assert s.trade_stream_url() == "wss://paper-api.alpaca.markets/stream"
    assert s.stock_stream_url() == "wss://stream.data.alpaca.markets/v2/iex"
    assert s.credentials() == ("PKTESTKEY", "supersecretvalue")
    assert "supersecretvalue" not in repr(s)


def test_live_requires_explicit_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "AK")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "secret1234")
    monkeypatch.setenv("APCA_API_BASE_URL", "https://api.alpaca.markets/")
    with pytest.raises(ConfigError, match="LIVE"):
        load_settings()
    monkeypatch.setenv("ZT_ALPACA__LIVE", "true")
    assert load_settings().venue == "live"


def test_file_then_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "zt.toml"
    cfg.write_text(
        '[risk]\nmax_order_qty = "7"\n[sim]\nport = 9999\n'
        '[alpaca]\nbase_url = "http://127.0.0.1:9999"\nstock_stream_url = "ws://127.0.0.1:9999/v2/test"\n'
    )
    monkeypatch.setenv("ZT_RISK__MAX_ORDER_QTY", "9")
    s = load_settings(cfg)
    assert str(s.risk.max_order_qty) == "9"
    assert s.sim.port == 9999
    assert s.trading_base_url() == "http://127.0.0.1:9999"
    assert s.stock_stream_url() == "ws://127.0.0.1:9999/v2/test"


@pytest.mark.parametrize(
    "env, field",
    [
        ({"ZT_RISK__MAX_ORDER_QTY": "-1"}, "risk.max_order_qty"),
        ({"ZT_ZMQ__TRANSPORT": "carrier-pigeon"}, "zmq.transport"),
        ({"ZT_ALPACA__BASE_URL": "ftp://x"}, "alpaca.base_url"),
        ({"APCA_API_KEY_ID": "only-the-key"}, "both APCA_API_KEY_ID"),
        # money whose nanos would not fit int64 (the account's equity overflowed the wire)
        ({"ZT_SIM__STARTING_CASH": "1000000000000"}, "sim.starting_cash"),
        ({"ZT_RISK__MAX_GROSS_EXPOSURE": "1e12"}, "risk.max_gross_exposure"),
    ],
)
def test_invalid_values_name_the_field(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert field in str(exc.value)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "zt.toml"
    cfg.write_text("[risk]\nmax_order_qyt = 5\n")
    with pytest.raises(ConfigError, match="max_order_qyt"):
        load_settings(cfg)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_every_endpoint_configurable_with_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "secret-value")
    monkeypatch.setenv("APCA_API_BASE_URL", "http://127.0.0.1:18000")
    monkeypatch.setenv("ZT_ALPACA__STOCK_STREAM_URL", "ws://127.0.0.1:18001/v2/sip")
    monkeypatch.setenv("ZT_ALPACA__CRYPTO_STREAM_URL", "ws://127.0.0.1:18002/v1beta3/crypto/us")
    monkeypatch.setenv("ZT_ALPACA__TRADE_STREAM_URL", "ws://127.0.0.1:18003/stream")
    s = load_settings()
    assert s.venue == "custom"
    assert s.trading_base_url() == "http://127.0.0.1:18000"
    assert s.stock_stream_url() == "ws://127.0.0.1:18001/v2/sip"
    assert s.crypto_stream_url() == "ws://127.0.0.1:18002/v1beta3/crypto/us"
    assert s.trade_stream_url() == "ws://127.0.0.1:18003/stream"
