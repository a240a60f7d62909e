"""The docker-compose topology without Docker: the venue and each service as its own process
(``zerotick sim``, ``zerotick run SERVICE``), each with its own bind and connect addresses over tcp +
CURVE, optionally inside a network namespace; and a rogue ZeroMQ client to throw at them.

Processes are started by :class:`Processes` and stopped by their PIDs (``kill_pid``); a command run
inside a namespace goes through ``ip netns exec``, which execs it, so the PID is the program's own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from tests.kit.system import kill_pid, write_toml

PROBE_ORDERS = 3


def deploy_config(
    path: Path,
    keys: Path,
    hosts: dict[str, tuple[str, str]],
    venue: tuple[str, str],
    sim_port: int,
    zmq_base: int,
    metrics_base: int,
    metrics_host: str,
    sim_metrics_port: int,
) -> Path:
    """One config for every process (as deploy/zerotick-compose.toml): ``hosts`` = service -> (bind,
    connect), ``venue`` = (bind, connect)."""
    doc: dict[str, Any] = {
        "sim": {"host": venue[0], "connect_host": venue[1], "port": sim_port, "metrics_port": sim_metrics_port,
                "stocks": ["AAPL"], "crypto": ["BTC/USD"], "message_rate": 40.0},
        "zmq": {"transport": "tcp", "curve_dir": str(keys), "tcp_base_port": zmq_base,
                "tcp_host": "192.0.2.1"},  # TEST-NET: a service that fell back to it would reach nothing
        "metrics": {"host": metrics_host, "base_port": metrics_base},
        "market_data": {"stocks": ["AAPL"], "crypto": ["BTC/USD"]},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": PROBE_ORDERS}},
        ]},
        "control": {"token": "deploy-test-token"},
    }  # fmt: skip
    text = write_toml(path, doc).read_text()
    for service, (bind, connect) in hosts.items():
        text += f'[zmq.hosts.{service}]\nbind = "{bind}"\nconnect = "{connect}"\n'
    path.write_text(text)
    return path


def in_netns(netns: str | None, cmd: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)


class Processes:
    """Programs of one test, each logging to its own file; stopped by PID, the venue last."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: Sequence[str], env: dict[str, str], netns: str | None = None) -> int:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                in_netns(netns, [sys.executable, "-m", "zerotick.cli", *args]),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.started.append((name, proc))
        return proc.pid

    def dead(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.started if p.poll() is not None]

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            kill_pid(proc.pid)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def tails_full(self) -> str:
        """Everything every program logged."""
        return "\n".join(f.read_text(errors="replace") for f in sorted(self.logs.glob("*.log")))

    def tails(self) -> str:
        out = []
        for f in sorted(self.logs.glob("*.log")):
            out.append(f"===== {f.name}\n" + f.read_text(errors="replace")[-3000:])
        return "\n".join(out)


def cli(
    args: Sequence[str], env: dict[str, str], netns: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        in_netns(netns, [sys.executable, "-m", "zerotick.cli", *args]),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            got = ",".join(sorted(head[len(name) + 1 : -1].split(",")))
            if got == want:
                return float(value)
    return 0.0


def scrape(url: str, netns: str | None, env: dict[str, str]) -> str:
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).read().decode())"
    out = subprocess.run(
        in_netns(netns, [sys.executable, "-c", code]), env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


# ---- a rogue client: ``python -m tests.kit.deploy rogue ...`` ----------------------------------


def rogue(
    endpoint: str, server_key_file: Path | None, key_file: Path | None, wait_s: float, ping_only: bool
) -> dict[str, Any]:
    """Connect to ``endpoint`` (CURVE with ``key_file``'s pair when given, else no security), queue an
    order request (unless ``ping_only``) and a ping, and report whether anything came back within
    ``wait_s``."""
    import zmq
    import zmq.auth

    from common import wire
    from common.clock import wall_ns
    from common.enums import ControlCmd

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if key_file is not None:
        public, secret = zmq.auth.load_certificate(key_file)
        assert server_key_file is not None
        server, _ = zmq.auth.load_certificate(server_key_file)
        sock.setsockopt(zmq.CURVE_SERVERKEY, server)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.connect(endpoint)
    now = wall_ns()
    intent = wire.OrderIntent(
        intent_id="rogue.1", strategy="rogue", symbol="AAPL", side="buy", qty=1_000_000_000,
        limit_px=1_000_000_000_000, signal_ns=now, deadline_ns=now + 60 * 10**9,
    )  # fmt: skip
    order = wire.OrderRequest(client_order_id="zt-rogue.1", intent=intent, risk_ns=now)
    if not ping_only:
        sock.send_multipart([b"\x00" * 8, wire.encode(order)])
    sock.send_multipart([b"\x01" * 8, wire.encode(wire.Control(cmd=ControlCmd.PING))])
    replies = sock.recv_multipart() if sock.poll(int(wait_s * 1000)) else None
    sock.close(0)
    ctx.term()
    return {"answered": replies is not None}


def stranger_key(folder: Path) -> Path:
    """A CURVE key pair nobody's config knows."""
    import zmq.auth

    folder.mkdir(parents=True, exist_ok=True)
    _, secret = zmq.auth.create_certificates(str(folder), "stranger")
    os.chmod(secret, 0o600)
    return Path(secret)


def run_rogue(
    endpoint: str,
    keys: Path,
    server: str,
    key_file: Path | None,
    env: dict[str, str],
    netns: str | None = None,
    ping_only: bool = False,
) -> bool:
    """Whether a rogue client with ``key_file`` (None: no CURVE) got any answer from ``endpoint``."""
    from common.curve import public_path

    args = [
        sys.executable,
        "-m",
        "tests.kit.deploy",
        "rogue",
        endpoint,
        "--server-key",
        str(public_path(keys, server)),
    ]
    if key_file is not None:
        args += ["--key", str(key_file)]
    if ping_only:
        args.append("--ping-only")
    out = subprocess.run(in_netns(netns, args), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return bool(orjson.loads(out.stdout)["answered"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.kit.deploy")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rogue")
    r.add_argument("endpoint")
    r.add_argument("--server-key", type=Path)
    r.add_argument("--key", type=Path)
    r.add_argument("--wait-s", type=float, default=2.0)
    r.add_argument("--ping-only", action="store_true")
    args = p.parse_args(argv)
    print(orjson.dumps(rogue(args.endpoint, args.server_key, args.key, args.wait_s, args.ping_only)).decode())


if __name__ == "__main__":
    main()
