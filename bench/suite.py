"""The benchmark suite in one command: a table on stdout and every figure as JSON.

    python -m bench.suite [--quick] [--out FILE] [--idle-poll] [--pin auto|none|CPU]

Sections (README "Benchmarks" explains each line):
  host          CPU model, load average at start and end, steal and busy % over the run, idle-poll,
                the CPU zerotick's services and the bot were pinned to (and what each service reports)
  calibration   bare ZeroMQ REQ/REP round trip over ipc, paced 1 ms apart, at the start and the end
  wire_to_wire  venue writes a probe quote -> venue reads the first byte of the order POST, for
                zerotick, the naive alpaca-py bot and the minimal client, interleaved in rounds at
                each background rate; achieved background rate; drops on the order path per load;
                for zerotick, what explains a probe without an order (quotes signal conflated,
                risk's rejections by reason, execution's refusals)
  risk_check    the numba pre-trade check per order, in process
  wake_cost     pieces of the order path timed warm and right after a 5 ms sleep, on the services'
                CPU (bench.wake_cost): what this host charges for work done just after a wake-up
  risk_rtt      signal -> risk -> signal round trip through zerotick's running risk service
  md_throughput, book   from bench.md_throughput / bench.book when those modules exist
  memory        VmRSS of every process after the first load level, and which ones loaded numba
  startup       `zerotick up` until every program is ready, and each service's time to ready
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import requests

from bench import host
from bench.calibrate import IdlePoll, zmq_rtt_samples_us
from bench.contenders import IDLE_RATE, NICE_ALLOWED, PINNED_NICE, Contender, Zerotick, all_contenders
from bench.wake_cost import SLEEP_MS as WAKE_SLEEP_MS
from bench.wake_cost import measure as wake_measure
from bench.wake_cost import report as wake_report
from bench.wire_to_wire import BASE_PRICE, PROBE_SYMBOL, percentile, stage_breakdown

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    loads: tuple[int, ...]
    rounds: int  # per load; each round probes every contender once, in a rotating order
    probes_per_round: int
    probe_rate: float  # probe quotes per second
    settle_s: float  # after switching a venue to the measured rate, before probing
    warmup_probes: int  # per contender before the first load, not counted
    calibration_n: int
    rtt_approvals: int
    rtt_rejects: int
    risk_check_orders: int
    wake_samples: int  # wake-ups per piece in bench.wake_cost
    separate_startup: bool  # a dedicated `zerotick up` (numba caches warm) rather than the first one


FULL = Plan((1_000, 10_000, 50_000), 5, 200, 100.0, 0.5, 100, 3000, 2000, 1000, 100_000, 300, True)
QUICK = Plan((1_000, 10_000, 50_000), 1, 8, 100.0, 0.2, 5, 300, 30, 15, 2_000, 20, False)


def stats(samples: list[float]) -> dict[str, Any]:
    s = sorted(samples)
    if not s:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "p99.9": None, "max": None}
    return {
        "n": len(s),
        "p50": percentile(s, 0.5),
        "p90": percentile(s, 0.9),
        "p99": percentile(s, 0.99),
        "p99.9": percentile(s, 0.999),
        "max": s[-1],
    }


# ---- wire to wire -----------------------------------------------------------------------------


def probe_round(c: Contender, n: int, rate: float) -> tuple[list[float], int]:
    """``n`` probe quotes on ``c``'s venue, each with an ask never used before on it; the latencies
    (us, venue wrote the quote -> venue read the order) of those answered, and how many were not."""
    sent: dict[str, int] = {}
    gap = 1.0 / rate
    next_t = time.perf_counter()
    for _ in range(n):
        ask = BASE_PRICE + Decimal(c.next_probe) / 100
        c.next_probe += 1
        body = {"symbol": PROBE_SYMBOL, "bid_px": str(ask - Decimal("0.01")), "bid_sz": 100,
                "ask_px": str(ask), "ask_sz": 100}  # fmt: skip
        r = c.http.post(f"{c.rest}/sim/inject/quote", json=body, timeout=10)
        r.raise_for_status()
        sent[str(ask)] = int(r.json()["sent_ns"])
        next_t += gap
        delay = next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.perf_counter()
    deadline = time.monotonic() + 2.0
    lat: dict[str, float] = {}
    while True:
        for e in c.http.get(f"{c.rest}/sim/orders/log", timeout=10).json():
            if e.get("symbol") != PROBE_SYMBOL or e.get("method") != "POST" or e.get("limit_price") is None:
                continue
            key = str(Decimal(str(e["limit_price"])).quantize(Decimal("0.01")))
            if key in sent and key not in lat:
                lat[key] = (int(e["arrived_ns"]) - sent[key]) / 1000
        if len(lat) == len(sent) or time.monotonic() > deadline:
            return list(lat.values()), len(sent) - len(lat)
        time.sleep(0.1)


def md_counts(c: Contender) -> tuple[float, float]:
    """(messages the venue's feed generated, messages it wrote to the contender's connections)."""
    generated = c.http.get(f"{c.rest}/sim/health", timeout=5).json().get("messages_generated", 0)
    return float(generated), c.counters().get("zt_sim_md_messages_total", 0.0)


def wire_to_wire(
    plan: Plan, contenders: list[Contender], after_first_load: Callable[[], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in contenders:
        probe_round(c, plan.warmup_probes, plan.probe_rate)
    for li, load in enumerate(plan.loads):
        for c in contenders:
            c.set_rate(IDLE_RATE)
        before = {c.name: c.counters() for c in contenders}
        causes0 = {c.name: c.no_order_causes() for c in contenders if isinstance(c, Zerotick)}
        stages0 = {c.name: stage_sums(c) for c in contenders if isinstance(c, Zerotick)}
        cpu0 = host.CpuTimes.now()
        samples: dict[str, list[float]] = {c.name: [] for c in contenders}
        round_p50: dict[str, list[float]] = {c.name: [] for c in contenders}
        missing = dict.fromkeys(samples, 0)
        generated: dict[str, list[float]] = {c.name: [] for c in contenders}
        delivered: dict[str, list[float]] = {c.name: [] for c in contenders}
        venue_cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
        for r in range(plan.rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for c in order:
                c.set_rate(load)
                time.sleep(plan.settle_s)
                venue = c.pids()["sim"]
                (g0, d0), v0, t0 = md_counts(c), host.cpu_seconds(venue), time.monotonic()
                lat, miss = probe_round(c, plan.probes_per_round, plan.probe_rate)
                (g1, d1), v1, t1 = md_counts(c), host.cpu_seconds(venue), time.monotonic()
                c.set_rate(IDLE_RATE)
                samples[c.name] += lat
                missing[c.name] += miss
                if lat:
                    round_p50[c.name].append(percentile(sorted(lat), 0.5))
                generated[c.name].append((g1 - g0) / (t1 - t0))
                delivered[c.name].append((d1 - d0) / (t1 - t0))
                venue_cpu[c.name].append(100 * (v1 - v0) / (t1 - t0))
        after = {c.name: c.counters() for c in contenders}
        causes = {
            c.name: {k: d for k, v in c.no_order_causes().items() if (d := v - causes0[c.name].get(k, 0.0))}
            for c in contenders
            if isinstance(c, Zerotick)
        }
        level: dict[str, Any] = {"host": host.CpuTimes.now().since(cpu0), "loadavg": host.loadavg()}
        for c in contenders:
            drops = {k: after[c.name].get(k, 0.0) - before[c.name].get(k, 0.0) for k in after[c.name]}
            drops.pop("zt_sim_md_messages_total", None)
            level[c.name] = {
                "latency_us": stats(samples[c.name]),
                "missing": missing[c.name],
                "round_p50_us": round_p50[c.name],
                "background_msgs_per_s_generated": _mean(generated[c.name]),
                "md_msgs_per_s_delivered": _mean(delivered[c.name]),
                # near 100 the venue, not the contender, sets the latency (its loop reads the POST late)
                "venue_cpu_pct": _mean(venue_cpu[c.name]),
                "drops": drops,
                **({"no_order_causes": causes[c.name]} if c.name in causes else {}),
                **(
                    {"stage_mean_us": stage_means(stages0[c.name], stage_sums(c))}
                    if c.name in stages0
                    else {}
                ),
            }
        out[str(load)] = level
        if li == 0:
            after_first_load()
    return out


def stage_sums(zt: Contender) -> dict[str, tuple[float, float]]:
    """zerotick's per-stage histograms now: "service.stage" -> (sum of seconds, count)."""
    assert isinstance(zt, Zerotick)
    return {
        f"{r['service']}.{r['stage']}": (r["mean_us"] * r["count"], r["count"])
        for r in stage_breakdown(zt.metrics_ports())
    }


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean µs per stage over what was observed between two ``stage_sums`` (this load's probes)."""
    out = {}
    for k, (total, n) in after.items():
        t0, n0 = before.get(k, (0.0, 0.0))
        if n > n0:
            out[k] = round((total - t0) / (n - n0), 1)
    return out


def _mean(xs: list[float]) -> int:
    return round(sum(xs) / len(xs)) if xs else 0


# ---- in-process and service benchmarks -------------------------------------------------------


def calibration(n: int) -> dict[str, Any]:
    return stats(zmq_rtt_samples_us(n, 0.001))


def risk_check(orders: int) -> dict[str, Any]:
    from bench.risk_check import measure

    samples, _ = measure(orders)
    return {name: stats([float(x) for x in s]) for name, s in samples.items()}


def wake_cost(samples: int, cpus: set[int] | None) -> dict[str, Any]:
    """bench.wake_cost in a child process pinned where the services run (this process stays put)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        res: dict[str, Any] = pool.submit(_pinned_wake_cost, samples, sorted(cpus) if cpus else None).result()
    return {
        "cpus": sorted(cpus) if cpus else None,
        "sleep_ms": WAKE_SLEEP_MS,
        "samples": samples,
        "pieces": res,
    }


def _pinned_wake_cost(samples: int, cpus: list[int] | None) -> dict[str, Any]:
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    return wake_measure(samples, WAKE_SLEEP_MS)


def risk_rtt(zt: Zerotick, approvals: int, rejects: int) -> dict[str, Any]:
    from bench.risk_rtt import IntentClient, measure
    from common.config import load_settings

    # the client stands in for signal: with --pin, on signal's CPU and with its niceness (this
    # thread and the ZeroMQ I/O thread its context starts), put back afterwards
    affinity, nice = os.sched_getaffinity(0), os.getpriority(os.PRIO_PROCESS, 0)
    if zt.cpus:
        os.sched_setaffinity(0, zt.cpus)
        if NICE_ALLOWED:
            os.setpriority(os.PRIO_PROCESS, 0, PINNED_NICE["signal"])
    client = IntentClient(load_settings(str(zt.cfg)))
    try:
        ok, no = measure(client, approvals, rejects, 0.001)
    finally:
        client.close()
        os.sched_setaffinity(0, affinity)
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return {
        "approved_us": {**stats(ok.samples), "failures": len(ok.failures)},
        "rejected_us": {**stats(no.samples), "failures": len(no.failures)},
        "paced_ms": 1.0,
        "client_cpus": sorted(zt.cpus) if zt.cpus else None,
    }


def optional_module(name: str, quick: bool) -> dict[str, Any]:
    """``bench.<name>.run(quick=...)`` when the module exists; otherwise marked not available."""
    try:
        mod = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{name}":
            raise
        return {"available": False}
    run = getattr(mod, "run", None)
    if run is None:
        return {"available": False, "error": f"bench.{name} has no run(quick=...)"}
    try:
        return {"available": True, "result": run(quick=quick)}
    except Exception as exc:  # one broken section must not lose the others
        traceback.print_exc()
        return {"available": True, "error": f"{type(exc).__name__}: {exc}"}


# ---- start-up ---------------------------------------------------------------------------------


class ReadyWatch:
    """Polls each service's zt_service_ready gauge and the venue's health while `zerotick up` runs:
    seconds from ``t0`` until each was first seen ready (polled every 50 ms; the gauge itself is
    refreshed once per heartbeat, 0.5 s by default)."""

    def __init__(self, zt: Zerotick) -> None:
        self.zt = zt
        self.t0 = time.monotonic()
        self.ready_s: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _is_ready(self, name: str, port: int | None) -> bool:
        try:
            if port is None:
                return self.zt.http.get(f"{self.zt.rest}/sim/health", timeout=1).ok
            text = self.zt.http.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        except requests.RequestException:
            return False
        return any(
            line.startswith("zt_service_ready") and line.endswith(" 1.0") for line in text.splitlines()
        )

    def _poll(self) -> None:
        targets: dict[str, int | None] = {"sim": None, **self.zt.metrics_ports()}
        while not self._stop.is_set() and len(self.ready_s) < len(targets):
            for name, port in targets.items():
                if name not in self.ready_s and self._is_ready(name, port):
                    self.ready_s[name] = round(time.monotonic() - self.t0, 3)
            time.sleep(0.05)

    def finish(self, timeout_s: float) -> None:
        """Wait until every target was seen ready (the gauges refresh once per heartbeat, so one may
        show ready a heartbeat after `zerotick up` saw the service ready), at most ``timeout_s``."""
        self._thread.join(timeout_s)

    @contextlib.contextmanager
    def running(self) -> Iterator[ReadyWatch]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)


def timed_start(zt: Zerotick) -> dict[str, Any]:
    watch = ReadyWatch(zt)
    with watch.running():
        zt.start()
        total = time.monotonic() - watch.t0
        watch.finish(5.0)
    return {"up_to_all_ready_s": round(total, 3), "per_service_ready_s": watch.ready_s}


def numba_cache_warm() -> bool:
    """Whether numba's cache holds compiled functions: in ``NUMBA_CACHE_DIR`` (``make`` sets it),
    else in the ``__pycache__`` folders next to the services' sources (numba's default)."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    root = Path(folder) if folder else Path(__file__).resolve().parents[1] / "services"
    return any(root.rglob("*.nbi"))


