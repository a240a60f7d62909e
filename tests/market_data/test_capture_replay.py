"""What market_data records, the venue replays: capture from one venue, replay on another, and the
market_data service sees the same normalized stream again."""

from __future__ import annotations

from pathlib import Path

from common import wire
from common.capture import read_capture
from tests.kit.market_data import (
    SIM_KEY,
    SIM_SECRET,
    MdSubscriber,
    start_service,
    stop_process,
    wait_feeds_subscribed,
    write_config,
)
from tests.market_data.test_with_simulator import _start_simulator

N_QUOTES = 40


def _collect_quotes(sub: MdSubscriber, n: int) -> list[tuple[str, int, int, int]]:
    out: list[tuple[str, int, int, int]] = []

    def take(_t: bytes, m: object) -> bool:
        if isinstance(m, wire.Quote):
            out.append((m.symbol, m.bid_px, m.ask_px, m.exch_ns))
        return len(out) >= n

    sub.wait_for(take, timeout=30.0, what=f"{n} quotes")
    return out


def test_market_data_capture_replays_on_the_venue_as_the_same_stream(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    # 1. record from a synthetic venue
    a_dir = tmp_path / "a"
    a_dir.mkdir()
    sim_a, urls_a = _start_simulator(
        _venue_config(a_dir, 'message_rate = 400.0\nstocks = ["AAPL", "MSFT"]\ncrypto = ["BTC/USD"]'),
        tmp_path / "sim_a.log",
    )
    cfg_a = write_config(a_dir, urls_a["iex"], urls_a["crypto"], f'capture_file = "{capture}"')
    sub_a = MdSubscriber(a_dir / "run")
    md_a = start_service(cfg_a, tmp_path / "md_a.log")
    try:
        wait_feeds_subscribed(a_dir / "run", ("stocks", "crypto"))
        recorded = _collect_quotes(sub_a, N_QUOTES)
    finally:
        stop_process(md_a)  # SIGTERM: the capture is flushed and closed
        stop_process(sim_a)
        sub_a.close()
    frames = list(read_capture(capture))
    assert frames and {f.feed for f in frames} == {"stocks", "crypto"}

    # 2. replay it on a fresh venue, held paused until market_data has subscribed
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    sim_b, urls_b = _start_simulator(
        _venue_config(b_dir, f'replay_file = "{capture}"\nfeed_start_paused = true'), tmp_path / "sim_b.log"
    )
    cfg_b = write_config(b_dir, urls_b["iex"], urls_b["crypto"])
    sub_b = MdSubscriber(b_dir / "run")
    md_b = start_service(cfg_b, tmp_path / "md_b.log")
    try:
        wait_feeds_subscribed(b_dir / "run", ("stocks", "crypto"), sub_b)
        _post(urls_b["rest"], "/sim/feed/resume")
        # the whole replay: the recording started when its SUB joined, a little after the capture did
        replayed = [
            (m.symbol, m.bid_px, m.ask_px, m.exch_ns)
            for m in sub_b.until_quiet(lambda _t, m: isinstance(m, wire.Quote))
        ]
    finally:
        stop_process(md_b)
        stop_process(sim_b)
        sub_b.close()

    # Per symbol: each symbol's quotes come on one feed, in order; the stocks and crypto feeds are two
    # WebSockets whose interleaving is up to the scheduler. The capture starts at subscription, the
    # recording SUB may have joined a little later.
    compared = 0
    for symbol in {q[0] for q in recorded}:
        rec = [q for q in recorded if q[0] == symbol]
        rep = [q for q in replayed if q[0] == symbol]
        assert rec[0] in rep, symbol
        start = rep.index(rec[0])
        assert rep[start : start + len(rec)] == rec, symbol
        compared += len(rec)
    assert compared == len(recorded) >= N_QUOTES


def _venue_config(d: Path, sim_lines: str) -> Path:
    cfg = d / "venue.toml"
    cfg.write_text(
        f'[sim]\nkey_id = "{SIM_KEY}"\nsecret_key = "{SIM_SECRET}"\nmetrics_port = 0\n{sim_lines}\n'
    )
    return cfg


def _post(origin: str, path: str) -> None:
    import urllib.request

    req = urllib.request.Request(
        origin + path, data=b"{}", headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
