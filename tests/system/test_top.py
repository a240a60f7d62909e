"""`zerotick top` on the running system: the textual app, driven headless, shows the services, the
trading state and live numbers from every service's /metrics and control socket, and follows a
`zerotick reduce-only` on screen; `zerotick top --once` prints the same as plain text."""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.config import SERVICES, Settings
from tests.kit.system import clean_env, free_port, free_port_block, system_up, write_toml, zerotick
from tests.kit.waiting import wait_until
from zerotick.top.app import TopApp
from zerotick.top.snapshot import Collector

PROBE_ORDERS = 3


def _config(tmp_path: Path) -> Path:
    doc: dict[str, Any] = {
        "sim": {"port": free_port(), "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
                "message_rate": 40.0},
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": free_port_block(len(SERVICES))},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": [], "subscribe_bars": False},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": PROBE_ORDERS}},
        ]},
    }  # fmt: skip
    return write_toml(tmp_path / "zerotick.toml", doc)


def _screen(app: TopApp) -> str:
    """What the terminal shows now, as text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _row(screen: str, label: str) -> list[str]:
    """The cells of the table row that starts with ``label`` (panels may stand side by side)."""
    for line in screen.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if label in cells:
            return cells[cells.index(label) :]
    raise AssertionError(f"no row {label!r} on screen:\n{screen}")


async def _until(app: TopApp, pilot: Any, check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        if result := check():
            return result
    raise AssertionError(f"timed out waiting for {what}; the screen:\n{_screen(app)}")


@pytest.mark.timeout(240)
def test_top_shows_the_live_system_and_follows_a_reduce_only(tmp_path: Path) -> None:
    config = _config(tmp_path)
    env = clean_env()
    settings = Settings(**tomllib.loads(config.read_text()))
    with system_up(config, env, tmp_path / "run"):
        wait_until(
            lambda: (
                "filled" in zerotick("ctl", "execution", "orders", "--config", str(config), env=env).stdout
            ),
            60,
            "a probe order filled",
        )

        once = zerotick("top", "--once", "--config", str(config), env=env)
        assert once.returncode == 0, once.stderr
        assert "trading ACTIVE" in once.stdout
        for service in SERVICES:
            assert _row(once.stdout, service)[1] == "ready", once.stdout

        async def scenario() -> None:
            app = TopApp(Collector(settings, timeout_s=0.5), interval_s=0.5, window_s=2.0)
            async with app.run_test(size=(220, 90)) as pilot:
                await _until(app, pilot, lambda: app.scrapes >= 3, 20, "three refreshes")
                screen = _screen(app)
                assert "trading ACTIVE" in screen
                for service in SERVICES:
                    assert _row(screen, service)[1:3] == ["ready", "active" if service == "risk" else "ok"]
                assert _row(screen, "AAPL")[1] != "0"  # the probe's position
                assert "probe1" in screen and "filled" in screen  # its fills
                md = _row(screen, "market data messages")
                assert float(md[1]) > 0  # per second, over the window

                # live: the message count moves between two refreshes
                first_total = md[2]
                seen = app.scrapes
                await _until(
                    app,
                    pilot,
                    lambda: (
                        app.scrapes > seen and _row(_screen(app), "market data messages")[2] != first_total
                    ),
                    20,
                    "the message count to change",
                )

                tripped = await asyncio.to_thread(
                    zerotick, "reduce-only", "--reason", "top test", "--config", str(config), env=env
                )
                assert tripped.returncode == 0, tripped.stderr
                await _until(app, pilot, lambda: "trading REDUCE_ONLY" in _screen(app), 20, "REDUCE_ONLY")
                assert "top test" in _screen(app)
                assert _row(_screen(app), "risk")[2] == "reduce_only"

        asyncio.run(scenario())