# ---- output -----------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    return f"{v:9.1f}" if isinstance(v, int | float) else f"{'-':>9}"


def table(res: dict[str, Any]) -> str:
    head = f"{'series':<52} {'n':>6} " + " ".join(f"{h:>9}" for h in ("p50", "p90", "p99", "p99.9", "max"))
    lines = [head]

    def row(name: str, st: dict[str, Any], extra: str = "") -> None:
        cells = " ".join(_fmt(st.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max"))
        lines.append(f"{name:<52} {st.get('n', 0):>6} {cells}  {extra}")

    lines.append("wire to wire, us (venue wrote quote -> venue read order's first byte)")
    for load, level in res["wire_to_wire"].items():
        for name, r in level.items():
            if not isinstance(r, dict) or "latency_us" not in r:
                continue
            why = ", ".join(f"{k} {v:g}" for k, v in r.get("no_order_causes", {}).items())
            extra = (
                f"missing {r['missing']}{f' ({why})' if why else ''}, feed {r['background_msgs_per_s_generated']}/s,"
                f" delivered {r['md_msgs_per_s_delivered']}/s, venue CPU {r.get('venue_cpu_pct', '?')}%"
            )
            row(f"  {name} @ {int(load):,} msg/s", r["latency_us"], extra)
            if r.get("stage_mean_us"):
                means = ", ".join(f"{k.split('.', 1)[1]} {v:g}" for k, v in r["stage_mean_us"].items())
                lines.append(f"  {'':<50} its stages, mean us: {means}")
        lines.append(f"  {'':<50} host during this load: {level['host']}")
    lines.append("drops on the order path (per load; venue md disconnects, zmq gaps / dropped)")
    for load, level in res["wire_to_wire"].items():
        for name, r in level.items():
            if isinstance(r, dict) and "drops" in r:
                drops = ", ".join(
                    f"{k.removeprefix('zt_').removesuffix('_total')} {v:g}" for k, v in r["drops"].items()
                )
                lines.append(f"  {name} @ {int(load):,}: {drops}")
    lines.append("calibration, us (bare zmq REQ/REP ipc paced 1 ms)")
    for when, st in res["calibration"].items():
        row(f"  {when}", st)
    lines.append("pre-trade check, ns per order (in process)")
    for name, st in res["risk_check"].items():
        row(f"  {name}", st)
    lines.append("risk round trip, us (signal -> risk -> signal, via the running risk)")
    for name in ("approved_us", "rejected_us"):
        st = res["risk_rtt"].get(name, {})
        row(f"  {name.removesuffix('_us')}", st, f"failures {st.get('failures', '-')}")
    wake = res["wake_cost"]
    lines.append(
        f"wake cost: the same work warm and right after a {wake['sleep_ms']:g} ms sleep, CPUs {wake['cpus']}"
    )
    lines += wake_report(wake["pieces"])
    for section in ("md_throughput", "book", "journal_start"):
        sec = res[section]
        if not sec.get("available"):
            lines.append(f"{section}: not available")
        elif "error" in sec:
            lines.append(f"{section}: failed: {sec['error']}")
        else:
            lines.append(f"{section}:")
            lines += [f"  {k:<50} {v}" for k, v in _flat(sec["result"])]
    lines.append("memory after warm-up (VmRSS MiB, numba loaded)")
    for group, procs in res["memory"].items():
        for name, m in procs.items():
            label = f"{group}/{name}"
            lines.append(f"  {label:<40} {m['rss_mib']!s:>8} MiB  numba {m['numba']}")
    st = res["startup"]
    per = ", ".join(f"{k} {v} s" for k, v in st.get("per_service_ready_s", {}).items())
    lines.append(
        f"start-up: zerotick up -> all ready {st.get('up_to_all_ready_s')} s ({per}); numba cache warm {st.get('numba_cache_warm')}"
    )
    m = res["meta"]
    lines.append(
        f"host: {m['host']['cpus']} cpus, {m['host']['cpu_model']}, loadavg {m['loadavg_start']} -> {m['loadavg_end']}, "
        f"steal {m['cpu']['steal_pct']}% busy {m['cpu']['busy_pct']}% over the run, idle-poll {'ON' if m['idle_poll'] else 'off'}, "
        f"pinned to CPUs {m.get('pinned_cpus') or 'none'}"
    )
    return "\n".join(lines)


def _flat(d: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flat(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), d


# ---- the run ----------------------------------------------------------------------------------


def pin_cpus(choice: str) -> set[int] | None:
    """``--pin``: "none"; "auto" = the highest CPU this process may use, when it may use two or more
    (one left for the venues and the harness); or a CPU number."""
    usable = sorted(os.sched_getaffinity(0))
    if choice == "none" or (choice == "auto" and len(usable) < 2):
        return None
    cpu = usable[-1] if choice == "auto" else int(choice)
    if cpu not in usable:
        raise SystemExit(f"--pin {choice}: CPU {cpu} is not one this process may use ({usable})")
    return {cpu}


def placement(zt: Zerotick, others: list[Contender]) -> dict[str, Any]:
    """Where each contender runs: zerotick's services as their status reports (CPUs, niceness), the
    others' processes (all but the venue) as the kernel has them."""
    return {
        "zerotick_services": zt.placement,
        **{
            c.name: {
                proc: sorted(os.sched_getaffinity(pid)) for proc, pid in c.pids().items() if proc != "sim"
            }
            for c in others
        },
    }


def run_suite(plan: Plan, quick: bool, idle_poll: bool, cpus: set[int] | None = None) -> dict[str, Any]:
    started = datetime.now(UTC)
    t_start = time.monotonic()
    cpu0 = host.CpuTimes.now()
    res: dict[str, Any] = {
        "meta": {
            "started_utc": started.isoformat(),
            "code": host.code_version(),
            "quick": quick,
            "idle_poll": idle_poll,
            "pinned_cpus": sorted(cpus) if cpus else None,
            "plan": asdict(plan),
            "host": host.host_info(),
            "loadavg_start": host.loadavg(),
        }
    }
    res["calibration"] = {"start": calibration(plan.calibration_n)}
    warm = numba_cache_warm()
    contenders = all_contenders(cpus)
    zt = contenders[0]
    assert isinstance(zt, Zerotick)
    started_ok: list[Contender] = []
    memory: dict[str, Any] = {}
    try:
        first_start = timed_start(zt)
        started_ok.append(zt)
        for c in contenders[1:]:
            c.start()
            started_ok.append(c)
        res["meta"]["pinned"] = placement(zt, contenders[1:])

        def sample_memory() -> None:
            for c in contenders:
                memory[c.name] = host.process_memory(c.pids())

        res["wire_to_wire"] = wire_to_wire(plan, contenders, sample_memory)
        res["risk_rtt"] = risk_rtt(zt, plan.rtt_approvals, plan.rtt_rejects)
    finally:
        for c in started_ok:
            c.stop()
    res["memory"] = memory
    if plan.separate_startup:
        fresh = Zerotick(cpus)
        try:
            res["startup"] = {**timed_start(fresh), "numba_cache_warm": numba_cache_warm()}
        finally:
            fresh.stop()
    else:
        res["startup"] = {**first_start, "numba_cache_warm": warm}
    res["risk_check"] = risk_check(plan.risk_check_orders)
    res["wake_cost"] = wake_cost(plan.wake_samples, cpus)
    res["md_throughput"] = optional_module("md_throughput", quick)
    res["book"] = optional_module("book", quick)
    res["journal_start"] = optional_module("journal_start", quick)
    res["calibration"]["end"] = calibration(plan.calibration_n)
    res["meta"]["cpu"] = host.CpuTimes.now().since(cpu0)
    res["meta"]["loadavg_end"] = host.loadavg()
    res["meta"]["duration_s"] = round(time.monotonic() - t_start, 1)
    return res


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: every section, few samples")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/<UTC timestamp>.json)")
    p.add_argument("--idle-poll", action="store_true", help="hold /dev/cpu_dma_latency at 0 (root)")
    p.add_argument(
        "--pin", default="auto", metavar="auto|none|CPU",
        help="the CPU zerotick's services (host.cpu_affinity, with host.nice ordered along the order "
        "path) and the bot run on (default auto: the highest usable CPU on a host with two or more)",
    )  # fmt: skip
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    cpus = pin_cpus(args.pin)
    with IdlePoll() if args.idle_poll else contextlib.nullcontext():
        res = run_suite(plan, args.quick, args.idle_poll, cpus)
    out = args.out or RESULTS_DIR / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    print(table(res))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
