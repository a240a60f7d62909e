"""Waiting for a condition with a deadline: never a bare sleep-and-hope, never an endless wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def until(cond: Callable[[], Any], what: str = "condition", timeout_s: float = 5.0) -> None:
    """On the running loop: poll ``cond`` every 10 ms until it is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_until(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Blocking: poll ``fn`` until it returns something true (returned), or fail naming ``what``.
    An exception from ``fn`` counts as "not yet" (the thing may not be checkable yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
