"""Identifiers. Intent ids are unique per process run; a client_order_id is a pure function of the
intent id, so the same intent can never become two orders at the venue (Alpaca refuses a reused
client_order_id with 422, even after cancel)."""

from __future__ import annotations

import itertools
import os
import time

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out))


def new_run_id() -> str:
    """Unique per process start: milliseconds since epoch plus pid, base36 (~12 chars)."""
    return base36(time.time_ns() // 1_000_000) + base36(os.getpid() % 1296).rjust(2, "0")


class IntentIds:
    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self._seq = itertools.count(1)

    def next(self) -> str:
        return f"{self.run_id}.{base36(next(self._seq))}"


def client_order_id(prefix: str, intent_id: str) -> str:
    coid = f"{prefix}-{intent_id}"
    if len(coid) > 128:
        raise ValueError("client_order_id longer than Alpaca's 128 characters")
    return coid
