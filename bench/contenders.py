"""The systems the wire-to-wire comparison runs side by side, each against its own venue.

* ``zerotick``: the whole system as users run it (`zerotick up`: supervisord, the four services and
  the venue), the ``probe`` strategy answering each probe quote.
* ``naive_bot``: one alpaca-py process (bench/naive_bot.py's bot).
* ``minimal_client``: one process with a raw WebSocket in and a hand-built POST out (the floor,
  bench/minimal_client.py).
* ``pipeline_floor``: zerotick's four processes and three ZeroMQ hops with no work in them (the
  floor of the design, bench/pipeline_floor.py).

Every venue runs the same synthetic feed (AAPL, MSFT, BTC/USD, and the quiet probe symbol) and can be
switched between the measured background rate and an idle trickle that keeps quotes fresh without
loading the host; the suite probes one contender at a time while the others idle. Every contender
reads the same data from it: the quotes of AAPL, MSFT and the probe symbol (about 43 % of what the
feed makes; zerotick's market_data with trades, bars and the crypto feed turned off), so each one
does the same work for the same background.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.limits import OPEN_EXECUTION, OPEN_RISK, QUIET_TRIGGERS
from bench.naive_bot import BOT, KEY, SECRET
from bench.wire_to_wire import PROBE_SYMBOL
from common.config import SERVICES
from common.placement import lowest_niceness_allowed, pin_threads
from simulator.app import READY_PREFIX, parse_ready_line
from tests.kit.system import (
    clean_env,
    free_port,
    free_port_block,
    kill_pid,
    status_json,
    write_toml,
    zerotick,
)
from tests.kit.waiting import wait_until
from zerotick.supervisor import Layout, supervisord_pid

# with --pin: the later on the way to the order POST, the more urgent (host.nice). A user who may
# not lower niceness (not root, no RLIMIT_NICE room) runs pinned without it; the result says so.
PINNED_NICE = {"execution": -15, "risk": -10, "signal": -5, "market_data": 0}
NICE_ALLOWED = min(PINNED_NICE.values()) >= lowest_niceness_allowed()
IDLE_RATE = 20.0  # md msgs/s on a venue whose contender is not being measured
STOCKS = ["AAPL", "MSFT"]
CRYPTO = ["BTC/USD"]
# below 2**63 nanos once scaled: the account figures travel as int64 nanos
STARTING_CASH = "1000000000"


def _sim_section(metrics_port: int) -> dict[str, Any]:
    return {
        "metrics_port": metrics_port, "stocks": STOCKS, "quiet_stocks": [PROBE_SYMBOL], "crypto": CRYPTO,
        "message_rate": IDLE_RATE, "rate_limit_per_min": 100_000_000, "starting_cash": STARTING_CASH,
    }  # fmt: skip


def _samples(port: int) -> list[Sample]:
    """Every sample a Prometheus endpoint exposes now (none when it does not answer)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return []
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def metric_sums(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Each named counter summed over its labels, from a Prometheus endpoint (0 when absent)."""
    out = dict.fromkeys(names, 0.0)
    for s in _samples(port):
        if s.name in out:
            out[s.name] += s.value
    return out


def counts_by_label(port: int, name: str, label: str) -> dict[str, float]:
    """One counter's values by one of its labels, from a Prometheus endpoint (empty when absent)."""
    out: dict[str, float] = {}
    for s in _samples(port):
        if s.name == name:
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + s.value
    return out


VENUE_COUNTERS = ("zt_sim_md_messages_total", "zt_sim_md_disconnects_total")
ZMQ_COUNTERS = ("zt_zmq_gaps_total", "zt_zmq_dropped_total")


class Contender(ABC):
    """A system under test with its venue: start, stop, the venue's controls, its processes.

    ``cpus``: where the system itself runs (its venue never pinned: that is the outside world);
    None = wherever the kernel puts it."""

    name = ""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = cpus
        self.tmp = Path(tempfile.mkdtemp(prefix=f"zt-suite-{self.name}-"))
        self.rest = ""
        self.venue_metrics_port = free_port()
        self.http = requests.Session()
        self.http.trust_env = False
        self.next_probe = 0  # probe asks are unique per venue for the whole run

    @abstractmethod
    def start(self) -> None:
        """Start the venue and the system; return once it is subscribed to market data."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every process it started, by pid."""

    @abstractmethod
    def pids(self) -> dict[str, int]:
        """Process name -> pid of everything it runs, the venue included."""

    def set_rate(self, rate: float) -> None:
        self.http.post(f"{self.rest}/sim/feed/rate", json={"rate": rate}, timeout=5).raise_for_status()

    def counters(self) -> dict[str, float]:
        """Cumulative counters the order path's health is judged by (deltas are taken per load)."""
        return metric_sums(self.venue_metrics_port, VENUE_COUNTERS)

    def _wait_md_connected(self, n: int = 1, timeout: float = 30) -> None:
        def connected() -> bool:
            return self.http.get(f"{self.rest}/sim/health", timeout=5).json().get("md_connections", 0) >= n

        wait_until(connected, timeout, f"{self.name} subscribed to market data")


class Zerotick(Contender):
    name = "zerotick"

    def __init__(self, cpus: set[int] | None = None) -> None:
        super().__init__(cpus)
        self.metrics_base = free_port_block(len(SERVICES), avoid=(self.venue_metrics_port,))
        self.sim_port = free_port()
        self.env = clean_env()
        self.cfg = write_toml(self.tmp / "bench.toml", self.config_doc())
        self.run_dir = self.tmp / "run"
        self.rest = f"http://127.0.0.1:{self.sim_port}"
        self._pids: dict[str, int] = {}
        self.placement: dict[str, dict[str, Any]] = {}  # per service: its status's cpus and nice

    def config_doc(self) -> dict[str, Any]:
        return {
            "sim": {"port": self.sim_port, **_sim_section(self.venue_metrics_port)},
            "zmq": {"run_dir": str(self.tmp / "run")},
            "metrics": {"base_port": self.metrics_base},
            "log": {"level": "WARNING"},
            # the data every contender reads (module docstring)
            "market_data": {"stocks": [*STOCKS, PROBE_SYMBOL], "crypto": [], "subscribe_trades": False,
                            "subscribe_bars": False},
            "signal": {"strategies": [{"name": "probe", "kind": "probe", "symbols": [PROBE_SYMBOL]}]},
            "risk": {**OPEN_RISK, "max_order_qty": "10", "price_band_bps": 100_000},
            "kill_switch": QUIET_TRIGGERS,
            "execution": OPEN_EXECUTION,
            "host": (
                {"cpu_affinity": sorted(self.cpus), "nice": PINNED_NICE if NICE_ALLOWED else {}} if self.cpus else {}
            ),
        }  # fmt: skip

    def metrics_ports(self) -> dict[str, int]:
        return {svc: self.metrics_base + i for i, svc in enumerate(SERVICES)}

    def start(self) -> None:
        up = zerotick("up", "--config", str(self.cfg), env=self.env, timeout=120)
        if up.returncode != 0:
            raise RuntimeError(f"zerotick up failed: {up.stdout}{up.stderr}")
        st = wait_until(
            lambda: (s := status_json(self.cfg, self.env))["all_ready"] and s, 90, "zerotick ready"
        )
        self._pids = {name: p["pid"] for name, p in st["processes"].items() if p.get("pid")}
        self.placement = {
            name: {k: (row.get("service") or {}).get(k) for k in ("cpus", "nice")}
            for name, row in st["processes"].items()
            if name in SERVICES
        }
        self._wait_md_connected()

    def stop(self) -> None:
        sup = supervisord_pid(Layout(self.run_dir))
        with contextlib.suppress(subprocess.TimeoutExpired):
            zerotick("down", "--config", str(self.cfg), env=self.env)
        kill_pid(sup)
        for pid in self._pids.values():
            kill_pid(pid)

    def pids(self) -> dict[str, int]:
        return dict(self._pids)

    def counters(self) -> dict[str, float]:
        out = super().counters()
        for port in self.metrics_ports().values():
            for k, v in metric_sums(port, ZMQ_COUNTERS).items():
                out[k] = out.get(k, 0.0) + v
        return out

    def no_order_causes(self) -> dict[str, float]:
        """Cumulative counts of what explains a probe without an order: quotes signal skipped
        because a newer one of the symbol already waited (it trades the probe symbol alone), risk's
        rejections by reason, execution's refused order requests."""
        ports = self.metrics_ports()
        skipped = counts_by_label(ports["signal"], "zt_zmq_conflated_total", "topic").get("md.q", 0.0)
        out = {"signal quotes conflated": skipped}
        out.update(
            (f"risk {reason}", n)
            for reason, n in counts_by_label(ports["risk"], "zt_risk_decisions_total", "reason").items()
            if reason != "ok"
        )
        refused = counts_by_label(ports["execution"], "zt_exec_orders_total", "outcome").get("refused", 0.0)
        out["execution refused"] = refused
        return out


class _OneProcess(Contender, ABC):
    """A venue process plus one client process."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        super().__init__(cpus)
        self.venue: subprocess.Popen[str] | None = None
        self.client: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}
        self.env = clean_env()

    @abstractmethod
    def client_argv(self) -> list[str]:
        """The client's command line (``self.urls`` holds the venue's addresses)."""

    def start(self) -> None:
        cfg = write_toml(
            self.tmp / "venue.toml",
            {"sim": {"key_id": KEY, "secret_key": SECRET, "log_level": "WARNING", **_sim_section(self.venue_metrics_port)}},
        )  # fmt: skip
        self.venue = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--config", str(cfg), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env,
        )  # fmt: skip
        assert self.venue.stdout is not None
        line = self.venue.stdout.readline().strip()
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"{self.name}: venue did not start: {line!r}")
        self.urls = parse_ready_line(line)
        self.rest = self.urls["rest"]
        self.client = subprocess.Popen(
            self.client_argv(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env
        )
        assert self.client.stdout is not None
        self.on_ready_line(self.client.stdout.readline().strip())
        if self.cpus:
            self.pin()
        self._wait_md_connected()
        time.sleep(0.5)  # the subscription is acknowledged after the connection counts

    def stop(self) -> None:
        for proc in (self.client, self.venue):
            if proc is not None:
                kill_pid(proc.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)

    def on_ready_line(self, line: str) -> None:
        """The client's first line, once it is subscribed."""

    def pin(self) -> None:
        assert self.client is not None and self.cpus
        pin_threads(self.client.pid, self.cpus)

    def pids(self) -> dict[str, int]:
        out = {}
        if self.venue is not None:
            out["sim"] = self.venue.pid
        if self.client is not None:
            out[self.name] = self.client.pid
        return out


