"""Hold /dev/cpu_dma_latency at 0 for as long as this process lives.

Idle CPUs then poll instead of entering deep sleep states, so waking a process on a message costs
far less: on the reference VM a paced ZeroMQ round trip fell from ~78 us to ~28 us, and zerotick's
wire-to-wire p50 from ~1.4 ms to ~0.9 ms (bench/wire_to_wire.py --idle-poll). The price is CPU
power: the cores spin when idle. The kernel drops the request when the file is closed, i.e. when this
process exits, so running it under supervisord ties the setting to the system's lifetime.
"""

from __future__ import annotations

import os
import signal
import struct
import sys

DEVICE = "/dev/cpu_dma_latency"


def main() -> None:
    try:
        fd = os.open(DEVICE, os.O_WRONLY)
        os.write(fd, struct.pack("i", 0))
    except OSError as exc:
        print(f"idle-poll: cannot hold {DEVICE} at 0: {exc} (needs root)", file=sys.stderr, flush=True)
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # before announcing: a stop may follow at once
    print(f"idle-poll: holding {DEVICE} at 0 (pid {os.getpid()})", flush=True)
    try:
        while True:
            signal.pause()
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
