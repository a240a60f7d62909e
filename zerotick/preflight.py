"""What `zerotick up` checks before it starts anything. Each check returns the problems it found, one
line of text each, naming what is wrong and where; no secret ever appears in one.

- strategies: every enabled strategy's kind is known, its module imports and its params are
  accepted (built in a child process, exactly as the signal service builds them), its folders in
  ``signal.strategy_paths`` exist, and its symbols are subscribed by market_data;
- the run folder: room on its file system, writable;
- ports: every TCP port a program will listen on is free (ZeroMQ endpoints with ``zmq.transport =
  "tcp"``, the metrics ports, the embedded venue's port and metrics port) and none is configured
  twice; no live process holds one of the run folder's ipc sockets or service locks;
- the venue: with real keys, ``GET /v2/account`` at the trading base URL accepts them; the stream
  hosts resolve;
- placement: ``host.cpu_affinity`` names CPUs this host (and this process's cpuset) has, and
  ``host.nice`` asks for no niceness this user may not take.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson

from common.config import PRIVILEGED_KINDS, SERVICES, Settings, url_host
from common.placement import lowest_niceness_allowed

# the order journal, trading state, audit and logs need room; below this `up` refuses to start
MIN_FREE_BYTES = 16 << 20
STRATEGY_CHECK_TIMEOUT_S = 60.0
SERVICES_PACKAGE = Path(__file__).resolve().parents[1] / "services"


def check(settings: Settings, config_file: Path | None) -> list[str]:
    """Every problem found, in the order a reader fixes them."""
    run_dir = settings.zmq.run_dir.resolve()
    problems = strategy_paths(settings)
    if not problems:  # a missing folder would only repeat itself as an import error
        problems += strategies(config_file, run_dir)
    problems += subscribed_symbols(settings)
    return (
        problems + placement(settings) + run_folder(run_dir) + ports(settings) + ipc_sockets(settings)
        + venue(settings)
    )  # fmt: skip


# ---- placement -------------------------------------------------------------------------------


def _cpu_list(cpus: Iterator[int] | set[int] | list[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def placement(settings: Settings) -> list[str]:
    """What each service would refuse at start (exit 2), said once before anything starts."""
    problems = []
    usable = os.sched_getaffinity(0)
    wanted = set(settings.host.cpu_affinity or ())
    if wanted - usable:
        problems.append(
            f"host.cpu_affinity: CPU {_cpu_list(wanted - usable)} is not available here "
            f"(this process may use {_cpu_list(usable)})"
        )
    lowest = min(getattr(settings.host.nice, svc) for svc in SERVICES)
    allowed = lowest_niceness_allowed()
    if lowest < allowed:
        problems.append(
            f"host.nice: niceness {lowest} needs root or CAP_SYS_NICE (this user may go down to {allowed})"
        )
    return problems


# ---- strategies ------------------------------------------------------------------------------


def strategy_paths(settings: Settings) -> list[str]:
    out = []
    for p in settings.signal.strategy_paths:
        if not p.is_dir():
            out.append(f"signal.strategy_paths: {p} is not a folder")
        elif p.resolve() == SERVICES_PACKAGE or SERVICES_PACKAGE in p.resolve().parents:
            out.append(f"signal.strategy_paths: {p} is inside zerotick's services package; use its parent")
    return out


def subscribed_symbols(settings: Settings) -> list[str]:
    md = settings.market_data
    subscribed = {*md.stocks, *md.crypto}
    out = []
    for cfg in settings.signal.strategies:
        missing = [s for s in cfg.symbols if s not in subscribed] if cfg.enabled else []
        if missing:
            out.append(
                f"signal.strategies[{cfg.name}] trades {', '.join(missing)}, which market_data does not "
                f"subscribe: add to market_data.stocks or market_data.crypto"
            )
    return out


def strategies(config_file: Path | None, run_dir: Path) -> list[str]:
    """Build the strategies in a child process in the run folder, as the signal service will."""
    cmd = [sys.executable, "-m", "zerotick.strategy_check"]
    if config_file is not None:
        cmd += ["--config", str(config_file)]
    try:
        done = subprocess.run(
            cmd,
            cwd=run_dir if run_dir.is_dir() else None,
            env=dict(os.environ, ZT_ZMQ__RUN_DIR=str(run_dir)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=STRATEGY_CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return [
            f"building the strategies took longer than {STRATEGY_CHECK_TIMEOUT_S:.0f}s (a module hangs on import?)"
        ]
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        found = orjson.loads(lines[-1]) if lines else None
    except orjson.JSONDecodeError:
        found = None
    if not isinstance(found, list):
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return [f"building the strategies crashed (exit {done.returncode}): {last}"]
    return [str(p) for p in found]


# ---- the run folder --------------------------------------------------------------------------


def run_folder(run_dir: Path) -> list[str]:
    probe = run_dir if run_dir.exists() else next(p for p in run_dir.parents if p.exists())
    try:
        st = os.statvfs(probe)
    except OSError as exc:
        return [f"run folder {run_dir}: {exc.strerror}"]
    if st.f_flag & os.ST_RDONLY:
        return [f"run folder {run_dir} is on a read-only file system"]
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        return [
            f"run folder {run_dir} has {free >> 20} MB free; zerotick needs at least "
            f"{MIN_FREE_BYTES >> 20} MB for its order journal, state and logs"
        ]
    return []


# ---- ports -----------------------------------------------------------------------------------


def listen_ports(settings: Settings) -> Iterator[tuple[str, int, str]]:
    """(host, port, what) for every TCP port the programs of `zerotick up` will listen on."""
    z = settings.zmq
    if z.transport == "tcp":
        for service in SERVICES:
            kinds = ["pub", "rpc", *(k for k, owner in PRIVILEGED_KINDS.items() if owner == service)]
            for kind in kinds:
                hostport = z.endpoint(service, kind).removeprefix("tcp://")  # type: ignore[arg-type]
                host, _, port = hostport.rpartition(":")
                yield host, int(port), f"{service} {kind} socket"
    for service in SERVICES:
        if port := settings.metrics.port(service):
            yield settings.metrics.host, port, f"{service} metrics"
    if settings.venue == "sim":
        if settings.sim.port:
            yield settings.sim.host, settings.sim.port, "the venue"
        if settings.sim.metrics_port:
            yield settings.sim.host, settings.sim.metrics_port, "the venue's metrics"


def ports(settings: Settings) -> list[str]:
    out = []
    seen: dict[int, str] = {}
    for host, port, what in listen_ports(settings):
        if port in seen:
            out.append(f"port {port} is configured twice: for {seen[port]} and for {what}")
            continue
        seen[port] = what
        problem = _bind_problem(host, port)
        if problem:
            out.append(f"port {port} on {host} ({what}) {problem}")
    return out


def _bind_problem(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return f"cannot be used: cannot resolve {host}"
    family, kind, _, _, addr = infos[0]
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no clash
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                holder = port_holder(port)
                return "is in use" + (f" by pid {holder[0]} ({holder[1]})" if holder else "")
            return f"cannot be used: {exc.strerror}"
    return ""


def port_holder(port: int) -> tuple[int, str] | None:
    """(pid, command name) of a process listening on TCP ``port``, when this user may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(pid_dir.name), (pid_dir / "comm").read_text().strip()
        except OSError:
            continue
    return None


