"""``zerotick top`` and ``zerotick top --once``."""

from __future__ import annotations

import shutil
import sys
import time

from common.config import Settings
from zerotick.top import render, view
from zerotick.top.snapshot import Collector


def once(settings: Settings, interval_s: float, timeout_s: float) -> str:
    """One plain-text frame: two scrapes ``interval_s`` apart, so rates and percentiles have a window."""
    collector = Collector(settings, timeout_s)
    try:
        first = collector.take()
        time.sleep(max(0.0, interval_s - (time.monotonic() - first.taken_s)))
        second = collector.take()
    finally:
        collector.close()
    width = shutil.get_terminal_size((140, 40)).columns
    return render.plain_frame(view.build(first, second), width=max(100, width))


def run(settings: Settings, show_once: bool, interval_s: float, window_s: float, timeout_s: float) -> int:
    if show_once or not sys.stdout.isatty():
        sys.stdout.write(once(settings, interval_s, timeout_s))
        return 0
    from zerotick.top.app import TopApp

    TopApp(Collector(settings, timeout_s), interval_s, window_s).run()
    return 0
