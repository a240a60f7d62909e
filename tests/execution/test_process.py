"""``python -m services.execution --config F`` as a real process: ready, answers, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import pytest
import zmq

from common import wire
from common.config import load_settings
from common.zmq_io import RpcClient, RpcError
from tests.kit.tiny_venue import KEY, SECRET, TinyVenue

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def test_process_starts_reconciles_and_stops_on_sigterm(tmp_path: Path) -> None:
    async def main() -> None:
        venue = TinyVenue()
        await venue.start()
        config = tmp_path / "zerotick.toml"
        config.write_text(
            f'[alpaca]\nkey_id = "{KEY}"\nsecret_key = "{SECRET}"\nbase_url = "{venue.url}"\n'
            f'trade_stream_url = "{venue.stream_url}"\n'
            f'[zmq]\nrun_dir = "{tmp_path / "run"}"\n[metrics]\nbase_port = 0\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ZT_", "ZEROTICK_"))}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.execution", "--config", str(config),
            cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        settings = load_settings(config)
        rpc = RpcClient(
            zmq.Context.instance(), asyncio.get_running_loop(), settings.zmq.endpoint("execution", "rpc"),
            "test", "execution", timeout_ms=500,
        )  # fmt: skip
        try:
            status: dict[str, object] = {}
            for _ in range(100):
                try:
                    reply = await rpc.request(wire.Control(cmd="status"))
                    status = orjson.loads(reply.data)
                    if status.get("ready") and status.get("trade_stream_connected"):
                        break
                except RpcError:
                    pass
                await asyncio.sleep(0.1)
            assert status.get("ready") and status.get("venue") == "custom"
            assert venue.stream_auths == 1
        finally:
            rpc.close()
            os.kill(proc.pid, signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
            await venue.stop()
        assert proc.returncode == 0, err.decode()[-2000:]
        log = err.decode()
        assert "execution trades on venue=custom" in log and SECRET not in log

    asyncio.run(main())
