"""`zerotick up` starts safely: what can be checked is checked before anything starts (one line on
stderr per problem, exit 2); a program that fails once started is named with its reason, everything
is stopped again (exit 3); a second `up` is refused (exit 1); `down` returns only once every process
is gone. Every test ends with no process of its own left (by the pids the run folder records and by
scanning /proc for its temporary folder)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.kit.disk import fill, tmpfs
from tests.kit.ledger import SIM_KEY, SIM_SECRET
from tests.kit.system import (
    ROOT,
    assert_nothing_left,
    clean_env,
    free_port,
    read_logs,
    status_json,
    write_toml,
    zerotick,
)
from tests.kit.waiting import wait_until

SECRET = "preflight-secret-value-42"


def _doc(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "sim": {"port": free_port(), "metrics_port": 0, "stocks": [], "quiet_stocks": ["AAPL"], "crypto": []},
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL"], "crypto": []},
    }
    for name, body in sections.items():
        doc[name] = {**doc.get(name, {}), **body}
    return doc


def _config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    return write_toml(tmp_path / "zt.toml", _doc(tmp_path, **sections))


def _up(config: Path, env: dict[str, str] | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
    return zerotick("up", "--config", str(config), *extra, env=env or clean_env(), timeout=180)


def _refused(out: subprocess.CompletedProcess[str], code: int, *expected: str) -> None:
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    for text in expected:
        assert text in out.stderr, out.stderr
    assert SECRET not in out.stdout + out.stderr


def _nothing_started(tmp_path: Path, out: subprocess.CompletedProcess[str]) -> None:
    _refused(out, 2, "zerotick up: nothing was started")
    assert not (tmp_path / "run" / "supervisord.conf").exists()
    assert_nothing_left(tmp_path, tmp_path / "run")


def test_unknown_strategy_kind(tmp_path: Path) -> None:
    cfg = _config(tmp_path, signal={"strategies": [{"name": "x", "kind": "nope", "symbols": ["AAPL"]}]})
    out = _up(cfg)
    _refused(out, 2, "signal.strategies[x] (kind 'nope'): unknown strategy kind 'nope'")
    _nothing_started(tmp_path, out)


def test_placement_this_host_cannot_give(tmp_path: Path) -> None:
    """A CPU the host does not have: named before anything starts, rather than four services failing
    their start (the niceness check: tests/ops/test_preflight_placement.py)."""
    missing = max(os.sched_getaffinity(0)) + 100
    cfg = _config(tmp_path, host={"cpu_affinity": [missing]})
    out = _up(cfg)
    _refused(out, 2, f"host.cpu_affinity: CPU {missing} is not available here")
    _nothing_started(tmp_path, out)


def test_strategy_import_error(tmp_path: Path) -> None:
    (tmp_path / "strats").mkdir()
    (tmp_path / "strats" / "broken.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "strats" / "typo.py").write_text("def oops(:\n")
    cfg = _config(
        tmp_path,
        signal={
            "strategy_paths": ["strats"],
            "strategies": [
                {"name": "b", "kind": "broken:Strat", "symbols": ["AAPL"]},
                {"name": "t", "kind": "typo:Strat", "symbols": ["AAPL"]},
            ],
        },
    )
    out = _up(cfg)
    _refused(
        out,
        2,
        "signal.strategies[b] (kind 'broken:Strat'): cannot import module 'broken': "
        "No module named 'no_such_dependency_xyz'",
        "signal.strategies[t] (kind 'typo:Strat'): cannot import module 'typo': SyntaxError",
    )
    _nothing_started(tmp_path, out)


def test_bad_params(tmp_path: Path) -> None:
    strategy = {"name": "m", "kind": "ma_cross", "symbols": ["AAPL"], "params": {"fast": -1}}
    out = _up(_config(tmp_path, signal={"strategies": [strategy]}))
    _refused(out, 2, "signal.strategies[m] (kind 'ma_cross'): param 'fast' must be an integer >= 1, got -1")
    _nothing_started(tmp_path, out)


def test_strategy_symbol_not_subscribed(tmp_path: Path) -> None:
    strategy = {"name": "p", "kind": "probe", "symbols": ["AAPL", "TSLA"]}
    out = _up(_config(tmp_path, signal={"strategies": [strategy]}))
    _refused(out, 2, "signal.strategies[p] trades TSLA, which market_data does not subscribe")
    _nothing_started(tmp_path, out)


def test_metrics_port_held_by_a_socket(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        base = port - 1  # signal's metrics port is base + 1
        out = _up(_config(tmp_path, metrics={"base_port": base}))
    _refused(out, 2, f"port {port} on 127.0.0.1 (signal metrics) is in use by pid ")
    _nothing_started(tmp_path, out)


@contextmanager
def _account_server(status: int) -> Iterator[str]:
    """A venue whose GET /v2/account answers ``status``; yields its origin."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"code": 40110000, "message": "request is not authorized"}'
            self.send_response(status if self.path == "/v2/account" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _keys_env(base_url: str) -> dict[str, str]:
    return clean_env(APCA_API_KEY_ID="PKPREFLIGHT", APCA_API_SECRET_KEY=SECRET, APCA_API_BASE_URL=base_url)


def _streams(origin: str) -> dict[str, Any]:
    ws = origin.replace("http://", "ws://")
    return {"stock_stream_url": f"{ws}/v2/iex", "crypto_stream_url": f"{ws}/v1beta3/crypto/us"}


def test_bad_keys(tmp_path: Path) -> None:
    with _account_server(401) as origin:
        out = _up(_config(tmp_path, alpaca=_streams(origin)), _keys_env(origin))
    _refused(out, 2, f"Alpaca rejected the API keys (401) at {origin}")
    assert "PKPREFLIGHT" not in out.stderr
    _nothing_started(tmp_path, out)


def test_unresolvable_host(tmp_path: Path) -> None:
    out = _up(_config(tmp_path), _keys_env("https://zerotick-preflight.invalid"))
    _refused(out, 2, "cannot resolve zerotick-preflight.invalid")
    _nothing_started(tmp_path, out)


def test_connection_refused(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    origin = f"http://127.0.0.1:{port}"
    out = _up(_config(tmp_path, alpaca=_streams(origin)), _keys_env(origin))
    _refused(out, 2, f"connection refused by 127.0.0.1:{port}")
    _nothing_started(tmp_path, out)


def test_service_crashing_at_start_reaches_fatal_and_everything_stops(tmp_path: Path) -> None:
    # only market_data reads its capture file; one under a plain file fails it at every start
    (tmp_path / "plain_file").write_text("")
    cfg = _config(tmp_path, market_data={"capture_file": str(tmp_path / "plain_file" / "capture.jsonl")})
    env = clean_env()
    try:
        out = _up(cfg, env)
    finally:
        if (tmp_path / "run" / "supervisord.conf").exists() and status_json(cfg, env)["supervisord_pid"]:
            zerotick("down", "--config", str(cfg), env=env, timeout=120)  # only when the test fails
    _refused(out, 3, "zerotick up: market_data failed to start: FATAL", "FileExistsError")
    assert re.search(r"stopped everything it started \(\d+ processes\)", out.stderr), out.stderr
    run_dir = tmp_path / "run"
    assert (run_dir / "supervisord.conf").exists()  # it did start, and stopped again
    st = status_json(cfg, env)
    assert st["supervisord_pid"] is None and not st["all_up"]
    assert_nothing_left(tmp_path, run_dir)


def test_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "run", "8m") as run_dir:
        fill(run_dir)
        out = _up(
            _config(tmp_path, signal={"strategies": [{"name": "p", "kind": "probe", "symbols": ["AAPL"]}]})
        )
        _refused(out, 2, f"cannot write to run folder {run_dir}: No space left on device")
        assert_nothing_left(tmp_path, run_dir)
        (run_dir / "filler").unlink()
        (run_dir / "filler").write_bytes(b"\0" * (4 << 20))  # room for files, not for a journal and logs
        out = _up(
            _config(tmp_path, signal={"strategies": [{"name": "p", "kind": "probe", "symbols": ["AAPL"]}]})
        )
        _refused(out, 2, f"run folder {run_dir} has 3 MB free; zerotick needs at least 16 MB")
        assert_nothing_left(tmp_path, run_dir)


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that are still running (zombies are gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def test_concurrent_up_is_refused_and_down_waits_for_every_pid(tmp_path: Path) -> None:
    cfg = _config(tmp_path, signal={"strategies": [{"name": "p", "kind": "probe", "symbols": ["AAPL"]}]})
    run_dir = tmp_path / "run"
    env = clean_env()
    cmd = [sys.executable, "-m", "zerotick.cli", "up", "--config", str(cfg)]
    first, second = (
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in "12"
    )
    outs = [p.communicate(timeout=180) for p in (first, second)]
    keyed = env
    codes = sorted(p.returncode for p in (first, second))
    try:
        assert codes == [0, 1], outs
        refused = next(err for (_, err), p in zip(outs, (first, second), strict=True) if p.returncode == 1)
        assert re.fullmatch(r"zerotick up: already running \(pid \d+: [^\n]+\)[^\n]*\n", refused), refused
        assert "Traceback" not in refused
        again = _up(cfg, env)
        _refused(again, 1, "already running (pid ")
        # what runs is read from the run folder: a caller with Alpaca keys in its environment still
        # sees (and stops) the system that was started on the simulator
        keyed = clean_env(APCA_API_KEY_ID="PKOTHER", APCA_API_SECRET_KEY=SECRET)
        st = status_json(cfg, keyed)
        assert st["all_ready"] and st["venue"] == "sim", read_logs(run_dir)
        assert all(r["reason"] == "" for r in st["processes"].values()), st
        pids = [st["supervisord_pid"], *(p["pid"] for p in st["processes"].values())]
        assert all(pids) and len(pids) == 6 and "sim" in st["processes"]
    finally:
        down = zerotick("down", "--config", str(cfg), env=keyed, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not _alive(pids), "down returned while these still ran"
    assert zerotick("down", "--config", str(cfg), env=env).stdout.strip() == "zerotick down: was not running"
    assert_nothing_left(tmp_path, run_dir)


def _readme_block(lang: str, starts_with: str) -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(rf"```{lang}\n(.*?)```", text, re.S)
    return next(b for b in blocks if b.startswith(starts_with))


def test_readme_strategy_example_places_an_order(tmp_path: Path) -> None:
    module = _readme_block("python", "# mypkg/strategies.py")
    path = tmp_path / module.splitlines()[0].removeprefix("# ").strip()
    path.parent.mkdir(parents=True)
    path.write_text(module)
    doc = _doc(tmp_path)
    cfg = write_toml(tmp_path / "zt.toml", doc)
    cfg.write_text(cfg.read_text() + "\n" + _readme_block("toml", "[signal]"))
    env = clean_env()
    port = doc["sim"]["port"]
    run_dir = tmp_path / "run"
    out = zerotick("up", "--config", str(cfg), env=env, timeout=180, cwd=Path("/"))
    try:
        assert out.returncode == 0, out.stdout + out.stderr + read_logs(run_dir)

        # the strategy buys once the ask is `drop` (0.50) below the highest bid it has seen. Signal
        # conflates quotes when it is behind (latest wins) and its market-data subscription may still
        # be joining, so each try lets the high quote land before the dip follows it.
        def inject(bid: str, ask: str) -> None:
            body = {"symbol": "AAPL", "bid_px": bid, "bid_sz": 100, "ask_px": ask, "ask_sz": 100}
            requests.post(
                f"http://127.0.0.1:{port}/sim/inject/quote", json=body, timeout=10
            ).raise_for_status()

        def dip_orders() -> list[dict[str, Any]]:
            r = requests.get(
                f"http://127.0.0.1:{port}/v2/orders",
                params={"status": "all"},
                headers={"APCA-API-KEY-ID": SIM_KEY, "APCA-API-SECRET-KEY": SIM_SECRET},
                timeout=10,
            )
            r.raise_for_status()
            return [o for o in r.json() if o["symbol"] == "AAPL"]

        orders: list[dict[str, Any]] = []
        for _ in range(10):
            inject("100.00", "100.02")
            time.sleep(0.5)
            inject("99.40", "99.45")
            try:
                orders = wait_until(dip_orders, 3, "the README strategy's order at the venue")
                break
            except AssertionError:
                continue
        assert orders, "the README strategy placed no order after 10 high-then-dip quote pairs" + read_logs(
            run_dir
        )
        assert (orders[0]["side"], orders[0]["qty"], orders[0]["limit_price"]) == ("buy", "2", "99.45")
    finally:
        down = zerotick("down", "--config", str(cfg), env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(tmp_path, run_dir)
