"""Wire to wire per CPU placement of zerotick's four services, with idle-poll off and on, one running
system, variants rotated round by round.

    .venv/bin/python -m bench.placement [--rounds 4] [--probes 200] [--background-rate 1000]
                                        [--idle-poll off|on|both]

One zerotick on its venue (the suite's configuration, niceness included); before each variant's
turn every thread of each service is moved to the placement's CPUs (``sched_setaffinity`` per
thread) and ``/dev/cpu_dma_latency`` is held at 0 or released (idle-poll, root), so the variants
share one system, one venue and one warm-up, and host drift spreads over all of them. Needs two or
more CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

from bench.calibrate import IdlePoll
from bench.contenders import Zerotick
from bench.suite import probe_round
from bench.wire_to_wire import percentile

PLACEMENTS: dict[str, dict[str, set[int]]] = {
    "all four on CPU 1": {"market_data": {1}, "signal": {1}, "risk": {1}, "execution": {1}},
    "all four on CPU 1, ZeroMQ I/O threads on 0": {
        "market_data": {1},
        "signal": {1},
        "risk": {1},
        "execution": {1},
        "zmq_io": {0},
    },
    "market_data, signal on 0; risk, execution on 1": {
        "market_data": {0},
        "signal": {0},
        "risk": {1},
        "execution": {1},
    },
    "market_data on 0, the rest on 1": {"market_data": {0}, "signal": {1}, "risk": {1}, "execution": {1}},
    "unpinned (0 and 1)": {"market_data": {0, 1}, "signal": {0, 1}, "risk": {0, 1}, "execution": {0, 1}},
}


def place(pids: dict[str, int], placement: dict[str, set[int]]) -> None:
    """Every thread of each service on its CPUs; libzmq's I/O threads on ``placement["zmq_io"]``
    when the placement names them apart."""
    io_cpus = placement.get("zmq_io")
    for service, cpus in placement.items():
        if service == "zmq_io":
            continue
        pid = pids[service]
        for tid in os.listdir(f"/proc/{pid}/task"):
            on_io = io_cpus is not None and _thread_name(pid, tid).startswith("ZMQbg/IO")
            os.sched_setaffinity(int(tid), io_cpus if on_io and io_cpus is not None else cpus)


def _thread_name(pid: int, tid: str) -> str:
    with open(f"/proc/{pid}/task/{tid}/comm") as f:
        return f.read().strip()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--probes", type=int, default=200, help="probes per placement per round")
    p.add_argument("--probe-rate", type=float, default=100.0)
    p.add_argument("--background-rate", type=float, default=1000.0)
    p.add_argument("--idle-poll", choices=("off", "on", "both"), default="both")
    args = p.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench.placement needs two or more CPUs")
    polls = {"off": [False], "on": [True], "both": [False, True]}[args.idle_poll]
    variants = [(name, poll) for name in PLACEMENTS for poll in polls]
    samples: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    missing = dict.fromkeys(variants, 0)
    zt = Zerotick({0, 1})
    zt.start()
    try:
        zt.set_rate(args.background_rate)
        time.sleep(1.0)
        probe_round(zt, 100, args.probe_rate)  # warm-up
        for r in range(args.rounds):
            for name, poll in variants[r % len(variants) :] + variants[: r % len(variants)]:
                place(zt.pids(), PLACEMENTS[name])
                with IdlePoll() if poll else contextlib.nullcontext():
                    time.sleep(0.5)
                    lat, miss = probe_round(zt, args.probes, args.probe_rate)
                samples[name, poll] += lat
                missing[name, poll] += miss
    finally:
        zt.stop()
    print(
        f"background {args.background_rate:g} msgs/s, {args.rounds} rounds of {args.probes} probes a variant"
    )
    for (name, poll), lat in samples.items():
        label = f"{name}, idle-poll {'ON' if poll else 'off'}"
        s = sorted(lat)
        if not s:
            print(f"  {label:62s} no probe answered")
            continue
        print(
            f"  {label:62s} n {len(s):5d}  p50 {percentile(s, 0.5):7.0f}  p90 {percentile(s, 0.9):7.0f}"
            f"  p99 {percentile(s, 0.99):7.0f} us  missing {missing[name, poll]}"
        )


if __name__ == "__main__":
    main()
