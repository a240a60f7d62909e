"""The docker-compose topology without Docker: the venue and the four services each in their own
process (``zerotick run SERVICE``), each binding its own address and reached at another, over tcp +
CURVE; first on loopback, then split across two network namespaces joined by a veth pair (two hosts).
The system trades (fills arrive), the operator's CLI reaches every service with its key, and rogue
clients (no key, a stranger's key, another service's key) are refused, counted, and never handled.
Also: deploy/docker-compose.yml is a valid compose file."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from common import curve
from common.config import SERVICES, load_settings
from tests.kit.deploy import (
    PROBE_ORDERS,
    Processes,
    cli,
    deploy_config,
    metric,
    run_rogue,
    scrape,
    stranger_key,
)
from tests.kit.system import ROOT, clean_env, free_port, free_port_block
from tests.kit.waiting import wait_until

DEPLOY = ROOT / "deploy"


def _positions(config: Path, env: dict[str, str], netns: str | None) -> dict[str, Decimal]:
    out = cli(["ctl", "execution", "positions", "--config", str(config)], env, netns)
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    return {s: Decimal(p["qty"]) for s, p in doc["positions"].items() if Decimal(p["qty"]) != 0}


def _client_order_ids(config: Path, env: dict[str, str], netns: str | None) -> list[str]:
    out = cli(["ctl", "execution", "orders", "--config", str(config)], env, netns)
    assert out.returncode == 0, out.stderr
    return [o["client_order_id"] for o in orjson.loads(out.stdout)]


def _all_ready(config: Path, env: dict[str, str], netns: str | None, procs: Processes) -> bool:
    assert not procs.dead(), f"exited: {procs.dead()}\n{procs.tails()}"
    return all(
        cli(["probe", target, "--config", str(config)], env, netns).returncode == 0
        for target in ("venue", *SERVICES)
    )


def _trades_and_refuses_rogues(
    config: Path, keys: Path, env: dict[str, str], procs: Processes, cli_ns: str | None,
    exec_ns: str | None, exec_metrics: str,
) -> None:  # fmt: skip
    """The shared part of both topologies: ready, fills arrive, rogues get nothing."""
    try:
        wait_until(lambda: _all_ready(config, env, cli_ns, procs), 120, "venue and services ready")
        wait_until(
            lambda: _positions(config, env, cli_ns) == {"AAPL": Decimal(PROBE_ORDERS)},
            90,
            "the probe's fills",
        )
    except AssertionError:
        print(procs.tails())
        raise
    settings = load_settings(config)
    orders = settings.zmq.endpoint("execution", "orders")
    intents = settings.zmq.endpoint("risk", "intents")
    before = scrape(exec_metrics, exec_ns, env)
    stranger = stranger_key(config.parent / "stranger")
    secret = curve.secret_path
    # the rogues: no CURVE, a key nobody knows, another service's key, the operator's key
    assert not run_rogue(orders, keys, "execution", None, env, cli_ns)
    assert not run_rogue(orders, keys, "execution", stranger, env, cli_ns)
    assert not run_rogue(orders, keys, "execution", secret(keys, "market_data"), env, cli_ns)
    assert not run_rogue(orders, keys, "execution", secret(keys, curve.OPERATOR), env, cli_ns)
    assert not run_rogue(intents, keys, "risk", secret(keys, "execution"), env, cli_ns)
    # the same tool with the peer's own key is answered: the refusals above are the keys'
    assert run_rogue(orders, keys, "execution", secret(keys, "risk"), env, cli_ns, ping_only=True)
    after = scrape(exec_metrics, exec_ns, env)
    labels = {"service": "execution", "socket": "orders"}
    assert metric(after, "zt_peer_refused_total", **labels, reason="protocol") >= 1 + metric(
        before, "zt_peer_refused_total", **labels, reason="protocol"
    )
    assert metric(after, "zt_peer_refused_total", **labels, reason="credentials") >= 3 + metric(
        before, "zt_peer_refused_total", **labels, reason="credentials"
    )
    ids = _client_order_ids(config, env, cli_ns)
    assert len(ids) == PROBE_ORDERS and "zt-rogue.1" not in ids  # nothing a rogue sent was handled
    assert _positions(config, env, cli_ns) == {"AAPL": Decimal(PROBE_ORDERS)}


@pytest.mark.timeout(300)
def test_each_service_in_its_own_process_over_tcp_and_curve(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    curve.generate(keys)
    hosts = {svc: (f"127.0.0.{i + 2}", f"127.0.0.{i + 2}") for i, svc in enumerate(SERVICES)}
    metrics_base = free_port_block(4)
    config = deploy_config(
        tmp_path / "zerotick.toml", keys, hosts, venue=("0.0.0.0", "127.0.0.10"), sim_port=free_port(),
        zmq_base=free_port_block(12), metrics_base=metrics_base, metrics_host="127.0.0.1",
        sim_metrics_port=free_port(),
    )  # fmt: skip
    env = clean_env(ZT_ZMQ__RUN_DIR=str(tmp_path / "run"))
    procs = Processes(tmp_path / "logs")
    try:
        procs.start("venue", ["sim", "--config", str(config)], env)
        for svc in SERVICES:
            procs.start(svc, ["run", svc, "--config", str(config)], env)
        exec_metrics = f"http://127.0.0.1:{metrics_base + 3}/metrics"
        _trades_and_refuses_rogues(config, keys, env, procs, None, None, exec_metrics)
        # the kill switch over tcp: the operator's key reaches risk, the venue confirms
        kill = cli(["kill", "--reason", "deploy test", "--config", str(config)], env)
        assert kill.returncode == 0, kill.stdout + kill.stderr
        assert orjson.loads(kill.stdout)["services_error"] is None
    finally:
        procs.stop_all()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def _two_hosts() -> Iterator[tuple[str, str, str, str]]:
    """Two network namespaces joined by a veth pair: (ns_a, addr_a, ns_b, addr_b). Deleted after."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    tag = secrets.token_hex(3)
    ns_a, ns_b = f"zt-a-{tag}", f"zt-b-{tag}"
    addr_a, addr_b = "10.77.0.1", "10.77.0.2"  # private to the two namespaces
    made: list[str] = []
    try:
        try:
            for ns in (ns_a, ns_b):
                _ip("netns", "add", ns)
                made.append(ns)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"network namespaces are not permitted here: {exc.stderr.strip()}")
        _ip("link", "add", f"zta{tag}", "type", "veth", "peer", "name", f"ztb{tag}")
        for ns, dev, addr in ((ns_a, f"zta{tag}", addr_a), (ns_b, f"ztb{tag}", addr_b)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, addr_a, ns_b, addr_b
    finally:
        for ns in made:  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.timeout(300)
def test_across_two_hosts_in_network_namespaces(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    curve.generate(keys)
    with _two_hosts() as (ns_a, addr_a, ns_b, addr_b):
        # host A: venue, market_data, signal; host B: risk, execution. Ports are the compose file's.
        hosts = {
            "market_data": ("0.0.0.0", addr_a),
            "signal": (addr_a, addr_a),
            "risk": ("0.0.0.0", addr_b),
            "execution": (addr_b, addr_b),
        }
        config = deploy_config(
            tmp_path / "zerotick.toml", keys, hosts, venue=("0.0.0.0", addr_a), sim_port=8765,
            zmq_base=5550, metrics_base=9101, metrics_host="0.0.0.0", sim_metrics_port=9108,
        )  # fmt: skip
        env_a = clean_env(ZT_ZMQ__RUN_DIR=str(tmp_path / "run_a"))  # each host its own disk
        env_b = clean_env(ZT_ZMQ__RUN_DIR=str(tmp_path / "run_b"))
        procs = Processes(tmp_path / "logs")
        try:
            procs.start("venue", ["sim", "--config", str(config)], env_a, ns_a)
            for svc in ("market_data", "signal"):
                procs.start(svc, ["run", svc, "--config", str(config)], env_a, ns_a)
            for svc in ("risk", "execution"):
                procs.start(svc, ["run", svc, "--config", str(config)], env_b, ns_b)
            # the operator's CLI and the rogues on host A; execution's metrics read on host B
            _trades_and_refuses_rogues(
                config, keys, env_a, procs, ns_a, ns_b, "http://127.0.0.1:9104/metrics"
            )
        finally:
            procs.stop_all()


def _compose_config() -> dict[str, Any]:
    """deploy/docker-compose.yml as docker-compose resolves it, with the example env files."""
    assert shutil.which("docker-compose"), (
        "docker-compose missing: scripts/install-debian-packages installs it"
    )
    env = {
        **os.environ,
        "ZT_ENV_FILE": "zerotick.env.example",
        "ZT_GRAFANA_ENV_FILE": "grafana.env.example",
    }
    out = subprocess.run(
        ["docker-compose", "-f", str(DEPLOY / "docker-compose.yml"),
         "--env-file", str(DEPLOY / "zerotick.env.example"), "config"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def _mounts(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume, in either of compose's two spellings."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((v.get("source", ""), v["target"], bool(v.get("read_only"))))
        else:
            source, target, *mode = v.split(":")
            out.append((source, target, mode == ["ro"]))
    return out


def test_the_compose_file_is_valid_and_wires_what_the_code_expects() -> None:
    services = _compose_config()["services"]
    assert set(services) == {"venue", *SERVICES, "cli", "prometheus", "grafana"}
    settings = load_settings(DEPLOY / "zerotick-compose.toml")
    assert settings.zmq.transport == "tcp" and settings.metrics.host == "0.0.0.0"
    for name in SERVICES:
        svc = services[name]
        assert svc["command"] == ["run", name]
        assert svc["restart"] == "unless-stopped" and "zerotick" in " ".join(svc["healthcheck"]["test"])
        secrets_mounted = [(t, ro) for _, t, ro in _mounts(svc) if "/private/" in t]
        # each container holds its own CURVE secret and no other, read-only
        assert [(Path(t).name, ro) for t, ro in secrets_mounted] == [(f"{name}.key_secret", True)]
        assert getattr(settings.zmq.hosts, name).connect == name  # reached by its compose name
        # the non-root user may lower its niceness as far as host.nice's recipe goes (-15)
        assert svc["ulimits"]["nice"] == 35
    assert settings.sim.connect_host == "venue"
    # Grafana reads its own env file: no trading secret reaches it
    grafana_env = services["grafana"].get("environment", {})
    assert "GF_SECURITY_ADMIN_PASSWORD" in grafana_env
    assert not [k for k in grafana_env if k.startswith(("APCA_", "ZT_"))]
    # what Prometheus and Grafana mount exists, and Prometheus scrapes every metrics port the config gives
    for svc in ("prometheus", "grafana"):
        for source, _, _ in _mounts(services[svc]):
            if source.startswith("/"):  # a bind mount, not a named volume
                assert Path(source).exists(), source
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{name}:{settings.metrics.port(name)}" for name in SERVICES}
    assert targets == expected | {f"venue:{settings.sim.metrics_port}"}
