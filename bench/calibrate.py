"""Machine calibration printed next to benchmark results: the round trip of a bare blocking ZeroMQ
REQ/REP over ipc between two processes. The reference machine measured ~111 us p50
(docs/architecture.md, "Measured baselines"). Paced 1 ms apart, both processes sleep between messages, so the figure
includes the cost of waking a process on this host, which dominates every hop of the pipeline."""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time

import zmq


def _echo(endpoint: str, n: int) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.bind(endpoint)
    for _ in range(n):
        s.send(s.recv())
    s.close(0)
    ctx.term()


def zmq_rtt_us(n: int = 3000, gap_s: float = 0.001) -> dict[str, float]:
    """RTTs paced ``gap_s`` apart, so both sides go idle between messages as in the pipeline."""
    rtts = zmq_rtt_samples_us(n, gap_s)
    return {"p50_us": rtts[len(rtts) // 2], "p99_us": rtts[int(len(rtts) * 0.99)]}


def zmq_rtt_samples_us(n: int = 3000, gap_s: float = 0.001) -> list[float]:
    """The sorted RTTs (us) of :func:`zmq_rtt_us`, without the first 200 (warm-up)."""
    endpoint = f"ipc://{tempfile.mkdtemp(prefix='zt-cal-')}/echo"
    proc = mp.get_context("spawn").Process(target=_echo, args=(endpoint, n), daemon=True)
    proc.start()
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.connect(endpoint)
    rtts: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        s.send(b"x" * 32)
        s.recv()
        rtts.append((time.perf_counter_ns() - t0) / 1000)
        if gap_s:
            time.sleep(gap_s)
    s.close(0)
    ctx.term()
    proc.join(5)
    return sorted(rtts[200:])  # drop the warm-up


if __name__ == "__main__":
    print(zmq_rtt_us())


class IdlePoll:
    """Hold /dev/cpu_dma_latency at 0 while open: idle vCPUs poll instead of halting, the standard
    low-latency knob (cuts wake-up cost). Root only; a benchmark must say whether it used it."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def __enter__(self) -> IdlePoll:
        import os
        import struct

        self._fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(self._fd, struct.pack("i", 0))
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