def ipc_sockets(settings: Settings) -> list[str]:
    """A live process on one of the run folder's ipc sockets or service locks (e.g. `zerotick run
    risk` started by hand) would fight the new one for its sockets."""
    run_dir = settings.zmq.run_dir.resolve()
    out = []
    for service in SERVICES:
        holder = _lock_holder(run_dir / f"{service}.lock")
        if holder:
            out.append(f"{service} already runs on run folder {run_dir} (pid {holder})")
            continue
        if settings.zmq.transport != "ipc":
            continue
        kinds = ["pub", "rpc", *(k for k, owner in PRIVILEGED_KINDS.items() if owner == service)]
        for kind in kinds:
            path = Path(settings.zmq.endpoint(service, kind).removeprefix("ipc://"))  # type: ignore[arg-type]
            if _unix_socket_answers(path):
                out.append(f"ipc socket {path} is held by a live process")
    return out


def _lock_holder(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)
    return ""


def _unix_socket_answers(path: Path) -> bool:
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


# ---- the venue -------------------------------------------------------------------------------


def venue(settings: Settings) -> list[str]:
    """With real keys: the venue accepts them, and every host the services will reach resolves."""
    if settings.venue == "sim":
        return []
    problems = account(settings)
    hosts = {url_host(settings.trade_stream_url())}
    if settings.market_data.stocks:
        hosts.add(url_host(settings.stock_stream_url()))
    if settings.market_data.crypto:
        hosts.add(url_host(settings.crypto_stream_url()))
    hosts.discard(url_host(settings.trading_base_url()))  # account() said what there is to say
    for host in sorted(h for h in hosts if h):
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror:
            problems.append(f"cannot resolve {host} (a market-data or trade_updates stream host)")
    return problems


def _origin(base: str) -> tuple[str, str]:
    """(base URL without any userinfo, host:port) for messages."""
    u = urllib.parse.urlsplit(base)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    shown = urllib.parse.urlunsplit((u.scheme, f"{host}:{u.port}" if u.port else host, u.path, "", ""))
    return shown, f"{host}:{port}"


def account(settings: Settings) -> list[str]:
    """``GET /v2/account`` with the configured keys: the one request that proves keys and venue."""
    base, hostport = _origin(settings.trading_base_url())
    host = hostport.rpartition(":")[0]
    key_id, secret = settings.credentials()
    req = urllib.request.Request(
        f"{settings.trading_base_url()}/v2/account",
        headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret, "Accept": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as execution: no proxy
    timeout = settings.execution.http_timeout_s
    try:
        with opener.open(req, timeout=timeout) as resp:
            body = resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return [f"Alpaca rejected the API keys ({exc.code}) at {base}"]
        return [f"{base}/v2/account answered HTTP {exc.code} {exc.reason}"]
    except urllib.error.URLError as exc:
        return [_network_problem(exc.reason, host, hostport, timeout)]
    except (OSError, ValueError) as exc:
        return [_network_problem(exc, host, hostport, timeout)]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [f"{base}/v2/account did not answer with an Alpaca account (not JSON)"]
    if not isinstance(doc, dict) or "buying_power" not in doc:
        return [f"{base}/v2/account did not answer with an Alpaca account"]
    if doc.get("trading_blocked") or doc.get("account_blocked"):
        return [f"the account at {base} is blocked from trading (status {doc.get('status')})"]
    return []


def _network_problem(reason: object, host: str, hostport: str, timeout: float) -> str:
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve {host}"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused by {hostport}"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer from {hostport} within {timeout:g}s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS with {hostport} failed: {reason.reason or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot reach {hostport}: {reason.strerror}"
    return f"cannot reach {hostport}: {reason}"
