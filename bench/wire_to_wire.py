"""Wire-to-wire tick-to-order benchmark: venue writes a quote -> venue sees the order POST it caused.

The whole system runs as users run it (`zerotick up`: supervisord, four service processes, the
venue), with background market data at ``--background-rate`` msgs/s on other symbols. One probe
quote at a time is injected on a quiet symbol (no synthetic data) with a unique ask price; the
``probe`` strategy answers each with a buy limit at that ask. Both timestamps are taken by the
venue (wall ns when the quote frame was written to the socket, and when the order request
arrived), so no clock crosses a process boundary.

    python -m bench.wire_to_wire [--probes 2000] [--probe-rate 100] [--background-rate 1000]

Prints p50/p90/p99/p99.9 in microseconds. Machine noise is large on 2 shared cores: compare
runs interleaved, report medians of several runs. /dev/cpu_dma_latency is held at 0 only with ``--idle-poll``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.calibrate import IdlePoll, zmq_rtt_us
from bench.limits import OPEN_EXECUTION, OPEN_RISK, QUIET_TRIGGERS
from common.config import SERVICES
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

PROBE_SYMBOL = "FAKEPACA"
BASE_PRICE = Decimal("50.00")


def percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def stage_breakdown(metrics_ports: dict[str, int]) -> list[dict[str, Any]]:
    """Per-stage latency from each service's Prometheus histograms: mean (exact) and bucket p50/p99."""
    rows: list[dict[str, Any]] = []
    for service, port in metrics_ports.items():
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for fam in text_string_to_metric_families(text):
            if fam.name not in ("zt_stage_latency_seconds", "zt_tick_to_order_seconds"):
                continue
            series: dict[str, dict[str, Any]] = {}
            for s in fam.samples:
                stage = s.labels.get("stage", "tick_to_order")
                d = series.setdefault(stage, {"buckets": []})
                if s.name.endswith("_bucket"):
                    d["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    d["count"] = s.value
                elif s.name.endswith("_sum"):
                    d["sum"] = s.value
            for stage, d in series.items():
                n = d.get("count", 0)
                if not n:
                    continue
                bks = sorted(d["buckets"])

                def q(frac: float, bks: list[tuple[float, float]] = bks, n: float = n) -> float:
                    return next((le for le, c in bks if c >= frac * n), float("inf"))

                rows.append({"service": service, "stage": stage, "count": int(n), "mean_us": d["sum"] / n * 1e6,
                             "p50_le_us": q(0.5) * 1e6, "p99_le_us": q(0.99) * 1e6})  # fmt: skip
    return rows


def config(tmp: Path, port: int, background_rate: float, metrics_base: int) -> Path:
    return write_toml(
        tmp / "bench.toml",
        {
            "sim": {
                "port": port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "quiet_stocks": [PROBE_SYMBOL],
                "crypto": ["BTC/USD"], "message_rate": background_rate, "rate_limit_per_min": 100_000_000,
                "starting_cash": "1000000000",
            },
            "zmq": {"run_dir": str(tmp / "run")},
            "metrics": {"base_port": metrics_base},
            "log": {"level": "WARNING"},
            "market_data": {"stocks": ["AAPL", "MSFT", PROBE_SYMBOL], "crypto": ["BTC/USD"]},
            "signal": {"strategies": [{"name": "probe", "kind": "probe", "symbols": [PROBE_SYMBOL]}]},
            "risk": {**OPEN_RISK, "max_order_qty": "10", "price_band_bps": 100_000},
            "kill_switch": QUIET_TRIGGERS,
            "execution": OPEN_EXECUTION,
        },
    )  # fmt: skip


def probe(http: requests.Session, base: str, probes: int, probe_rate: float, warmup: int) -> list[float]:
    """Inject ``warmup + probes`` quotes on the quiet symbol, each with a unique ask, paced at
    ``probe_rate``; return the sorted latencies (us) from quote written to order POST received."""
    sent: dict[str, int] = {}
    gap = 1.0 / probe_rate
    next_t = time.perf_counter()
    for i in range(warmup + probes):
        ask = BASE_PRICE + Decimal(i) / 100
        body = {"symbol": PROBE_SYMBOL, "bid_px": str(ask - Decimal("0.01")), "bid_sz": 100,
                "ask_px": str(ask), "ask_sz": 100}  # fmt: skip
        r = http.post(f"{base}/sim/inject/quote", json=body, timeout=5)
        r.raise_for_status()
        if i >= warmup:
            sent[str(ask)] = int(r.json()["sent_ns"])
        next_t += gap
        delay = next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.perf_counter()
    time.sleep(2.0)  # let the last orders arrive
    log = http.get(f"{base}/sim/orders/log", timeout=10).json()
    entries = log["orders"] if isinstance(log, dict) else log
    lat_us: list[float] = []
    seen: set[str] = set()
    for e in entries:
        if e.get("symbol") != PROBE_SYMBOL or e.get("method") != "POST" or e.get("limit_price") is None:
            continue
        key = str(Decimal(str(e["limit_price"])).quantize(Decimal("0.01")))
        if key in sent and key not in seen:
            seen.add(key)
            lat_us.append((int(e["arrived_ns"]) - sent[key]) / 1000)
    return sorted(lat_us)


def summary(lat_us: list[float], probes: int) -> dict[str, Any]:
    return {
        "probes": probes,
        "orders_matched": len(lat_us),
        "missing": probes - len(lat_us),
        "p50_us": percentile(lat_us, 0.5),
        "p90_us": percentile(lat_us, 0.9),
        "p99_us": percentile(lat_us, 0.99),
        "p99.9_us": percentile(lat_us, 0.999),
        "max_us": lat_us[-1] if lat_us else float("nan"),
    }


def run(probes: int, probe_rate: float, background_rate: float, warmup: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="zt-w2w-"))
    port = free_port()
    metrics_base = free_port_block(4)
    cfg = config(tmp, port, background_rate, metrics_base)
    env = clean_env()
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.trust_env = False
    up = zerotick("up", "--config", str(cfg), env=env)
    if up.returncode != 0:
        raise SystemExit(up.stdout + up.stderr)
    try:
        wait_until(lambda: status_json(cfg, env)["all_up"], 90, "the system up")
        wait_until(
            lambda: status_json(cfg, env)["processes"]["risk"]["service"]["positions_loaded"],
            30,
            "risk ready",
        )
        lat_us = probe(http, base, probes, probe_rate, warmup)
        procs = status_json(cfg, env)["processes"]
        stages = stage_breakdown({svc: metrics_base + i for i, svc in enumerate(SERVICES)})
        return {
            "stages": stages,
            "risk_decisions": (procs["risk"].get("service") or {}).get("decisions"),
            "signal_decisions": (procs["signal"].get("service") or {}).get("decisions"),
            **summary(lat_us, probes),
            "probe_rate": probe_rate,
            "background_rate": background_rate,
        }
    finally:
        sup = supervisord_pid(Layout(tmp / "run"))
        zerotick("down", "--config", str(cfg), env=env)
        kill_pid(sup)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--probe-rate", type=float, default=100.0, help="probe quotes per second")
    p.add_argument("--background-rate", type=float, default=1000.0, help="background md messages per second")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--idle-poll", action="store_true", help="hold /dev/cpu_dma_latency at 0 during the runs")
    args = p.parse_args(argv)
    with IdlePoll() if args.idle_poll else contextlib.nullcontext():
        _runs(args)


