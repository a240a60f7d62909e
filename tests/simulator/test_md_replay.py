"""Replay of a capture file: subscribers get the recorded messages, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from common.capture import CaptureWriter, format_rfc3339_ns
from tests.kit.md_client import MdClient
from tests.kit.md_venue import VenueThread, sim_config

pytestmark = pytest.mark.timeout(60)
T0 = 1_732_233_600_000_000_000


def recorded() -> list[tuple[str, int, list[dict[str, Any]]]]:
    frames: list[tuple[str, int, list[dict[str, Any]]]] = []
    for i in range(30):
        t = format_rfc3339_ns(T0 + i * 1_000_123)
        if i % 3 == 0:
            msgs = [
                {
                    "T": "o",
                    "S": "BTC/USD",
                    "t": t,
                    "b": [{"p": 60000.0 - i, "s": 0.5}],
                    "a": [{"p": 60010.5 + i, "s": 1.25}],
                    **({"r": True} if i == 0 else {}),
                },
                {"T": "q", "S": "BTC/USD", "bp": 60000.0 - i, "bs": 0.5, "ap": 60010.5, "as": 1.25, "t": t},
            ]
            frames.append(("crypto", T0 + i * 2_000_000, msgs))
        else:
            msgs = [
                {
                    "T": "q",
                    "S": "AAPL",
                    "bx": "V",
                    "bp": round(190.01 + i / 100, 2),
                    "bs": 2,
                    "ax": "V",
                    "ap": round(190.05 + i / 100, 2),
                    "as": 3,
                    "c": ["R"],
                    "z": "C",
                    "t": t,
                },
                {"T": "t", "S": "MSFT", "i": i, "x": "V", "p": 410.5, "s": 7, "c": ["@"], "z": "C", "t": t},
            ]
            frames.append(("stocks", T0 + i * 2_000_000, msgs))
    return frames


def test_replay_sends_the_recorded_messages_in_order(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    frames = recorded()
    with CaptureWriter(path) as w:
        for feed, recv_ns, msgs in frames:
            w.write_frame(feed, recv_ns, msgs)

    async def body(v: VenueThread) -> None:
        stocks = await MdClient.open(v.ws("/v2/sip"), use_json=True)
        crypto = await MdClient.open(v.ws("/v1beta3/crypto/us"), use_json=True)
        await stocks.login()
        await crypto.login()
        await stocks.subscribe(trades=["*"], quotes=["*"])
        await crypto.subscribe(orderbooks=["*"], quotes=["*"])
        v.post("/sim/feed/resume")
        got_stocks, got_crypto = await asyncio.gather(
            stocks.data_until_quiet(0.5), crypto.data_until_quiet(0.5)
        )
        assert got_stocks == [m for feed, _, msgs in frames if feed == "stocks" for m in msgs]
        assert got_crypto == [m for feed, _, msgs in frames if feed == "crypto" for m in msgs]
        health = v.get("/sim/health")
        assert health["mode"] == "replay" and health["replay_done"] is True
        await stocks.close()
        await crypto.close()

    with VenueThread(sim_config(replay_file=str(path), feed_start_paused=True)) as venue:
        asyncio.run(body(venue))
        assert len(venue.exchange.quotes) == 30 and len(venue.exchange.trades) == 20
        first_aapl = next(q for q in venue.exchange.quotes if q[0] == "AAPL")
        assert str(first_aapl[1]) == "190.02" and str(first_aapl[3]) == "190.06"


def test_a_bad_replay_file_fails_at_start_naming_the_line(tmp_path: Path) -> None:
    from common.capture import CaptureFormatError
    from simulator.market import ReplaySource

    path = tmp_path / "bad.jsonl"
    path.write_text('{"recv_ns": 1, "feed": "stocks", "msgs": []}\n{"recv_ns": 2}\n')
    with pytest.raises(CaptureFormatError, match=r"bad\.jsonl:2"):
        ReplaySource(path)
