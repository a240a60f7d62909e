"""The assembled venue: `python -m simulator` as a process, and build_app with S1's trading side."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from simulator.app import (
    READY_PREFIX,
    VenueServer,
    _parse_args,
    build_app,
    parse_ready_line,
    sim_config_from_args,
)
from tests.kit.md_client import MdClient
from tests.kit.md_venue import KEY, SECRET, sim_config

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZT_", "APCA_", "ZEROTICK_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(tmp_path)
    return env


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(url, data=None if body is None else orjson.dumps(body))
    with urllib.request.urlopen(req, timeout=10) as resp:
        return orjson.loads(resp.read())


def test_cli_args_override_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("ZT_", "ZEROTICK_")):
            monkeypatch.delenv(k)
    cfg_file = tmp_path / "zt.toml"
    cfg_file.write_text('[sim]\nport = 9999\nseed = 1\nmessage_rate = 5.0\nstocks = ["AAPL"]\n')
    monkeypatch.setenv("ZEROTICK_CONFIG", str(cfg_file))  # load_settings sets it; restored afterwards
    cfg, _ = sim_config_from_args(_parse_args(["--config", str(cfg_file), "--port", "0", "--rate", "123.5"]))
    assert (cfg.port, cfg.seed, cfg.message_rate, cfg.stocks) == (0, 1, 123.5, ["AAPL"])
    assert parse_ready_line(f"{READY_PREFIX} rest=http://h:1 crypto=ws://h:1/v1beta3/crypto/us") == {
        "rest": "http://h:1",
        "crypto": "ws://h:1/v1beta3/crypto/us",
    }
    with pytest.raises(ValueError, match="ready line"):
        parse_ready_line("something else")


def test_process_prints_a_ready_line_serves_md_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--rate",
            "500",
            "--metrics-port",
            "0",
            "--seed",
            "3",
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        timer = threading.Timer(20, proc.kill)
        timer.start()
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        timer.cancel()
        urls = parse_ready_line(line)
        assert set(urls) == {"rest", "trade_updates", "iex", "sip", "test", "crypto", "metrics"}
        assert urls["test"] == urls["rest"].replace("http://", "ws://") + "/v2/test"
        assert urls["trade_updates"].endswith("/stream") and urls["metrics"] == "off"
        assert http_json(urls["rest"] + "/sim/health")["status"] == "ok"

        async def md() -> list[dict[str, Any]]:
            c = await MdClient.open(urls["crypto"], use_json=True)
            assert await c.login("zerotick-sim-key", "zerotick-sim-secret") == [
                {"T": "success", "msg": "authenticated"}
            ]
            await c.subscribe(quotes=["*"])
            got = await c.recv()
            await c.close()
            return got

        assert asyncio.run(md())[0]["T"] == "q"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        _, err = proc.communicate(timeout=5)
        assert "zerotick-sim-secret" not in err
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_bad_arguments_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "simulator", "--port", "70000"],
        cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 2 and "port" in res.stderr


def test_build_app_serves_trading_and_market_data_on_one_port() -> None:
    from alpaca.trading.client import TradingClient

    async def body() -> None:
        server = VenueServer(sim_config(message_rate=200.0), build_app(sim_config(message_rate=200.0)))
        await server.start()
        try:
            client = TradingClient(KEY, SECRET, url_override=server.rest_url)
            account = await asyncio.to_thread(client.get_account)
            assert account.status is not None
            c = await MdClient.open(server.stock_stream_urls["iex"])
            assert await c.login() == [{"T": "success", "msg": "authenticated"}]
            await c.subscribe(quotes=["*"])
            assert (await c.recv())[0]["T"] == "q"
            dropped = await asyncio.to_thread(http_json, server.rest_url + "/sim/faults/streams/drop", {})
            assert dropped["md_dropped"] == 1 and dropped["trade_dropped"] == 0
        finally:
            await server.stop()

    asyncio.run(body())