def _runs(args: argparse.Namespace) -> None:
    print(
        f"wire-to-wire tick-to-order, {os.cpu_count()} cpus, python {sys.version.split()[0]}, "
        f"idle-poll {'ON' if args.idle_poll else 'off'}"
    )
    for i in range(args.runs):
        cal = zmq_rtt_us()
        print(
            f"calibration: bare blocking zmq REQ/REP ipc RTT paced 1 ms apart: p50 {cal['p50_us']:.0f} us,"
            f" p99 {cal['p99_us']:.0f} us (the host's wake-up cost; see bench/calibrate.py)"
        )
        res = run(args.probes, args.probe_rate, args.background_rate, args.warmup)
        stages = res.pop("stages")
        print(f"run {i + 1}: " + orjson.dumps(res).decode())
        print("  per stage (from the services' histograms; p50/p99 are bucket upper bounds):")
        for r in stages:
            print(
                f"    {r['service']:<12} {r['stage']:<14} n={r['count']:<6} mean {r['mean_us']:8.0f} us"
                f"   p50<= {r['p50_le_us']:6.0f} us   p99<= {r['p99_le_us']:6.0f} us"
            )
        print(
            f"  p50 {res['p50_us']:.0f} us   p90 {res['p90_us']:.0f} us   p99 {res['p99_us']:.0f} us   "
            f"p99.9 {res['p99.9_us']:.0f} us   (n={res['orders_matched']}, missing={res['missing']})"
        )


if __name__ == "__main__":
    main()