class NaiveBot(_OneProcess):
    name = "naive_bot"

    def client_argv(self) -> list[str]:
        return [sys.executable, "-c", BOT, KEY, SECRET, self.urls["rest"], self.urls["iex"], PROBE_SYMBOL]


class MinimalClient(_OneProcess):
    name = "minimal_client"

    def client_argv(self) -> list[str]:
        return [
            sys.executable, "-m", "bench.minimal_client", self.urls["rest"], self.urls["iex"], KEY, SECRET,
            PROBE_SYMBOL, *STOCKS,
        ]  # fmt: skip


class PipelineFloor(_OneProcess):
    """zerotick's four processes and three hops with nothing in them (bench/pipeline_floor.py), placed
    as zerotick is: what the design costs on this host before any work."""

    name = "pipeline_floor"

    def __init__(self, cpus: set[int] | None = None) -> None:
        super().__init__(cpus)
        self.role_pids: dict[str, int] = {}

    def client_argv(self) -> list[str]:
        nice = ",".join(str(PINNED_NICE[r]) for r in SERVICES) if self.cpus and NICE_ALLOWED else ""
        return [
            sys.executable, "-m", "bench.pipeline_floor", self.urls["rest"], self.urls["iex"], KEY, SECRET,
            PROBE_SYMBOL, str(self.tmp), *STOCKS, "--cpus", ",".join(map(str, sorted(self.cpus or ()))),
            "--nice", nice,
        ]  # fmt: skip

    def on_ready_line(self, line: str) -> None:
        pids = line.rsplit("pids=", 1)[1].split(",")
        self.role_pids = {role: int(pid) for role, pid in zip(SERVICES, pids, strict=True)}

    def pin(self) -> None:
        """Each role pins itself (``--cpus``, ``--nice``), as zerotick's services do."""

    def stop(self) -> None:
        super().stop()
        for pid in self.role_pids.values():
            kill_pid(pid)

    def pids(self) -> dict[str, int]:
        return {**super().pids(), **{f"{self.name}.{role}": pid for role, pid in self.role_pids.items()}}


def all_contenders(cpus: set[int] | None) -> list[Contender]:
    """With ``cpus``: zerotick's four services, the pipeline floor's four roles and the bot run there;
    the minimal client stays where the kernel puts it, its faster placement (docs/architecture.md,
    "CPU placement")."""
    return [Zerotick(cpus), NaiveBot(cpus), MinimalClient(), PipelineFloor(cpus)]
