"""Fault injection for the trading REST API: answer the next N matching calls with an error status,
optionally after applying the request (the order is placed but the reply is lost)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RestFault:
    status: int
    remaining: int
    after_apply: bool
    path_prefix: str | None


class RestFaults:
    def __init__(self) -> None:
        self._fault: RestFault | None = None

    def arm(self, status: int, count: int, after_apply: bool = False, path_prefix: str | None = None) -> None:
        self._fault = RestFault(status, count, after_apply, path_prefix)

    def clear(self) -> None:
        self._fault = None

    def take(self, path: str) -> RestFault | None:
        """The fault to apply to this call, if any; consumes one of the armed count."""
        fault = self._fault
        if fault is None or (fault.path_prefix and not path.startswith(fault.path_prefix)):
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._fault = None
        return fault

    @property
    def pending(self) -> int:
        return self._fault.remaining if self._fault else 0
